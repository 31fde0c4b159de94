"""One typing of a table's columns, decided once and used everywhere.

:func:`infer_schema` decides each column's kind from the training part (a dataset's
``columns:`` block or ``synth --column`` may state any of them), and :meth:`Schema.apply`
gives every table of a run the dtypes that carry that decision: the generator's encoding
types, the metric's binning, the privacy distances and the pool conformance all read the kind
off the dtype. :meth:`Schema.restore` writes date-like text back in the source's format.

Kinds: ``categorical``, ``integer``, ``float``, ``datetime``, ``boolean``, ``constant``
(modelled); ``identifier``, ``text``, ``empty`` and a stated ``drop`` (left out of the twin).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from synth_core.errors import InputError
from synth_core.schema._infer import DATETIME_FORMATS, convert, detect_datetime_format, infer_kind

MODELLED = ("categorical", "integer", "float", "datetime", "boolean", "constant")
LEFT_OUT = ("identifier", "text", "empty", "drop")
KINDS = MODELLED + LEFT_OUT
STATABLE = ("categorical", "integer", "float", "datetime", "boolean", "drop")  # what a user may write
# The MOSTLY AI engine's encoding for each modelled kind: never AUTO, whose guesses (month names
# read as dates) fail inside the engine.
ENGINE_ENCODINGS = {
    "categorical": "TABULAR_CATEGORICAL",
    "boolean": "TABULAR_CATEGORICAL",
    "integer": "TABULAR_NUMERIC_AUTO",
    "float": "TABULAR_NUMERIC_AUTO",
    "datetime": "TABULAR_DATETIME",
}


def engine_encoding(values: pd.Series) -> str:
    """The engine's encoding type for a column already in its kind's dtype (:meth:`Schema.apply`)."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return ENGINE_ENCODINGS["categorical"]
    if pd.api.types.is_numeric_dtype(dtype):
        return ENGINE_ENCODINGS["float"]
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return ENGINE_ENCODINGS["datetime"]
    return ENGINE_ENCODINGS["categorical"]


@dataclass(frozen=True)
class ColumnType:
    """The decision for one column.

    Attributes
    ----------
    column : str
    kind : str
        One of :data:`KINDS`.
    source_dtype : str
        The dtype the column was read with.
    note : str
        Why, for the kinds that need a reason (left-out columns, date formats).
    datetime_format : str or None
        Date-like text: the format it is parsed with and written back in.
    stated : bool
        The user stated the kind (the dataset's ``columns:`` or ``--column``).
    """

    column: str
    kind: str
    source_dtype: str
    note: str = ""
    datetime_format: str | None = None
    stated: bool = False

    @property
    def modelled(self) -> bool:
        """Whether the generator models the column (its kind is in :data:`MODELLED`)."""
        return self.kind in MODELLED


