"""The default DP mode in the Dagster graph: a flat dataset with ``privacy:`` and no pool of its own fits
the DP marginal model on the whole budget, draws the pool from it, selects towards the pool's own
tables without reading training, and states (ε, δ) for the output."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from synth_orchestration.assets import flat
from synth_orchestration.resources import ArtifactStore, MetricStoreResource

DATASET = "tiny_flat_dp_model"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dp-model-graph")
    return dg.materialize(
        flat.ASSETS, partition_key=DATASET,
        resources={"artifacts": ArtifactStore(artifact_root=str(root / "artifacts")),
                   "metrics": MetricStoreResource(database=str(root / "metrics.duckdb"))},
        raise_on_error=False,
    )


def _output(result, asset: str):
    return result.output_for_node(f"flat__{asset}")


@pytest.mark.slow
def test_the_marginal_model_spends_the_budget_and_selection_none(run):
    assert run.success
    generator = _output(run, "trained_generator")
    assert generator["generator"] == "marginal"
    assert generator["privacy"]["generator_epsilon"] == 1.0 and generator["privacy"]["generator_delta"] == 1e-6
    problem = Path(_output(run, "mi_pairs")["problem"])
    assert not (problem / "train_codes.npy").exists()  # selection never saw training's codes
    with np.load(problem / "noisy.npz") as z:
        assert float(z["rho"]) == 0.0
    manifest = json.loads(Path(_output(run, "refined_output")["manifest"]).read_text())
    dp = manifest["differential_privacy"]
    assert (dp["epsilon"], dp["delta"], dp["selection_epsilon"]) == (1.0, 1e-6, 0.0)
    assert dp["generator_source"] == "marginal model"
    assert dp["statement"].startswith("(ε, δ) = (1, 1e-06) for the output: generator (1, 1e-06, spent by this "
                                      "run's DP marginal model) + selection (0, 0")


@pytest.mark.slow
def test_the_dp_twin_is_published_with_the_guarantee_in_its_report(run):
    report = _output(run, "quality_report")
    assert report["published"] is not None, report
    page = Path(report["published"]["report"]).read_text()
    assert "Differential privacy: (ε, δ) = (1, 1e-06) for the output" in page
    figures = _output(run, "refined_output")
    assert figures is not None
