"""The datasets file: a YAML list of datasets, validated into :class:`DatasetSpec` objects.

Example (``datasets.yaml``)::

    datasets:
      - name: census
        kind: flat
        source: data/census.csv.gz
        holdout: data/census-holdout.csv.gz
        target_size: 24000
        training: {max_epochs: 20}
        schedule: "0 4 * * 1"
        retention_days: 14
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from synth_core.errors import InputError
from synth_core.ops._datasets import DEMO_DATASETS, DatasetSpec

ENV_VAR = "SYNTH_DATASETS"


def _describe(error: ValidationError, entry: dict, path: Path) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    name = entry.get("name", "?") if isinstance(entry, dict) else "?"
    if first.get("type") == "extra_forbidden":
        return f"{path}: dataset {name!r}: unknown key {where!r}"
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    return f"{path}: dataset {name!r}: {where + ': ' if where else ''}{message}"


def load_catalog(path: str | os.PathLike, *, check_files: bool = True) -> list[DatasetSpec]:
    """Read and validate a datasets file; relative source paths are relative to the file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"datasets file not found: {path}")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(document, dict) or set(document) - {"datasets"}:
        unknown = sorted(set(document) - {"datasets"}) if isinstance(document, dict) else ["<not a mapping>"]
        raise InputError(f"{path}: unknown top-level key {unknown[0]!r} (expected 'datasets')")
    entries = document.get("datasets") or []
    if not isinstance(entries, list):
        raise InputError(f"{path}: 'datasets' must be a list")
    specs: list[DatasetSpec] = []
    seen: set[str] = set()
    for entry in entries:
        try:
            spec = DatasetSpec.model_validate(entry)
        except ValidationError as exc:
            raise InputError(_describe(exc, entry, path)) from None
        if spec.name in seen:
            raise InputError(f"{path}: duplicate dataset name {spec.name!r}")
        seen.add(spec.name)
        if check_files:
            for location in (spec.source, spec.holdout):
                if location and not location.startswith("demo:"):
                    file = Path(location) if Path(location).is_absolute() else path.parent / location
                    if not file.exists():
                        raise InputError(f"{path}: dataset {spec.name!r}: file not found: {file}")
        specs.append(spec)
    return specs


def default_catalog_path(project_root: Path) -> Path:
    return Path(os.environ.get(ENV_VAR, project_root / "datasets.yaml"))


def catalog_or_demo(path: Path) -> tuple[list[DatasetSpec], Path]:
    """The datasets of ``path``, or the built-in demo datasets when the file does not exist."""
    if path.exists():
        return load_catalog(path), path.parent
    return list(DEMO_DATASETS), path.parent
