"""The sequential graph, materialised in-process with the real engine (seconds of training)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from synth_core.ops import MetricStore
from synth_orchestration.assets import sequential
from synth_orchestration.checks import evaluate_and_gate
from synth_orchestration.resources import ArtifactStore, MetricStoreResource

KEY = "worker"
CONTEXT = ["sex", "black", "ed"]


def _materialize(root: Path, partition: str, run_config: dict | None = None):
    return dg.materialize(
        sequential.ASSETS,
        partition_key=partition,
        resources={
            "artifacts": ArtifactStore(artifact_root=str(root / "artifacts")),
            "metrics": MetricStoreResource(database=str(root / "metrics.duckdb")),
        },
        run_config=dg.RunConfig(run_config or {}),
        raise_on_error=False,
    )


def _output(result, asset: str):
    return result.output_for_node(f"sequential__{asset}")


def _metadata(result, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat.asset_key.to_user_string() == f"sequential/{asset}":
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"sequential/{asset} was not materialised")


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def seq_root(tmp_path_factory):
    return tmp_path_factory.mktemp("sequential")


@pytest.fixture(scope="module")
def seq_run(seq_root):
    return _materialize(seq_root, "tiny_seq")


@pytest.mark.slow
def test_whole_graph_materialises_and_checks_pass(seq_run):
    assert seq_run.success
    materialised = {e.materialization.asset_key.to_user_string() for e in seq_run.get_asset_materialization_events()}
    assert materialised == {f"sequential/{a.key.path[-1]}" for a in sequential.ASSETS}
    assert _checks(seq_run) == {"accuracy_floor": True, "privacy_gate": True, "integrity": True}


@pytest.mark.slow
def test_output_is_whole_groups_with_constant_subject_attributes(seq_run):
    source = _output(seq_run, "source_data")
    training = pd.read_parquet(source["training"])
    out = pd.read_parquet(_output(seq_run, "refined_output")["parquet"])
    assert list(out.columns) == list(training.columns)
    assert all(out[c].dtype == training[c].dtype for c in training.columns)
    lengths = out.groupby(KEY, sort=False).size()
    assert len(lengths) == 300 == source["target_size"]
    train_lengths = training.groupby(KEY).size()
    assert train_lengths.min() <= lengths.min() and lengths.max() <= train_lengths.max()
    assert (out.groupby(KEY)[CONTEXT].nunique() == 1).all().all()
    # groups are contiguous (events of a group stay together, in generated order)
    first_seen = pd.factorize(out[KEY])[0]
    assert np.all(np.diff(first_seen) >= 0)
    # keys are the pool's fresh keys, never training's
    assert not set(out[KEY]) & set(training[KEY])
    csv = pd.read_csv(_output(seq_run, "refined_output")["csv"])
    assert len(csv) == len(out)


@pytest.mark.slow
def test_selected_groups_come_from_the_pool(seq_run):
    pool = _output(seq_run, "candidate_pool")
    groups = np.load(_output(seq_run, "refined_output")["groups"])
    assert groups.shape == (300,) and np.unique(groups).size == 300
    assert groups.min() >= 0 and groups.max() < pool["n_groups"]
    # pool_factor 4 (datasets file) × 300 target groups
    assert pool["n_groups"] == 1200


@pytest.mark.slow
def test_stages_improve_on_the_random_sample(seq_run, seq_root):
    frame = MetricStore(str(seq_root / "metrics.duckdb")).frame(dataset="tiny_seq", run_id=seq_run.run_id)

    def metric(asset: str, name: str) -> float:
        sub = frame[(frame["asset"] == f"sequential/{asset}") & (frame["metric"] == name)]
        assert len(sub) == 1, (asset, name)
        return float(sub["value"].iloc[0])

    random = metric("candidate_pool", "accuracy_overall")
    coherent = metric("coherence_subset", "accuracy_coherence")
    refined = metric("refined_output", "accuracy_overall")
    assert coherent > metric("candidate_pool", "accuracy_coherence")
    assert refined > random + 0.01
    # the objective falls from the coherence stage to the refined one (same problem, more features used)
    assert metric("refined_output", "objective") < metric("coherence_subset", "objective")
    report = _metadata(seq_run, "quality_report")["report"]
    assert "coherence" in report and "refined" in report
    evaluation = json.loads(Path(_output(seq_run, "refined_output")["evaluation"]).read_text())
    assert evaluation["final"]["accuracy"]["overall"] > evaluation["random"]["accuracy"]["overall"]
    assert evaluation["final"]["privacy"]["exact_copy_training_sequences"] is not None


@pytest.mark.slow
def test_manifest_and_published_output(seq_run):
    refined = _output(seq_run, "refined_output")
    manifest = json.loads(Path(refined["manifest"]).read_text())
    assert manifest["kind"] == "sequential" and manifest["group_key"] == KEY
    assert manifest["target_size"] == 300 and manifest["pool_size"] == 1200
    published = _output(seq_run, "quality_report")["published"]
    assert Path(published["parquet"]).read_bytes() == Path(refined["parquet"]).read_bytes()


@pytest.mark.slow
def test_failing_privacy_gate_blocks_publication_and_generator_is_reused(seq_root, seq_run):
    result = _materialize(seq_root, "tiny_seq", {"sequential__refined_output": {"config": {"max_membership_auc": 0.0}}})
    assert not result.success
    assert _metadata(result, "trained_generator")["reused"] is True
    checks = _checks(result)
    assert checks["privacy_gate"] is False and checks["integrity"] is True
    materialised = {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "sequential/quality_report" not in materialised


@pytest.mark.slow  # trains a one-epoch model
def test_integer_keys_and_renumbering(tmp_path):
    result = _materialize(tmp_path, "tiny_seq_int")
    assert result.success, [e.step_failure_data for e in result.all_events if e.is_step_failure]
    training = pd.read_parquet(_output(result, "source_data")["training"])
    out = pd.read_parquet(_output(result, "refined_output")["parquet"])
    assert out[KEY].dtype == training[KEY].dtype == np.int64
    # renumber_keys (datasets file): keys 0 … n−1 in output order
    assert list(pd.unique(out[KEY])) == list(range(200))
    assert (out.groupby(KEY)[CONTEXT].nunique() == 1).all().all()


def test_missing_group_key_fails_with_one_line_message(tmp_path):
    result = _materialize(tmp_path, "seq_no_key")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert message == "dataset 'seq_no_key': group key 'no_such_key' not found in the source"
    assert not (tmp_path / "artifacts" / "sequential" / "seq_no_key" / "runs").exists() or not any(
        (tmp_path / "artifacts" / "sequential" / "seq_no_key" / "runs").rglob("*.parquet")
    )


def _noise(training: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Training groups with three columns permuted across rows, under new keys."""
    rng = np.random.default_rng(seed)
    noise = training.copy()
    for c in ("lwage", "wks", "exp"):
        noise[c] = rng.permutation(noise[c].to_numpy())
    noise[KEY] = f"noise{seed}-" + noise[KEY].astype(str)
    return noise


