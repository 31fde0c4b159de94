"""Where a dataset's artifacts live, and the names of the pipelines' assets: one place for both.

Artifacts live under an artifact root::

    <root>/<kind>/<dataset>/generators/<content key>/     trained generators, reused across runs
    <root>/<kind>/<dataset>/pools/<generator>-<params>/   pool shards + pool.json
    <root>/<kind>/<dataset>/runs/<run id>/<asset>/        per-run files of each asset
    <root>/<kind>/<dataset>/published/                    the gated output, its manifest and report

The metric store records figures under ``<kind>/<asset>``. The pipelines (Dagster), the retention
job and ``synth history`` all take the folder and asset names from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

KINDS = ("flat", "sequential")
GENERATORS, POOLS, RUNS, PUBLISHED = "generators", "pools", "runs", "published"

SOURCE_ASSET = "source_data"
GENERATOR_ASSET = "trained_generator"
POOL_ASSET = "candidate_pool"
FINAL_ASSET = "refined_output"
REPORT_ASSET = "quality_report"
# (stage label, asset recording it), in order: the stage table of a run
STAGES = {
    "flat": (("random", POOL_ASSET), ("ipf", "ipf_subset"), ("trimmed", "trimmed_subset"), ("refined", FINAL_ASSET)),
    "sequential": (("random", POOL_ASSET), ("coherence", "coherence_subset"), ("refined", FINAL_ASSET)),
}


def asset_name(kind: str, asset: str) -> str:
    """The asset's key as the metric store and the Dagster UI spell it: ``<kind>/<asset>``."""
    return f"{kind}/{asset}"


@dataclass(frozen=True)
class ArtifactLayout:
    """The artifact folders of one root (folders are created when asked for)."""

    root: Path

    def dataset_dir(self, kind: str, dataset: str) -> Path:
        return _made(Path(self.root) / kind / dataset)

    def generators_dir(self, kind: str, dataset: str) -> Path:
        return _made(self.dataset_dir(kind, dataset) / GENERATORS)

    def pools_dir(self, kind: str, dataset: str) -> Path:
        return _made(self.dataset_dir(kind, dataset) / POOLS)

    def run_dir(self, kind: str, dataset: str, run_id: str, asset: str) -> Path:
        return _made(self.dataset_dir(kind, dataset) / RUNS / run_id / asset)

    def published_dir(self, kind: str, dataset: str) -> Path:
        return _made(self.dataset_dir(kind, dataset) / PUBLISHED)


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


__all__ = [
    "ArtifactLayout",
    "FINAL_ASSET",
    "GENERATORS",
    "GENERATOR_ASSET",
    "KINDS",
    "POOLS",
    "POOL_ASSET",
    "PUBLISHED",
    "REPORT_ASSET",
    "RUNS",
    "SOURCE_ASSET",
    "STAGES",
    "asset_name",
]
