"""The flat graph, materialised in-process with the real engine (seconds of training)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from synth_core.ops import MetricStore
from synth_orchestration.assets import flat
from synth_orchestration.resources import ArtifactStore, MetricStoreResource

STAGE_ASSETS = ["flat/candidate_pool", "flat/ipf_subset", "flat/trimmed_subset", "flat/refined_output"]


def _resources(root: Path) -> dict:
    return {
        "artifacts": ArtifactStore(artifact_root=str(root / "artifacts")),
        "metrics": MetricStoreResource(database=str(root / "metrics.duckdb")),
    }


def _materialize(root: Path, partition: str, run_config: dict | None = None, selection=None):
    return dg.materialize(
        flat.ASSETS,
        selection=selection,
        partition_key=partition,
        resources=_resources(root),
        run_config=dg.RunConfig(run_config or {}),
        raise_on_error=False,
    )


def _step_failure(result) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "expected a failed step"
    data = failures[0].step_failure_data
    return data.user_failure_data.description if data.user_failure_data else data.error.message


@pytest.fixture(scope="session")
def flat_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("flat")
    result = _materialize(root, "tiny_flat")
    return root, result


@pytest.mark.slow
def test_whole_graph_materialises_and_checks_pass(flat_run):
    root, result = flat_run
    assert result.success
    materialised = {m.asset_key.to_user_string()
                    for m in result.get_asset_materialization_events() for m in [m.materialization]}
    assert materialised == {f"flat/{a.key.path[-1]}" for a in flat.ASSETS}
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"accuracy_floor": True, "privacy_gate": True, "integrity": True}


@pytest.mark.slow
def test_output_has_target_size_training_schema_and_manifest(flat_run):
    root, result = flat_run
    out = result.output_for_node("flat__refined_output")
    source = result.output_for_node("flat__source_data")
    training = pd.read_parquet(source["training"])
    final = pd.read_parquet(out["parquet"])
    assert len(final) == 400 == source["target_size"]
    assert list(final.columns) == list(training.columns)
    assert dict(final.dtypes) == dict(training.dtypes)
    assert len(pd.read_csv(out["csv"])) == 400
    manifest = json.loads(Path(out["manifest"]).read_text())
    generator = result.output_for_node("flat__trained_generator")
    assert manifest["generator_id"] == generator["generator_id"]
    assert manifest["seed"] == 0 and manifest["target_size"] == 400
    assert set(manifest["source_hashes"]) == {"tiny.csv"}
    assert manifest["packages"]["mostlyai"] != "not installed"
    # the dataset's overrides in the datasets file reached the stages
    assert generator["settings"]["max_epochs"] == 5
    pool = result.output_for_node("flat__candidate_pool")
    assert pool["n_pool"] == 8 * 400
    # no temp files left next to the outputs
    assert not list(Path(out["parquet"]).parent.glob(".*tmp"))


@pytest.mark.slow
def test_every_stage_is_recorded_and_selection_improves_on_the_pool(flat_run):
    root, result = flat_run
    frame = MetricStore(root / "metrics.duckdb").frame(dataset="tiny_flat", run_id=result.run_id)
    for asset in STAGE_ASSETS:
        metrics = set(frame.loc[frame["asset"] == asset, "metric"])
        assert {"elapsed_s", "peak_rss_mb", "accuracy_overall"} <= metrics, asset
    overall = {a: frame[(frame["asset"] == a) & (frame["metric"] == "accuracy_overall")]["value"].iloc[0]
               for a in STAGE_ASSETS}
    objective = {a: frame[(frame["asset"] == a) & (frame["metric"] == "objective")]["value"].iloc[0]
                 for a in STAGE_ASSETS[1:]}
    assert overall["flat/refined_output"] > overall["flat/candidate_pool"] + 0.01
    assert objective["flat/refined_output"] <= objective["flat/trimmed_subset"]
    report = result.output_for_node("flat__quality_report")
    stages = report["table"]["stages"]
    assert [s["stage"] for s in stages] == ["random pool sample", "ipf", "trimmed", "refined"]
    # each row names the step its time belongs to: the random sample's is the pool step (generation included)
    assert [s["step"] for s in stages] == ["candidate_pool", "ipf_subset", "trimmed_subset", "refined_output"]
    assert stages[0]["elapsed_s"] == pytest.approx(
        frame[(frame["asset"] == "flat/candidate_pool") & (frame["metric"] == "elapsed_s")]["value"].iloc[0])
    assert Path(report["published"]["parquet"]).exists()


@pytest.mark.slow
def test_unchanged_source_and_settings_reuse_the_generator(flat_run):
    root, first = flat_run
    again = _materialize(root, "tiny_flat", selection=[flat.source_data, flat.trained_generator])
    assert again.success
    meta = [m.materialization.metadata for m in again.get_asset_materialization_events()
            if m.materialization.asset_key == dg.AssetKey(["flat", "trained_generator"])][0]
    assert meta["reused"].value is True
    assert (again.output_for_node("flat__trained_generator")["generator_id"]
            == first.output_for_node("flat__trained_generator")["generator_id"])


@pytest.mark.slow
def test_pool_shards_are_parallel_steps_and_a_rerun_resumes(flat_run):
    """Each shard is a mapped step; after losing a shard, a re-run regenerates only that one, identically."""
    root, first = flat_run
    shard_steps = sorted(e.step_key for e in first.all_events if e.is_step_success and "pool_shard" in e.step_key)
    # 3,200 rows / 1,000
    assert shard_steps == [f"flat__candidate_pool.flat_pool_shard[shard_{k:05d}]" for k in range(4)]
    pool = first.output_for_node("flat__candidate_pool")
    shards = [Path(p) for p in pool["shards"]]
    original = {p.name: p.read_bytes() for p in shards}
    shards[2].unlink()
    again = _materialize(root, "tiny_flat", selection=[flat.source_data, flat.trained_generator, flat.candidate_pool])
    assert again.success
    meta = [m.materialization.metadata for m in again.get_asset_materialization_events()
            if m.materialization.asset_key == dg.AssetKey(["flat", "candidate_pool"])][0]
    assert meta["shards_reused"].value == 3
    assert {p.name: p.read_bytes() for p in shards} == original


@pytest.mark.slow
def test_failing_privacy_gate_skips_the_downstream_report(flat_run):
    root, _ = flat_run
    published = root / "artifacts" / "flat" / "tiny_flat" / "published" / "report.json"
    before = published.stat().st_mtime_ns
    strict = {"flat__refined_output": {"config": {"max_membership_auc": 0.0}}}
    result = _materialize(root, "tiny_flat", strict)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["privacy_gate"].passed is False
    assert "membership_auc" in checks["privacy_gate"].description
    materialised = {m.materialization.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert "flat/refined_output" in materialised and "flat/quality_report" not in materialised
    assert not any(e.step_key == "flat__quality_report" and e.is_step_start for e in result.all_events)
    assert published.stat().st_mtime_ns == before  # nothing was published


@pytest.mark.parametrize(
    "partition, step, message",
    [
        ("empty_flat", "source_data", "has no rows"),
        ("unknown_column", "source_data", "exclude column 'no_such_column' not found"),
        pytest.param("pool_too_small", "candidate_pool", "smaller than the target size 400",
                     marks=pytest.mark.slow),  # trains a one-epoch model before the pool step refuses
    ],
)
def test_bad_configuration_fails_the_step_with_a_clear_message(tmp_path, partition, step, message):
    result = _materialize(tmp_path, partition)
    assert not result.success
    failure = _step_failure(result)
    assert message in failure and "\n" not in failure.strip()
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    # candidate_pool is a graph: its planning step is the one that refuses
    assert len(failed) == 1 and (failed[0] == f"flat__{step}" or failed[0].startswith(f"flat__{step}."))
    # no partial output of the failed step
    runs = list((tmp_path / "artifacts").glob(f"flat/{partition}/runs/*/{step}"))
    assert runs == []


@pytest.mark.slow
def test_report_reuses_the_checks_evaluation_and_equals_a_fresh_one(flat_run, tmp_path):
    """refined_output keeps its evaluation (with the pictures' data) for the report, so the output is
    evaluated once; a report from a fresh evaluation (what an older run, without it, gets) is identical."""
    from synth_orchestration.assets.report import html_report

    root, result = flat_run
    out = result.output_for_node("flat__refined_output")
    kept = Path(out["evaluation_details"])
    assert kept.is_file() and kept.parent == Path(out["parquet"]).parent
    run_id = result.run_id
    store = MetricStoreResource(database=str(root / "metrics.duckdb")).store()
    source = result.output_for_node("flat__source_data")
    (tmp_path / "kept").mkdir()
    (tmp_path / "fresh").mkdir()
    page, _ = html_report(store, run_id, "tiny_flat", "flat", out, source, tmp_path / "kept")
    without = {k: v for k, v in out.items() if k != "evaluation_details"}
    fresh, _ = html_report(store, run_id, "tiny_flat", "flat", without, source, tmp_path / "fresh")
    assert page.read_bytes() == fresh.read_bytes()
