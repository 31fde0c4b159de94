"""One pipeline per kind: a graph run on a pool of one's own publishes exactly what ``synth select``
writes for that pool, byte for byte; nothing is trained."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from synth_core.cli import main
from synth_orchestration.assets import flat, sequential
from synth_orchestration.common import DATASETS_BASE, datasets_of
from synth_orchestration.resources import ArtifactStore, MetricStoreResource

CASES = {
    "flat": (flat.ASSETS, "own_pool_flat"),
    "sequential": (sequential.ASSETS, "own_pool_seq"),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def own_pool_run(request, tmp_path_factory):
    kind = request.param
    assets, dataset = CASES[kind]
    root = tmp_path_factory.mktemp(f"own-{kind}")
    result = dg.materialize(
        assets,
        partition_key=dataset,
        resources={"artifacts": ArtifactStore(artifact_root=str(root / "artifacts")),
                   "metrics": MetricStoreResource(database=str(root / "metrics.duckdb"))},
        raise_on_error=False,
    )
    spec = next(s for s in datasets_of(kind) if s.name == dataset)
    return kind, spec, root, result


def _output(kind: str, result, asset: str):
    return result.output_for_node(f"{kind}__{asset}")


def test_the_graph_runs_on_the_given_pool_without_training(own_pool_run):
    kind, spec, root, result = own_pool_run
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"accuracy_floor": True, "privacy_gate": True, "integrity": True}
    generator = _output(kind, result, "trained_generator")
    assert generator["path"] is None and generator["generator_id"].startswith("pool:")
    assert not (root / "artifacts" / kind / spec.name / "generators").exists() or not any(
        (root / "artifacts" / kind / spec.name / "generators").iterdir())
    manifest = Path(_output(kind, result, "refined_output")["manifest"]).read_text()
    assert generator["generator_id"] in manifest  # the lineage names the pool that stood in for a generator


def test_the_published_output_equals_synth_select(own_pool_run, tmp_path, capsys):
    kind, spec, root, result = own_pool_run
    published = Path(_output(kind, result, "quality_report")["published"]["csv"])
    training = _output(kind, result, "source_data")["training"]
    out = tmp_path / "select.csv"
    argv = ["select", "--training", str(training), "--pool", str(spec.pool_path(DATASETS_BASE)),
            "--size", str(spec.target_size), "--seed", "0", "--output", str(out), "--force"]
    if spec.group_key:
        argv += ["--group-key", spec.group_key]
    assert main(argv) in (0, 3), capsys.readouterr().err  # 3: the CLI judges without a holdout; --force writes
    assert out.read_bytes() == published.read_bytes()
