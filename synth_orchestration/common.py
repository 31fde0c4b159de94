"""Glue shared by the flat and sequential graphs: dataset lookup, errors, stage bookkeeping."""

from __future__ import annotations

import json
import resource
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import dagster as dg
import numpy as np

from synth_core.errors import InputError
from synth_core.ops import DatasetSpec, catalog_or_demo, default_catalog_path
from synth_orchestration.resources import PROJECT_ROOT, MetricStoreResource


class Catalog(NamedTuple):
    """The datasets file (``$SYNTH_DATASETS`` or ``<repo>/datasets.yaml``), its datasets (the built-in
    demo datasets when the file does not exist) and the folder their relative paths start from."""

    path: Path
    datasets: list[DatasetSpec]
    base: Path


@cache
def catalog() -> Catalog:
    """The datasets catalog, read on first use (not at import) and then kept for the process: the
    graphs' partitions are built from it. A broken datasets file raises ``InputError`` here."""
    path = default_catalog_path(PROJECT_ROOT)
    datasets, base = catalog_or_demo(path)
    return Catalog(path, datasets, base)


_CATALOG_NAMES = {"CATALOG_PATH": "path", "DATASETS": "datasets", "DATASETS_BASE": "base"}


def __getattr__(name: str) -> Any:
    """The former module constants (``common.DATASETS``, ``DATASETS_BASE``, ``CATALOG_PATH``), read
    through :func:`catalog` when first asked for."""
    if name in _CATALOG_NAMES:
        return getattr(catalog(), _CATALOG_NAMES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def datasets_of(kind: str) -> list[DatasetSpec]:
    """The catalog's datasets of one kind (``flat`` or ``sequential``)."""
    return [d for d in catalog().datasets if d.kind == kind]


def partitions_for(kind: str) -> dg.StaticPartitionsDefinition:
    """One partition per dataset of ``kind`` (a placeholder partition when there is none)."""
    names = [d.name for d in datasets_of(kind)]
    return dg.StaticPartitionsDefinition(names or [f"no-{kind}-dataset"])


def graph_parts(kind: str) -> tuple[dg.StaticPartitionsDefinition, dict[str, Any], list]:
    """One graph's partitions (one per dataset), the arguments all its assets share and the
    gate's check specs on its final asset."""
    from synth_orchestration.checks import gate_check_specs

    partitions = partitions_for(kind)
    return partitions, dict(key_prefix=kind, group_name=kind, partitions_def=partitions), gate_check_specs(kind)


def begin(context: dg.AssetExecutionContext, metrics: MetricStoreResource, artifacts, kind: str,
          asset: str) -> tuple[DatasetSpec, Stage, Path]:
    """An asset's dataset, its stage recorder (started now) and its folder for this run."""
    spec = spec_for(context, kind)
    return spec, Stage(context, metrics, spec.name), artifacts.run_dir(kind, spec.name, context.run.run_id, asset)


def spec_for(context: dg.AssetExecutionContext, kind: str) -> DatasetSpec:
    """The dataset of the run's partition; an :class:`InputError` when ``kind`` has none of that name."""
    name = context.partition_key
    for spec in datasets_of(kind):
        if spec.name == name:
            return spec
    raise InputError(f"no {kind} dataset named {name!r} in {catalog().path}")


def merged_settings(context, config: dg.Config, overrides: dict, allowed: set[str]) -> dict[str, Any]:
    """Defaults < the dataset's overrides (datasets file) < fields set explicitly in run config."""
    values = config.model_dump()
    unknown = set(overrides) - allowed
    if unknown:
        raise InputError(f"unknown setting {sorted(unknown)[0]!r} in the dataset's overrides "
                         f"(allowed: {', '.join(sorted(allowed))})")
    values.update({k: v for k, v in overrides.items() if k in values})
    values.update({k: getattr(config, k) for k in explicit_keys(context, config) if k in values})
    return values


def explicit_keys(context, config: dg.Config) -> set[str]:
    """The config fields this step's run config names, a default value included (the config object
    alone cannot tell ``adaptive_pool: true`` set in the launchpad from the default ``true``)."""
    node = (context.run.run_config or {}).get("ops", {})
    path = list(context.op_handle.path)
    for name in path[:-1]:  # ops of a graph-backed asset nest under it
        node = (node.get(name) or {}).get("ops", {})
    raw = (node.get(path[-1]) or {}).get("config") or {}
    return set(raw) | set(getattr(config, "model_fields_set", set()))


def selection_settings(context, config: dg.Config, spec: DatasetSpec, kind: str) -> dict[str, Any]:
    """A selection asset's settings: its config over the dataset's ``selection`` block."""
    return merged_settings(context, config, spec.selection, selection_keys(kind))


def selection_keys(kind: str) -> set[str]:
    """Settings a dataset's ``selection`` block may override for this graph."""
    from synth_orchestration.configs import SELECTION_CONFIGS

    return set().union(*(set(cls.model_fields) for cls in SELECTION_CONFIGS[kind]))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@contextmanager
def user_errors(cleanup: Path | None = None) -> Iterator[None]:
    """Turn a user mistake into a failed step with a one-line message, leaving no partial output;
    a failed engine job too (its message names the engine's reason and log; a retry may help)."""
    from synth_core.generate import EngineError

    try:
        yield
    except InputError as exc:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    except EngineError as exc:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
        raise dg.Failure(description=str(exc)) from None
    except BaseException:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
        raise


class Stage:
    """Times a stage and records its figures in the metric store and the asset's metadata."""

    def __init__(self, context: dg.AssetExecutionContext, metrics: MetricStoreResource, dataset: str,
                 asset: str | None = None):
        self.context = context
        self.metrics = metrics
        self.dataset = dataset
        self._asset = asset  # the asset's key when the context is an op inside a graph-backed asset
        self.started = time.perf_counter()

    @property
    def asset(self) -> str:
        """The asset the figures are recorded under (``<kind>/<asset>``)."""
        return self._asset or self.context.asset_key.to_user_string()

    def elapsed(self) -> float:
        """Seconds since the stage started."""
        return time.perf_counter() - self.started

    def record(self, figures: dict[str, float | None]) -> dict[str, Any]:
        """Append figures (plus elapsed time and peak memory) to the store; return metadata values."""
        figures = {**figures, "elapsed_s": round(self.elapsed(), 3), "peak_rss_mb": round(peak_rss_mb(), 1)}
        self.metrics.store().append(self.context.run.run_id, self.dataset, self.asset, figures)
        return {k: (dg.MetadataValue.float(readable(k, v)) if v is not None else dg.MetadataValue.text("n/a"))
                for k, v in figures.items()}


def readable(name: str, value: float) -> float:
    """A figure as the UI shows it: seconds to 0.1 s, megabytes whole, everything else to 5
    significant digits (the metric store keeps full precision)."""
    value = float(value)
    if name.endswith("_s"):
        return round(value, 1)
    if name.endswith("_mb"):
        return float(round(value))
    return float(f"{value:.5g}")


def write_json(path: Path, payload: dict) -> Path:
    """Write ``payload`` as indented JSON in one atomic step (other values as strings); return ``path``."""
    from synth_core.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def accuracy_metadata(fields: dict, prefix: str = "accuracy") -> dict[str, float | None]:
    """Accuracy fields as figures named ``<prefix>_<field>``, leaving out the ``*_max`` fields and missing values."""
    return {f"{prefix}_{k}": v for k, v in fields.items() if not k.endswith("_max") and v is not None}


def guard_metadata(guard) -> dict[str, dg.MetadataValue]:
    """What the privacy guard removed from a pool, for the asset's metadata."""
    out = {"privacy_guard": dg.MetadataValue.text("on" if guard.enabled else "off: selection may use copies")}
    if guard.enabled:
        share = np.bincount(guard.strata, minlength=guard.n_strata) / max(1, len(guard.strata))
        out["closeness_strata"] = dg.MetadataValue.md(
            "| stratum | 0 (closest) | " + " | ".join(str(k) for k in range(1, guard.n_strata)) + " |\n"
            + "|---" * (guard.n_strata + 1) + "|\n| share of candidates | "
            + " | ".join(f"{x:.3f}" for x in share) + " |"
        )
    if guard.excluded_columns:
        out["guard_excluded_columns"] = dg.MetadataValue.json(guard.excluded_columns)
    if guard.remedy_note:
        out["privacy_remedy"] = dg.MetadataValue.text(guard.remedy_note)
    return out
