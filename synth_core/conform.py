"""Give a table training's column order and dtypes, converting only where no value is lost.

A pool from any generator (or read back from CSV) may hold a column in another dtype than
training: ``int64`` as nullable ``Int64`` or as ``float64`` (``3.0``), strings as ``object`` or
``category``. Such columns are converted. A column whose values do not fit training's type is
refused with an :class:`~synth_core.errors.InputError` naming the table, the column and both
types, instead of an output whose dtypes silently differ from training's. The rules, by the
kind of training's column:

* integers (``int64``, ``Int64``, ...): numbers whose non-missing values are whole and within
  the type's range; missing values only where training's type can hold them;
* floats: any numbers (rounded to the type's precision);
* booleans: booleans (missing values only for the nullable ``boolean``);
* text (``str``, ``string``, ``object`` of strings): text, never numbers (0/1 are no labels);
* categories: values among training's categories, of the categories' kind;
* datetimes: datetimes, or text that parses as datetimes; timedeltas: timedeltas;
* ``object`` columns of mixed Python types: anything (kept as objects).

A column that is missing entirely fits every type that can hold missing values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from synth_core.errors import InputError

_OBJECT_KINDS = {
    "string": "text",
    "empty": "empty",
    "integer": "number",
    "floating": "number",
    "mixed-integer-float": "number",
    "decimal": "number",
    "boolean": "boolean",
    "datetime": "datetime",
    "datetime64": "datetime",
    "date": "datetime",
    "timedelta": "timedelta",
    "timedelta64": "timedelta",
}


def value_kind(values: pd.Series | pd.Index) -> str:
    """``number``, ``boolean``, ``text``, ``datetime``, ``timedelta``, ``empty`` (every value
    missing) or ``mixed``: what a column holds, whatever its dtype."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return value_kind(dtype.categories)
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "timedelta"
    if dtype == object:  # noqa: E721 (dtype equality: np.dtype('O') == object, not a type check)
        return _OBJECT_KINDS.get(pd.api.types.infer_dtype(values, skipna=True), "mixed")
    if pd.api.types.is_string_dtype(dtype):
        return "text"
    return "mixed"


def _holds_missing(dtype) -> bool:
    """Whether a column of ``dtype`` can hold a missing value without changing its type."""
    return not (isinstance(dtype, np.dtype) and dtype.kind in "biu")


def conform_column(column: pd.Series, reference: pd.Series, *, where: str) -> pd.Series:
    """``column`` in the dtype of ``reference`` (training's column), or :class:`InputError`
    when values would be lost. ``where`` names the column for messages, e.g.
    ``"pool.csv: column 'age'"``.
    """
    dtype = reference.dtype
    if column.dtype == dtype:
        return column
    missing = column.isna()
    want = value_kind(reference)
    have = "empty" if missing.all() else value_kind(column)
    if missing.any() and not _holds_missing(dtype):
        raise InputError(f"{where} has missing values but training's {dtype} has none")
    if isinstance(dtype, pd.CategoricalDtype):
        return _to_categories(column, dtype, missing, where)
    if want in ("mixed", "empty"):  # training's objects say nothing narrower
        return column.astype(object)
    if have == "empty":
        return column.astype(dtype)
    if want == "datetime" and have == "text":
        parsed = pd.to_datetime(column, errors="coerce")
        if (parsed.isna() & ~missing).any():
            bad = column[parsed.isna() & ~missing].iloc[0]
            raise InputError(f"{where} is {column.dtype} (e.g. {_show(bad)}) but training's is {dtype}")
        return parsed.astype(dtype)
    if have != want:
        example = _not_numeric(column, missing) if want == "number" else _example(column, missing)
        raise InputError(f"{where} is {column.dtype} (e.g. {_show(example)}) but training's is {dtype}")
    if want == "number" and pd.api.types.is_integer_dtype(dtype):
        return _to_integers(column, dtype, missing, where)
    try:
        return column.astype(dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"{where} is {column.dtype} and does not convert to training's {dtype}: {exc}") from None


def _to_integers(column: pd.Series, dtype, missing: pd.Series, where: str) -> pd.Series:
    values = column[~missing]
    as_float = values.astype("float64")
    if not np.isfinite(as_float).all() or not (as_float == np.floor(as_float)).all():
        bad = values[~(np.isfinite(as_float) & (as_float == np.floor(as_float)))].iloc[0]
        raise InputError(f"{where} has non-integer values (e.g. {_show(bad)}) but training's is {dtype}")
    try:
        out = column.astype(dtype)
    except (TypeError, ValueError, OverflowError):
        out = None
    # a value outside the type's range wraps around silently in numpy: compare after the cast
    if out is None or not (out[~missing].astype("float64") == as_float).all():
        raise InputError(f"{where} has values outside the range of training's {dtype}")
    return out


def _to_categories(column: pd.Series, dtype: pd.CategoricalDtype, missing: pd.Series, where: str) -> pd.Series:
    want, have = value_kind(dtype.categories), value_kind(column)
    if have not in (want, "empty"):
        raise InputError(f"{where} is {column.dtype} (e.g. {_show(_example(column, missing))}) but training's is "
                         f"a category of {dtype.categories.dtype}")
    unknown = ~(missing | column.isin(dtype.categories))  # astype would make them missing values
    if unknown.any():
        raise InputError(f"{where} has values outside training's categories (e.g. {_show(column[unknown].iloc[0])})")
    return column.astype(dtype)


def _show(value) -> str:
    """A value as the user wrote it (``2.5``, ``'age32'``), not as numpy spells it."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _example(column: pd.Series, missing: pd.Series):
    values = column[~missing]
    return values.iloc[0] if len(values) else None


def _not_numeric(column: pd.Series, missing: pd.Series):
    """The first value that is no number (the one to show the user), else the first value."""
    values = column[~missing]
    bad = values[pd.to_numeric(values.astype(object), errors="coerce").isna()]
    return bad.iloc[0] if len(bad) else _example(column, missing)


def conform_table(
    frame: pd.DataFrame, training: pd.DataFrame, *, name: str = "pool", identifiers: Sequence[str] = ()
) -> pd.DataFrame:
    """``frame`` with training's column order and dtypes (see the module docstring).

    ``training``'s values tell what an ``object`` column holds (text or mixed); a 0-row frame
    gives only the dtypes, and then any values fit its ``object`` columns. ``identifiers``
    (a group key) name rows rather than hold data: they are converted where the rules allow
    and otherwise kept as they are (a pool may number its groups ``p1, p2, ...`` for training's
    integer keys). ``name`` is what the user calls ``frame`` (its file). Raises
    :class:`InputError` for a missing column or a data column whose values do not fit. The
    index is reset.
    """
    lacking = [c for c in training.columns if c not in frame.columns]
    if lacking:
        raise InputError(f"{name}: lacks training column {lacking[0]!r}")
    out = frame[list(training.columns)].reset_index(drop=True)
    for c in training.columns:
        if out[c].dtype == training[c].dtype:
            continue
        try:
            out[c] = conform_column(out[c], training[c], where=f"{name}: column {c!r}")
        except InputError:
            if c not in identifiers:
                raise
    return out


__all__ = ["conform_column", "conform_table", "value_kind"]
