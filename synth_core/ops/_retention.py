"""Retention: which artifact folders are old enough to delete, and deleting them.

Layout (see ``synth_orchestration.resources.ArtifactStore``)::

    <artifact_root>/<kind>/<dataset>/runs/<run_id>/<asset>/...   one folder per pipeline run
    <artifact_root>/<kind>/<dataset>/pools/<identity>-<tag>/     candidate pools (resumable)
    <artifact_root>/<kind>/<dataset>/generators/<identity>/      trained generators (reused)
    <artifact_root>/<kind>/<dataset>/published/                  the current published output

Rules, per dataset, with ``cutoff = now − retention_days`` and age = the folder's own mtime:

* ``runs/<run_id>/`` older than the cutoff is deleted, except the run named by
  ``published/manifest.json`` (``run_id``): the published output's run keeps its outputs and manifest;
* ``pools/<...>/`` older than the cutoff is deleted (a later run regenerates a pool it needs);
* ``generators/<...>/`` is kept for reuse unless it is older than the cutoff **and** its
  ``generator.json`` names a ``generator_id`` that neither the published manifest nor the manifest
  of any run folder that is kept refers to (a kept run must not point at a deleted generator);
* ``published/`` is never touched, nor anything outside ``runs/``, ``pools/`` and ``generators/``.

When ``published/`` exists but its manifest cannot be read, the published run and generator are
unknown, so no run and no generator of that dataset is deleted (pools still are).
Folders of datasets that are not in the given list are left alone. Symbolic links are never
followed or deleted. No Dagster import.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from synth_core.ops._datasets import DatasetSpec
from synth_core.ops._layout import GENERATORS, POOLS, PUBLISHED, RUNS

log = logging.getLogger(__name__)

DELETABLE_PARENTS = (RUNS, POOLS, GENERATORS)
MANIFEST = "manifest.json"
GENERATOR_FILE = "generator.json"


@dataclass
class CleanupReport:
    """What :func:`apply_cleanup` did."""

    removed: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)  # already gone (e.g. removed concurrently)
    bytes_freed: int = 0


def _timestamp(now: datetime | float | None) -> float:
    if now is None:
        return datetime.now(UTC).timestamp()
    if isinstance(now, datetime):
        if now.tzinfo is None:  # naive: taken as UTC, like the metric store
            now = now.replace(tzinfo=UTC)
        return now.timestamp()
    return float(now)


def _subfolders(folder: Path) -> list[Path]:
    if not folder.is_dir() or folder.is_symlink():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())


def _mtime(path: Path) -> float:
    return path.lstat().st_mtime


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _published_manifest(dataset_dir: Path) -> tuple[bool, dict | None]:
    """(whether ``published/`` exists, its manifest or None when absent/unreadable)."""
    published = dataset_dir / PUBLISHED
    if not published.exists():
        return False, None
    return True, _read_json(published / MANIFEST)


def _run_generator_ids(run_dir: Path) -> set[str]:
    """Generator ids named by the manifests inside a run folder (normally one, in refined_output/)."""
    ids = set()
    for manifest in run_dir.glob(f"*/{MANIFEST}"):
        data = _read_json(manifest)
        if data and data.get("generator_id"):
            ids.add(str(data["generator_id"]))
    return ids


def plan_dataset(dataset_dir: Path, retention_days: int, now: datetime | float | None = None) -> list[Path]:
    """Folders of one dataset (``<artifact_root>/<kind>/<name>``) that the retention rules delete."""
    cutoff = _timestamp(now) - timedelta(days=retention_days).total_seconds()
    has_published, manifest = _published_manifest(dataset_dir)
    unknown_publication = has_published and manifest is None
    if unknown_publication:
        log.warning("%s: unreadable %s/%s; keeping every run and generator", dataset_dir, PUBLISHED, MANIFEST)
    published_run = str(manifest["run_id"]) if manifest and manifest.get("run_id") else None
    referenced = {str(manifest["generator_id"])} if manifest and manifest.get("generator_id") else set()

    doomed: list[Path] = []
    kept_runs: list[Path] = []
    for run in _subfolders(dataset_dir / RUNS):
        if unknown_publication or run.name == published_run or _mtime(run) >= cutoff:
            kept_runs.append(run)
        else:
            doomed.append(run)
    for run in kept_runs:
        referenced |= _run_generator_ids(run)

    doomed += [pool for pool in _subfolders(dataset_dir / POOLS) if _mtime(pool) < cutoff]

    if not unknown_publication:
        for gen in _subfolders(dataset_dir / GENERATORS):
            if _mtime(gen) >= cutoff:
                continue
            handle = _read_json(gen / GENERATOR_FILE) or {}
            if str(handle.get("generator_id") or "") in referenced:
                continue
            doomed.append(gen)
    return doomed


def plan_cleanup(
    artifact_root: str | os.PathLike, datasets: Iterable[DatasetSpec], now: datetime | float | None = None
) -> list[Path]:
    """Every folder under ``artifact_root`` that the retention rules delete (nothing is deleted here).

    ``now``: an aware datetime, a naive one taken as UTC, a POSIX timestamp, or None for the
    current time.
    """
    root = Path(artifact_root)
    plan: list[Path] = []
    for spec in datasets:
        dataset_dir = root / spec.kind / spec.name
        if dataset_dir.is_dir():
            plan += plan_dataset(dataset_dir, spec.retention_days, now)
    return plan


def _size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def apply_cleanup(paths: Iterable[str | os.PathLike]) -> CleanupReport:
    """Delete the planned folders; a folder already gone is noted, not an error.

    Refuses (``ValueError``, before deleting anything) any path that is not a direct child of a
    ``runs/``, ``pools/`` or ``generators/`` folder, so a wrong list cannot delete a published output.
    """
    paths = [Path(p) for p in paths]
    for path in paths:
        if path.parent.name not in DELETABLE_PARENTS or path.is_symlink():
            raise ValueError(f"refusing to delete {path}: not a folder inside runs/, pools/ or generators/")
    report = CleanupReport()
    for path in paths:
        if not path.exists():
            report.missing.append(path)
            continue
        size = _size(path)
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            report.missing.append(path)
            continue
        report.removed.append(path)
        report.bytes_freed += size
    return report