@dataclass(frozen=True)
class Schema:
    """The column kinds of a table (the group key, when there is one, is not typed)."""

    columns: tuple[ColumnType, ...] = field(default_factory=tuple)

    def __getitem__(self, column: str) -> ColumnType:
        for c in self.columns:
            if c.column == column:
                return c
        raise KeyError(column)

    @property
    def left_out(self) -> list[str]:
        """Columns the twin leaves out (identifiers, free text, all-missing, stated drops)."""
        return [c.column for c in self.columns if not c.modelled]

    def apply(self, frame: pd.DataFrame, *, what: str = "table", drop_inferred: bool = True) -> pd.DataFrame:
        """``frame`` without the left-out columns and with each column in its kind's dtype.

        Columns the schema does not know (a group key) are kept as they are. A present value
        that does not fit a *stated* kind is an :class:`InputError` naming ``what`` and the
        column; for an inferred kind it becomes missing. ``drop_inferred=False`` keeps the
        columns left out by inference alone, untouched (``synth select``/``evaluate`` train no
        model: their identifiers stay, left out of the privacy figures as ever).
        """
        dropped = [c.column for c in self.columns if not c.modelled and (drop_inferred or c.stated)]
        out = frame.drop(columns=[c for c in dropped if c in frame.columns])
        for c in self.columns:
            if c.modelled and c.column in out.columns:
                out[c.column] = convert(out[c.column], c.kind, c.datetime_format,
                                        where=f"{what}: column {c.column!r}", strict=c.stated)
        return out

    def restore(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with date-like text columns written back in their source format."""
        out = frame.copy(deep=False)
        for c in self.columns:
            if c.datetime_format is not None and c.column in out.columns:
                values = pd.to_datetime(out[c.column], errors="coerce")
                out[c.column] = values.dt.strftime(c.datetime_format).astype(object).where(values.notna(), None)
        return out

    def records(self) -> list[dict]:
        """One plain dict per column (metadata, manifests, the report's "Columns" table);
        :meth:`from_records` reads them back."""
        return [{"column": c.column, "kind": c.kind, "action": "model" if c.modelled else "drop",
                 "source_dtype": c.source_dtype, "note": c.note, "datetime_format": c.datetime_format,
                 "stated": c.stated} for c in self.columns]

    @classmethod
    def from_records(cls, records: Iterable[Mapping]) -> Schema:
        """The schema from :meth:`records`' dicts (keys that are no field are ignored)."""
        names = ("column", "kind", "source_dtype", "note", "datetime_format", "stated")
        return cls(tuple(ColumnType(**{k: r[k] for k in names if k in r}) for r in records))

    def kinds(self) -> dict[str, str]:
        """Each column's kind, by column name."""
        return {c.column: c.kind for c in self.columns}


def parse_overrides(items: Iterable[str], *, option: str = "--column") -> dict[str, str]:
    """``["Month=categorical", ...]`` (the CLI's form) as a mapping; a malformed item is an :class:`InputError`."""
    out = {}
    for item in items:
        name, sep, kind = str(item).partition("=")
        if not sep or not name.strip():
            raise InputError(f"{option} {item!r}: expected NAME=KIND (KIND one of {', '.join(STATABLE)})")
        out[name.strip()] = kind.strip()
    return out


def infer_schema(
    training: pd.DataFrame,
    *,
    overrides: Mapping[str, str] | None = None,
    datetime_formats: Mapping[str, str] | None = None,
    group_key: str | None = None,
    keep: Iterable[str] = (),
    what: str = "training",
) -> Schema:
    """Decide every column's kind from ``training``.

    Parameters
    ----------
    training : DataFrame
    overrides : mapping, optional
        Column → stated kind (one of :data:`STATABLE`); it wins over the inferred one.
    datetime_formats : mapping, optional
        Column → ``strftime`` format: the column is date-like text in that format.
    group_key : str, optional
        Sequences: the key (never typed) whose groups also reveal per-sequence identifiers.
    keep : iterable of str
        Columns that must stay modelled (declared context columns): a left-out kind becomes
        ``categorical``.
    what : str
        The table's name in messages.

    Returns
    -------
    Schema
    """
    overrides, datetime_formats, keep = dict(overrides or {}), dict(datetime_formats or {}), set(keep)
    for name, kind in overrides.items():
        if kind not in STATABLE:
            raise InputError(f"column {name!r}: unknown kind {kind!r} (one of {', '.join(STATABLE)})")
    for name in [*overrides, *datetime_formats]:
        if name not in training.columns:
            raise InputError(f"{what}: no column {name!r} (columns: {name}: ...)")
        if name == group_key:
            raise InputError(f"column {name!r} is the group key: its kind cannot be stated")
    # a missing key is the caller's to report, in its own words
    groups = training[group_key] if group_key in training.columns else None
    columns = []
    for name in training.columns:
        if name == group_key:
            continue
        values = training[name]
        if name in overrides or name in datetime_formats:
            columns.append(_stated(values, overrides.get(name, "datetime"), datetime_formats.get(name), what))
            continue
        kind, note, fmt = infer_kind(values, groups)
        if name in keep and kind in LEFT_OUT:
            kind, note = "categorical", "declared context column"
        columns.append(ColumnType(str(name), kind, str(values.dtype), note, fmt))
    schema = Schema(tuple(columns))
    if not any(c.modelled for c in schema.columns):
        raise InputError(f"{what}: no column left to model ({_left_out_summary(schema)})")
    return schema


def _stated(values: pd.Series, kind: str, fmt: str | None, what: str) -> ColumnType:
    name = str(values.name)
    if kind == "datetime" and fmt is None:
        fmt = detect_datetime_format(values)
    column = ColumnType(name, kind, str(values.dtype), "", fmt, stated=True)
    if column.modelled:  # the training values must fit what the user says
        convert(values, kind, fmt, where=f"{what}: column {name!r}", strict=True)
    return column


def _left_out_summary(schema: Schema) -> str:
    return ", ".join(f"{c.column}: {c.kind}" for c in schema.columns if not c.modelled)


__all__ = [
    "ColumnType",
    "DATETIME_FORMATS",
    "ENGINE_ENCODINGS",
    "KINDS",
    "LEFT_OUT",
    "MODELLED",
    "STATABLE",
    "Schema",
    "engine_encoding",
    "infer_schema",
    "parse_overrides",
]
