"""Operations: what a data team declares and what a run leaves behind.

``_datasets`` and ``_catalog`` (the datasets file), ``_layout`` (where artifacts live, the assets'
names), ``_store`` (the DuckDB metric store), ``_history`` (the trend per run), ``_retention``
(deleting old artifacts).
"""

from synth_core.ops._catalog import catalog_or_demo, default_catalog_path, load_catalog
from synth_core.ops._datasets import DEMO_DATASETS, DEMO_PREFIX, DatasetSpec, load_dataset
from synth_core.ops._history import run_history
from synth_core.ops._layout import (
    FINAL_ASSET,
    GENERATOR_ASSET,
    POOL_ASSET,
    REPORT_ASSET,
    SOURCE_ASSET,
    STAGES,
    ArtifactLayout,
    asset_name,
)
from synth_core.ops._retention import apply_cleanup, plan_cleanup
from synth_core.ops._store import MetricStore

__all__ = [
    "ArtifactLayout",
    "DEMO_DATASETS",
    "DEMO_PREFIX",
    "DatasetSpec",
    "FINAL_ASSET",
    "GENERATOR_ASSET",
    "MetricStore",
    "POOL_ASSET",
    "REPORT_ASSET",
    "SOURCE_ASSET",
    "STAGES",
    "apply_cleanup",
    "asset_name",
    "catalog_or_demo",
    "default_catalog_path",
    "load_catalog",
    "load_dataset",
    "plan_cleanup",
    "run_history",
]
