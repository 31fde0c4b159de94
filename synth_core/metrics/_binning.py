"""The metric's discretisation, as a fitted object.

mostlyai-qa compares *binned* frequency tables. This module reproduces its binning exactly
(``qa-metrics.md`` section 2) and turns a table into a compact integer code matrix:

* numeric columns: up to ``n_bins`` equal-frequency bins whose breaks are order statistics at
  ``linspace`` positions, trimmed by *flooring* to the smallest precision that keeps them
  distinct; one bin per distinct value when there are at most ``n_bins`` of them;
* datetime columns: the same search without the shortcut and without flooring;
* everything else: the top ``n_bins`` categories with at least 5 occurrences, then the special
  categories ``(empty)``, ``(other)``, ``_RARE_``, ``(n/a)``; unseen values go to ``(other)``;
* a missing value is a bin of its own, ``(n/a)``.

Bins are fitted on reference tables (training ∪ holdout for evaluation, training only for
selection) and applied unchanged to any other table. One implementation serves both.

Example
-------
>>> binner = Binner(n_bins=10).fit(training)
>>> codes = binner.transform(synthetic)          # (n_rows, n_columns) uint8
>>> binner.columns_[0].labels                    # one label per code
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from synth_core.errors import InputError

NA_BIN = "(n/a)"
OTHER_BIN = "(other)"
EMPTY_BIN = "(empty)"
RARE_BIN = "_RARE_"
SPECIAL_BINS = (EMPTY_BIN, OTHER_BIN, RARE_BIN, NA_BIN)
MIN_CATEGORY_COUNT = 5  # qa's rare-category protection: rarer values never get a bin of their own
ONE_DAY_NS = 86_400 * 10**9

Kind = Literal["numeric", "datetime", "categorical"]


def column_kind(values: pd.Series) -> Kind:
    """The binning kind qa picks for a column (decided on the reference data's dtype)."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return "numeric"
    if pd.api.types.is_bool_dtype(values.dtype):
        return "numeric"  # qa's dtype harmonisation turns booleans into Float64
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return "datetime"
    return "categorical"


# --------------------------------------------------------------------------------------------
# break search (numeric and datetime)


def search_bin_boundaries(sorted_values: np.ndarray, n_bins: int) -> np.ndarray:
    """Greedy equal-frequency breaks: the first ``linspace`` grid giving ``n_bins + 1`` distinct values.

    ``sorted_values`` must be sorted and free of NaN. The grid always includes the minimum and the
    maximum. With heavy ties the result may keep fewer than ``n_bins + 1`` breaks, exactly as qa.
    """
    n = len(sorted_values)
    if n == 0:
        return sorted_values[:0]
    breaks = sorted_values[:0]
    for i in range(n_bins, max(n_bins + 1, min(1000, n + 1))):
        idx = np.linspace(0, n - 1, i).astype(int)
        breaks = np.unique(sorted_values[idx])
        if len(breaks) >= n_bins + 1:
            break
    return breaks


def _floor(values: np.ndarray, precision: int) -> np.ndarray:
    scale = 10**precision
    return np.true_divide(np.floor(values * scale), scale)


def numeric_breaks(values: np.ndarray, n_bins: int) -> np.ndarray:
    """mostlyai-qa's numeric breaks for the non-NaN float64 ``values`` (section 2.1 of the spec)."""
    values = values[~np.isnan(values)]
    uniques = np.unique(values)
    if len(uniques) <= n_bins:
        breaks = np.append(uniques, uniques[-1] + 1) if len(uniques) else uniques
    else:
        breaks = search_bin_boundaries(np.sort(values), n_bins)
    breaks = np.unique(breaks)
    if len(breaks) == 0:
        breaks = np.array([-1e10, 1e10])
    # Flooring moves lower edges down and so shifts values between bins: qa floors, so must we.
    for precision in range(20):
        floored = _floor(breaks, precision)
        if len(np.unique(floored)) == len(breaks):
            breaks = np.append(floored[:-1], breaks[-1])
            break
    return breaks.astype(np.float64)


def datetime_breaks(values_ns: np.ndarray, n_bins: int) -> np.ndarray:
    """mostlyai-qa's datetime breaks (int64 nanoseconds; NaT already removed)."""
    uniques = np.unique(values_ns)
    if len(uniques) == 1:
        breaks = np.array([uniques[0], uniques[0] + ONE_DAY_NS], dtype=np.int64)
    else:
        breaks = search_bin_boundaries(np.sort(values_ns), n_bins)
    breaks = np.unique(breaks)
    if len(breaks) == 0:
        breaks = pd.to_datetime(["1700", "2200"]).as_unit("ns").asi8
    return breaks.astype(np.int64)


# --------------------------------------------------------------------------------------------
# per-column fitted bins


@dataclass(frozen=True)
class ColumnBins:
    """The fitted bins of one column.

    Codes ``0 .. n_codes-1`` index ``labels``. Numeric and datetime columns use the interval codes
    first and ``(n/a)`` last; categorical columns use ``categories`` in qa's order (sorted top
    values, then the special categories).
    """

    name: str
    kind: Kind
    labels: tuple[str, ...]
    breaks: np.ndarray | None = None  # numeric: float64, datetime: int64 ns
    categories: tuple[str, ...] | None = None

    @property
    def n_codes(self) -> int:
        return len(self.labels)

    @property
    def na_code(self) -> int:
        return self.labels.index(NA_BIN)

    def encode(self, values: pd.Series) -> np.ndarray:
        """Codes (int64) of ``values`` under these bins."""
        if self.kind == "categorical":
            return _encode_categorical(values, self.categories)
        if self.kind == "numeric":
            x = _as_float(values, self.name)
            return _encode_intervals(x, self.breaks, np.isnan(x), last_edge=self.breaks[-1] + 1)
        x, missing = _as_datetime_ns(values, self.name)
        last = self.breaks[-1]
        try:
            last_edge = max(last + ONE_DAY_NS, last)
        except OverflowError:  # pragma: no cover - year-2262 limits
            last_edge = last
        return _encode_intervals(x, self.breaks, missing, last_edge=last_edge)


def _as_float(values: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(values, errors="coerce").astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


def _as_datetime_ns(values: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        values = pd.to_datetime(values, errors="coerce")
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_localize(None)
    values = values.astype("datetime64[ns]")
    missing = values.isna().to_numpy()
    ns = values.to_numpy().view(np.int64).copy()
    return ns, missing


def _encode_intervals(x: np.ndarray, breaks: np.ndarray, missing: np.ndarray, *, last_edge) -> np.ndarray:
    """Interval code of each value: ``[e_i, e_{i+1})`` after clipping to the outer breaks."""
    edges = np.append(breaks[:-1], last_edge).astype(breaks.dtype)
    n_intervals = len(breaks) - 1
    clipped = np.clip(x, breaks.min(), breaks.max())
    codes = np.searchsorted(edges, clipped, side="right") - 1
    codes = np.clip(codes, 0, n_intervals - 1)
    codes[missing] = n_intervals  # the (n/a) bin
    return codes.astype(np.int64)


def _as_qa_strings(values: pd.Series) -> pd.Series:
    """mostlyai-qa's categorical view of a column: pyarrow strings, NaN → ``(n/a)``, ``""`` → ``(empty)``."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        # qa harmonises numbers to Float64 before a categorical view can arise (never on the
        # reference side); keep the same textual form for consistency.
        values = values.astype("Float64")
    strings = values.astype("string[pyarrow]").fillna(NA_BIN)
    return strings.replace("", EMPTY_BIN)


def categorical_categories(values: pd.Series, n_bins: int) -> tuple[str, ...]:
    """mostlyai-qa's bins for a categorical column: sorted top-``n_bins`` values (count ≥ 5), then specials."""
    strings = _as_qa_strings(values)
    counts = strings.value_counts().head(n_bins)
    counts = counts[counts >= MIN_CATEGORY_COUNT]
    top = sorted(str(v) for v in counts.index)
    for special in SPECIAL_BINS:
        top = [c for c in top if c != special] + [special]
    return tuple(top)


def _encode_categorical(values: pd.Series, categories: Sequence[str]) -> np.ndarray:
    by_value = _distinct_values(values)
    if by_value is not None:  # each distinct value's string once, then a gather: the same codes
        positions, distinct = by_value
        table = _category_codes(_as_qa_strings(distinct), categories)
        return table[positions]
    return _category_codes(_as_qa_strings(values), categories)


def _category_codes(strings: pd.Series, categories: Sequence[str]) -> np.ndarray:
    codes = pd.Index(list(categories), dtype=object).get_indexer(strings.to_numpy(dtype=object, na_value=NA_BIN))
    codes = codes.astype(np.int64)
    codes[codes < 0] = categories.index(OTHER_BIN)
    return codes


def _distinct_values(values: pd.Series) -> tuple[np.ndarray, pd.Series] | None:
    """(position of each value among the distinct ones, the distinct values then a missing one), or
    None where grouping by value could join values whose strings differ: numbers (0.0 and -0.0
    are one value, two strings) and object columns holding anything but strings (True == 1)."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if not (pd.api.types.is_string_dtype(dtype.categories.dtype) or dtype.categories.dtype == object):
            return None
    elif not pd.api.types.is_string_dtype(dtype):
        return None
    positions, distinct = pd.factorize(values, use_na_sentinel=True)
    distinct = pd.Series(np.asarray(distinct, dtype=object), dtype=object)
    if not all(isinstance(v, str) for v in distinct):
        return None
    positions = np.where(positions < 0, len(distinct), positions)  # missing: the appended last entry
    return positions, pd.concat([distinct, pd.Series([None], dtype=object)], ignore_index=True)


def _interval_labels(breaks: np.ndarray, kind: Kind, style: str) -> tuple[str, ...]:
    if kind == "numeric":
        lows = breaks[:-1]
        if all(float(b).is_integer() for b in lows):
            text = [str(int(b)) for b in lows]
        else:
            text = [str(float(b)) for b in lows]
    else:
        stamps = pd.to_datetime(breaks)
        text = [str(s) for s in stamps[:-1]]
        for fmt in ("%Y", "%Y-%b", "%Y-%b-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"):
            if len(set(stamps.strftime(fmt))) == len(stamps):
                text = list(stamps[:-1].strftime(fmt))
                break
    if style == "bounded":
        uppers = text[1:] + ["∞"]
        return tuple(f"⪰ {lo} ≺ {hi}" for lo, hi in zip(text, uppers))
    return tuple(f"⪰ {lo}" for lo in text)


def fit_column(name: str, values: pd.Series, n_bins: int, *, kind: Kind | None = None,
               style: str = "unbounded") -> ColumnBins:
    """Fit qa's bins for one column on its reference values."""
    kind = kind or column_kind(values)
    if kind == "numeric":
        x = _as_float(values, name)
        breaks = numeric_breaks(x, n_bins)
        labels = _interval_labels(breaks, kind, style) + (NA_BIN,)
        return ColumnBins(name, kind, labels, breaks=breaks)
    if kind == "datetime":
        ns, missing = _as_datetime_ns(values, name)
        breaks = datetime_breaks(ns[~missing], n_bins)
        labels = _interval_labels(breaks, kind, style) + (NA_BIN,)
        return ColumnBins(name, kind, labels, breaks=breaks)
    categories = categorical_categories(values, n_bins)
    return ColumnBins(name, kind, categories, categories=categories)


# --------------------------------------------------------------------------------------------
# the estimator


@dataclass
class Binner:
    """qa's discretisation as a fitted estimator.

    Parameters
    ----------
    n_bins : int, default 10
        Bins per column: 10 for accuracy, 30 for the coherence codes.
    style : {"unbounded", "bounded"}
        Label style only (``"⪰ a"`` or ``"⪰ a ≺ b"``); codes do not depend on it.

    Attributes
    ----------
    columns_ : list of ColumnBins
        One entry per fitted column, in the order of the reference table.
    """

    n_bins: int = 10
    style: str = "unbounded"
    columns_: list[ColumnBins] = field(default_factory=list, init=False)

    def fit(self, *references: pd.DataFrame, kinds: dict[str, Kind] | None = None) -> Binner:
        """Fit on the concatenation of ``references`` (e.g. training and holdout)."""
        if not references:
            raise InputError("Binner.fit needs at least one reference table")
        ref = references[0] if len(references) == 1 else pd.concat(references, axis=0, ignore_index=True)
        if ref.shape[1] == 0:
            raise InputError("reference table has no columns to bin")
        kinds = kinds or {}
        self.columns_ = [
            fit_column(str(c), ref[c], self.n_bins, kind=kinds.get(c), style=self.style) for c in ref.columns
        ]
        return self

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns_]

    @property
    def n_codes(self) -> np.ndarray:
        """Number of codes (bins including specials) per column."""
        return np.array([c.n_codes for c in self.columns_], dtype=np.int64)

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """Code matrix ``(n_rows, n_columns)``: uint8 when every column has ≤ 256 codes.

        The result is C-contiguous so that one row's codes are adjacent in memory, which is what
        the selection kernels scan.
        """
        if not self.columns_:
            raise InputError("Binner is not fitted")
        missing = [c.name for c in self.columns_ if c.name not in table.columns]
        if missing:
            raise InputError(f"table lacks column {missing[0]!r} of the fitted bins")
        dtype = np.uint8 if int(self.n_codes.max()) <= 256 else np.uint16
        out = np.empty((len(table), len(self.columns_)), dtype=dtype)
        for j, col in enumerate(self.columns_):
            out[:, j] = col.encode(table[col.name])
        return out

    def fit_transform(self, *references: pd.DataFrame) -> np.ndarray:
        self.fit(*references)
        ref = references[0] if len(references) == 1 else pd.concat(references, axis=0, ignore_index=True)
        return self.transform(ref)

    def labels(self, column: int | str) -> tuple[str, ...]:
        if isinstance(column, str):
            column = self.names.index(column)
        return self.columns_[column].labels

    def describe(self) -> pd.DataFrame:
        """One row per column: name, kind, number of codes."""
        return pd.DataFrame(
            {"column": self.names, "kind": [c.kind for c in self.columns_], "n_codes": self.n_codes}
        )


def fit_transform_many(tables: Iterable[pd.DataFrame], n_bins: int = 10) -> tuple[Binner, list[np.ndarray]]:
    """Fit on the first table and encode every table (handy for tests and scripts)."""
    tables = list(tables)
    binner = Binner(n_bins=n_bins).fit(tables[0])
    return binner, [binner.transform(t) for t in tables]
