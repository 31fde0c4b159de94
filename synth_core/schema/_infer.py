"""How a column's kind is decided from its values, and how a stated kind is applied.

Each rule reads the training part only; the same decision is then applied to every table of
the run (holdout, pools, outputs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synth_core.errors import InputError

# Text formats tried on string columns, strictest first; a format is taken only when every
# present value parses with it, so month names ("Feb", "June") never pass for dates.
DATETIME_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S.%fZ",
    "%Y/%m/%d",
    "%Y/%m/%d %H:%M:%S",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%y %H:%M",
    "%m/%d/%y",
    "%d/%m/%y",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%d %b %Y",
    "%d-%b-%Y",
    "%b %d %Y",
    "%b %d, %Y",
    "%d %B %Y",
    "%B %d, %Y",
    "%Y-%m",
    "%H:%M:%S",
    "%H:%M",
)
# A string column holding more distinct values than this share of its present values is free
# text or an identifier-like code: as categories it would teach the generator nothing and let
# it copy rare values verbatim.
TEXT_DISTINCT_SHARE = 0.5
TEXT_MIN_DISTINCT = 50
# Integers unique per row count as an identifier only when they look like a numbering (a range
# at most this many times the row count, or increasing down the file, as a subsample's index is)
# and the table is large enough for that to mean something.
ID_RANGE_FACTOR = 2.0
ID_MIN_ROWS = 100
BOOLEAN_WORDS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False,
                 "t": True, "f": False, "y": True, "n": False}


def detect_datetime_format(values: pd.Series) -> str | None:
    """The first format of :data:`DATETIME_FORMATS` that parses every present value, or None."""
    present = values.dropna()
    if present.empty or not _all_strings(present):
        return None
    uniques = pd.Series(pd.unique(present.astype(str).str.strip()))
    # a quick look at a few values first keeps wide text columns cheap
    probe = uniques.iloc[:50]
    for fmt in DATETIME_FORMATS:
        if pd.to_datetime(probe, format=fmt, errors="coerce").isna().any():
            continue
        if not pd.to_datetime(uniques, format=fmt, errors="coerce").isna().any():
            return fmt
    return None


def _all_strings(values: pd.Series) -> bool:
    if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
        return True
    return bool(values.map(type).eq(str).all()) if values.dtype == object else False


def _is_boolean(values: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(values.dtype):
        return True
    present = values.dropna()
    return values.dtype == object and not present.empty and bool(present.map(type).isin([bool, np.bool_]).all())


def infer_kind(values: pd.Series, groups: pd.Series | None = None) -> tuple[str, str, str | None]:
    """``(kind, note, datetime format)`` of one training column (the kinds: :data:`KINDS`).

    ``groups`` (sequences) also makes a value constant within each group and different between
    groups an identifier.
    """
    present = values.dropna()
    n, m = len(values), len(present)
    if m == 0:
        return "empty", "every value is missing", None
    distinct = int(present.nunique())
    if distinct == 1:
        value = present.iloc[0]
        return "constant", f"one value ({getattr(value, 'item', lambda: value)()!r})", None
    if _is_boolean(values):
        return "boolean", "", None
    dtype = values.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime", "", None
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical", "", None
    if pd.api.types.is_numeric_dtype(dtype):
        integral = pd.api.types.is_integer_dtype(dtype)
        if integral and m == n and distinct == n and n >= ID_MIN_ROWS:
            span = float(present.max()) - float(present.min()) + 1
            if span <= ID_RANGE_FACTOR * n or values.is_monotonic_increasing:
                return "identifier", "a numbering: unique per row", None
        return ("integer" if integral else "float"), "", None
    fmt = detect_datetime_format(values)
    if fmt is not None:
        return "datetime", f"text in the format {fmt}", fmt
    if m == n and distinct == n and n >= 20:
        return "identifier", "unique per row", None
    if groups is not None and m == n and _group_identifier(values, groups):
        return "identifier", "unique per sequence", None
    if distinct > TEXT_DISTINCT_SHARE * m and distinct >= TEXT_MIN_DISTINCT:
        return "text", f"free text: {distinct:,} distinct values in {m:,} rows", None
    return "categorical", "", None


def _group_identifier(values: pd.Series, groups: pd.Series) -> bool:
    per_group = values.groupby(groups.to_numpy(), sort=False).nunique(dropna=False)
    if len(per_group) < 20 or (per_group > 1).any():
        return False
    return int(values.nunique()) == len(per_group)


def convert(values: pd.Series, kind: str, fmt: str | None, *, where: str, strict: bool) -> pd.Series:
    """``values`` in the dtype that carries ``kind`` to every consumer (engine, binning, distances).

    ``strict`` (a stated kind): a present value that does not convert is an :class:`InputError`
    naming ``where``. Otherwise such a column is returned as it is: conforming a pool names the
    value that does not fit, and the evaluation coerces as qa does.
    """
    if kind == "constant":  # one value still has a type: booleans must come back as booleans
        return _to_boolean(values, where) if _is_boolean(values) else values
    if kind == "categorical":
        if strict and (pd.api.types.is_numeric_dtype(values.dtype)
                       or pd.api.types.is_datetime64_any_dtype(values.dtype)):
            return values.astype("category")  # categories keep the values (and the CSV) as they are, yet bin as labels
        return values
    converters = {"datetime": lambda: _to_datetime(values, fmt, where),
                  "integer": lambda: _to_number(values, "integer", where),
                  "float": lambda: _to_number(values, "float", where),
                  "boolean": lambda: _to_boolean(values, where)}
    if kind not in converters:
        return values
    try:
        return converters[kind]()
    except InputError:
        if strict:
            raise
        return values


def _fail(values: pd.Series, bad: pd.Series, kind: str, where: str) -> None:
    example = values[bad].iloc[0]
    example = getattr(example, "item", lambda: example)()
    raise InputError(f"{where}: value {example!r} is not a {kind} (columns: set another kind or drop it)")


def _to_datetime(values: pd.Series, fmt: str | None, where: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values
    text = values.astype(object).where(values.notna(), None)
    if fmt is not None:
        text = text.map(lambda v: v.strip() if isinstance(v, str) else v)
    parsed = pd.to_datetime(text, format=fmt if fmt is not None else "mixed", errors="coerce")
    bad = parsed.isna() & values.notna()
    if bad.any():
        _fail(values, bad, "datetime" + (f" in the format {fmt}" if fmt else ""), where)
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.astype("datetime64[ns]")


def _to_number(values: pd.Series, kind: str, where: str) -> pd.Series:
    if isinstance(values.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(values.dtype):
        values = values.astype(object)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() & values.notna()
    if bad.any():
        _fail(values, bad, "number", where)
    if kind == "float":
        return numbers.astype("float64")
    if pd.api.types.is_integer_dtype(numbers.dtype):
        return numbers
    fractional = numbers.notna() & (numbers != np.floor(numbers))
    if fractional.any():
        _fail(numbers, fractional, "whole number", where)
    return numbers.astype("Int64" if numbers.isna().any() else "int64")


def _to_boolean(values: pd.Series, where: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values
    words = values.map(lambda v: BOOLEAN_WORDS.get(str(v).strip().lower()) if not isinstance(v, (bool, np.bool_))
                       else bool(v), na_action="ignore")
    bad = words.isna() & values.notna()
    if bad.any():
        _fail(values, bad, "boolean (true/false, yes/no, 1/0)", where)
    return words.astype("boolean")