GATE_DEFAULTS = {"accuracy_floor": None, "max_dcr_share": 0.52, "min_nndr_ratio": 0.5, "exact_copy_tolerance": 0.0,
                 "eval_seed": 1}


@pytest.mark.slow
def test_training_copies_in_the_pool_are_recovered_and_the_privacy_gate_bites(seq_run, tmp_path):
    """A pool of the training groups plus noise groups, the privacy guard off: selection picks the copies,
    the gate refuses them."""
    from synth_core.select import GuardSettings
    from synth_core.select.sequential import SequentialSettings, select_groups

    source = _output(seq_run, "source_data")
    training = pd.read_parquet(source["training"])
    holdout = pd.read_parquet(source["holdout"])
    pool = pd.concat([_noise(training, 3), training], ignore_index=True)
    sel = select_groups(training, pool, KEY, settings=SequentialSettings(seed=0, guard=GuardSettings(enabled=False)))
    chosen = set(sel.final.keys)
    assert len(chosen & set(training[KEY])) >= 0.95 * training[KEY].nunique()
    assert sel.final.objective < 0.1 * sel.stages["random"].objective
    final = sel.output(pool)
    baseline = sel.output(pool, "random")
    gate = evaluate_and_gate(final, baseline, training, holdout, GATE_DEFAULTS, group_key=KEY,
                             target=training[KEY].nunique(), rows=sel.final.groups, n_pool=sel.layout.n_groups,
                             out=tmp_path)
    checks = {c.check_name: c for c in gate["checks"]}
    assert checks["accuracy_floor"].passed  # the copies are as accurate as the training data itself
    assert not checks["privacy_gate"].passed
    assert "exact_copy_training" in checks["privacy_gate"].description


@pytest.mark.slow
def test_with_the_privacy_guard_on_no_training_copy_is_selected(seq_run, tmp_path):
    """The same kind of pool with the guard on (the default): every training copy is removed before the search."""
    from synth_core.select.sequential import SequentialSettings, select_groups

    source = _output(seq_run, "source_data")
    training = pd.read_parquet(source["training"])
    holdout = pd.read_parquet(source["holdout"])
    pool = pd.concat([_noise(training, 3), training, _noise(training, 4)], ignore_index=True)
    sel = select_groups(training, pool, KEY, settings=SequentialSettings(seed=0))
    assert sel.guard.replicas == training[KEY].nunique()
    assert not set(sel.final.keys) & set(training[KEY])
    gate = evaluate_and_gate(sel.output(pool), sel.output(pool, "random"), training, holdout, GATE_DEFAULTS,
                             group_key=KEY, target=training[KEY].nunique(), rows=sel.final.groups,
                             n_pool=sel.layout.n_groups, out=tmp_path)
    privacy = {c.check_name: c for c in gate["checks"]}["privacy_gate"]
    assert "exact_copy_training_sequences" not in privacy.description
