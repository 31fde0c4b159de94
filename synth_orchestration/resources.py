"""Resources: where artifacts live and where metrics go."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pydantic import field_validator

from synth_core.ops import ArtifactLayout, MetricStore

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = Path(os.environ.get("SYNTH_STATE_DIR", PROJECT_ROOT / ".synth"))


class ArtifactStore(dg.ConfigurableResource):
    """Large artifacts (generators, pools, code matrices, subsets, outputs) as files.

    The folders are :class:`synth_core.ops._layout.ArtifactLayout`'s; assets hand each other the paths.
    """

    artifact_root: str = os.environ.get("SYNTH_ARTIFACT_ROOT", str(STATE_DIR / "artifacts"))

    @field_validator("artifact_root")
    @classmethod
    def _local_path(cls, value: str) -> str:
        # pandas/numpy/shutil and atomic renames need a file system: object storage goes through a mount
        if "://" in value:
            raise ValueError(
                f"artifact_root {value!r} is a URL; give a local or mounted path (object storage through a "
                "volume mount, see deploy/k8s/README.md)"
            )
        return value

    @property
    def layout(self) -> ArtifactLayout:
        """The artifact folders under ``artifact_root``."""
        return ArtifactLayout(Path(self.artifact_root))

    def run_dir(self, kind: str, dataset: str, run_id: str, asset: str) -> Path:
        """The folder of one asset's files in one run."""
        return self.layout.run_dir(kind, dataset, run_id, asset)

    def dataset_dir(self, kind: str, dataset: str) -> Path:
        """The folder of a dataset's artifacts."""
        return self.layout.dataset_dir(kind, dataset)

    def generators_dir(self, kind: str, dataset: str) -> Path:
        """The folder of a dataset's trained generators."""
        return self.layout.generators_dir(kind, dataset)

    def pools_dir(self, kind: str, dataset: str) -> Path:
        """The folder of a dataset's candidate pools."""
        return self.layout.pools_dir(kind, dataset)

    def published_dir(self, kind: str, dataset: str) -> Path:
        """The folder of a dataset's published output."""
        return self.layout.published_dir(kind, dataset)


class MetricStoreResource(dg.ConfigurableResource):
    """The DuckDB metric store (append-only; one short write per stage)."""

    database: str = str(STATE_DIR / "metrics.duckdb")

    def store(self) -> MetricStore:
        """The metric store in ``database``."""
        return MetricStore(self.database)
