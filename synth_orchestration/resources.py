"""Resources: where artifacts live and where metrics go."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from synth_core.store import MetricStore

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = Path(os.environ.get("SYNTH_STATE_DIR", PROJECT_ROOT / ".synth"))


class ArtifactStore(dg.ConfigurableResource):
    """Large artifacts (generators, pools, code matrices, subsets, outputs) as files.

    Layout: ``<artifact_root>/<kind>/<dataset>/runs/<run_id>/<asset>/...``; published outputs
    under ``<artifact_root>/<kind>/<dataset>/published/``. Assets hand each other the paths.
    """

    artifact_root: str = str(STATE_DIR / "artifacts")

    def run_dir(self, kind: str, dataset: str, run_id: str, asset: str) -> Path:
        path = Path(self.artifact_root) / kind / dataset / "runs" / run_id / asset
        path.mkdir(parents=True, exist_ok=True)
        return path

    def dataset_dir(self, kind: str, dataset: str) -> Path:
        path = Path(self.artifact_root) / kind / dataset
        path.mkdir(parents=True, exist_ok=True)
        return path


class MetricStoreResource(dg.ConfigurableResource):
    """The DuckDB metric store (append-only; one short write per stage)."""

    database: str = str(STATE_DIR / "metrics.duckdb")

    def store(self) -> MetricStore:
        return MetricStore(self.database)
