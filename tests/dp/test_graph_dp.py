"""A dataset with ``privacy:``: the Dagster graph builds the DP problem, publishes what
``synth select --epsilon`` writes for the same pool, and states the budget in the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from synth_core.cli import main
from synth_core.dp import PrivacyBudget
from synth_orchestration.assets import flat
from synth_orchestration.common import DATASETS_BASE, datasets_of
from synth_orchestration.resources import ArtifactStore, MetricStoreResource

DATASET = "own_pool_flat_dp"


@pytest.fixture(scope="module")
def dp_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dp-graph")
    result = dg.materialize(
        flat.ASSETS, partition_key=DATASET,
        resources={"artifacts": ArtifactStore(artifact_root=str(root / "artifacts")),
                   "metrics": MetricStoreResource(database=str(root / "metrics.duckdb"))},
        raise_on_error=False,
    )
    spec = next(s for s in datasets_of("flat") if s.name == DATASET)
    return spec, result


def _output(result, asset: str):
    return result.output_for_node(f"flat__{asset}")


def test_the_graph_states_the_budget_and_keeps_training_out_of_the_stages(dp_run):
    spec, result = dp_run
    assert result.success
    problem = Path(_output(result, "mi_pairs")["problem"])
    assert (problem / "noisy.npz").is_file() and not (problem / "train_codes.npy").exists()
    manifest = json.loads(Path(_output(result, "refined_output")["manifest"]).read_text())
    dp = manifest["differential_privacy"]
    budget = PrivacyBudget(8, 1e-6, generator="engine")
    assert dp["selection_rho"] == pytest.approx(budget.selection_rho)
    assert dp["selection_delta"] == pytest.approx(5e-7)
    # a given pool: its generator is unknown, so selection's own guarantee is stated and the output's left open
    assert dp["epsilon"] is None and dp["generator_source"] is None
    assert (dp["covers"].startswith("selection's use of training only")
            and "depends on how the pool was made" in dp["covers"])
    assert dp["statement"].startswith(f"(ε, δ) = ({dp['selection_epsilon']:.4g}, 5e-07) for selection's use")
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "refined_output"]
    metadata = events[0].materialization.metadata
    assert metadata["differential_privacy"].value["selection_rho"] == pytest.approx(budget.selection_rho)
    page = Path(_output(result, "quality_report")["published"]["report"]).read_text()
    # so does the report
    assert f"ε = {dp['selection_epsilon']:.3g}" in page and "depends on how the pool was made" in page
    assert "Not covered: the evaluation on this page" in page


def test_the_published_dp_output_equals_synth_select(dp_run, tmp_path, capsys):
    spec, result = dp_run
    published = Path(_output(result, "quality_report")["published"]["csv"])
    training = _output(result, "source_data")["training"]
    out = tmp_path / "select.csv"
    code = main(["select", "--training", str(training), "--pool", str(spec.pool_path(DATASETS_BASE)), "--size", "300",
                 "--epsilon", "8", "--delta", "1e-6", "--output", str(out), "--force"])
    capsys.readouterr()
    assert code in (0, 3)
    assert out.read_bytes() == published.read_bytes()
