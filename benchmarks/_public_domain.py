"""The public discretisation shared by the DP baselines (MST, AIM) and the project's own DP model, so
that every DP method in a comparison starts from the same bins.

It models "bins fixed from public ranges": what a data owner could publish about a table without
looking at its rows, and so costs no privacy budget. The rules, per column:

* categorical or text columns (and booleans): their list of categories, treated as public, one
  code each in sorted order (a missing value, where present, is a category of its own, last);
* integer columns whose public range ``lo..hi`` spans at most :data:`MAX_EXACT` (100) values: one
  code per integer value (census: age, education_num, hours_per_week exactly);
* every other numeric column: the lower end ``lo`` as an exact code of its own (code 0, e.g.
  capital_gain 0) plus :data:`BINS` (63) equal-width bins over the rest of the range, right-closed
  ``(e_k, e_k+1]`` with ``e = linspace(lo, hi, 64)``: 64 codes. Decoding draws uniformly inside
  the bin (integer columns: a uniform integer among those the bin holds, so that a decoded value
  encodes back to its code), always inside the range.

**Caveat.** Without a published codebook, :func:`public_domain` and :func:`census_domain` take the
category lists and numeric ranges from the frame they are given *as if they were public*: this is
the usual assumption of DP benchmarks (and of MST/AIM's own papers), not a DP statement about
those lists or ranges. ``spec`` supplies them instead where they are known.

Encoding clips numbers outside the public range to the end codes; a category that is not in the
public list is an error, and so is a missing number. Decoding is deterministic given its seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MAX_EXACT = 100  # integer ranges up to this many values get one code per value
BINS = 63  # equal-width bins above the exact lower end of a wider numeric range

EXACT, BINNED, CATEGORICAL = "exact", "binned", "categorical"


@dataclass(frozen=True)
class ColumnSpec:
    """How one column is coded: ``kind`` is exact, binned or categorical; ``low``/``high`` the public
    range of a numeric column; ``categories`` the public list of a categorical one; ``dtype`` the
    original dtype, restored by decoding."""

    name: str
    kind: str
    dtype: Any
    low: float = 0.0
    high: float = 0.0
    is_integer: bool = False
    categories: tuple = ()
    bins: int = BINS

    @property
    def size(self) -> int:
        if self.kind == CATEGORICAL:
            return len(self.categories)
        if self.kind == EXACT:
            return int(self.high - self.low) + 1
        return 1 + self.bins

    def edges(self) -> np.ndarray:
        return np.linspace(self.low, self.high, self.bins + 1)


@dataclass(frozen=True)
class PublicDomain:
    """Columns, their code counts and how each is coded; see the module docstring for the rules."""

    columns: tuple[str, ...]
    sizes: tuple[int, ...]
    specs: tuple[ColumnSpec, ...] = ()

    def __post_init__(self):
        if len(self.specs) != len(self.columns) or tuple(s.size for s in self.specs) != tuple(self.sizes):
            raise ValueError("PublicDomain: specs must match columns and sizes")

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, d) int64 codes of ``frame``'s domain columns, in the domain's column order."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"encode: frame lacks columns {missing}")
        out = np.empty((len(frame), len(self.columns)), dtype=np.int64)
        for j, spec in enumerate(self.specs):
            out[:, j] = _encode_column(spec, frame[spec.name])
        return out

    def decode(self, codes: np.ndarray, seed: int) -> pd.DataFrame:
        """Back to the original columns and dtypes; binned values are drawn with ``seed``."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != len(self.columns):
            raise ValueError(f"decode: expected an (n, {len(self.columns)}) array, got shape {codes.shape}")
        if not np.issubdtype(codes.dtype, np.integer):
            raise ValueError("decode: codes must be integers")
        for j, (name, size) in enumerate(zip(self.columns, self.sizes)):
            if len(codes) and (codes[:, j].min() < 0 or codes[:, j].max() >= size):
                raise ValueError(f"decode: codes of {name!r} outside 0..{size - 1}")
        rng = np.random.default_rng(seed)
        return pd.DataFrame({s.name: _decode_column(s, codes[:, j], rng) for j, s in enumerate(self.specs)})

    def to_json(self) -> dict:
        """``{"columns": [...], "sizes": [...]}``: what the baselines' worker reads."""
        return {"columns": list(self.columns), "sizes": [int(s) for s in self.sizes]}

    def digest(self) -> str:
        """A short hash of the coding (kinds, ranges, categories), for cache keys."""
        text = repr([(s.name, s.kind, s.low, s.high, s.is_integer, s.bins, [repr(c) for c in s.categories])
                     for s in self.specs])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def public_domain(frame: pd.DataFrame, spec: Mapping[str, Mapping[str, Any]] | None = None) -> PublicDomain:
    """The public domain of ``frame`` by the module's rules.

    Parameters
    ----------
    frame : DataFrame
        Its dtypes decide each column's kind; its values give the category lists and ranges that
        ``spec`` does not (taken as if public, see the module docstring).
    spec : mapping, optional
        Per column, the public facts where they are known: ``{"categories": [...]}`` for a
        categorical column, ``{"range": (lo, hi)}`` for a numeric one, and optionally
        ``{"kind": "exact" | "binned"}`` to override the rule for a numeric column.
    """
    spec = dict(spec or {})
    unknown = set(spec) - set(frame.columns)
    if unknown:
        raise ValueError(f"public_domain: spec names columns not in the frame: {sorted(unknown)}")
    specs = tuple(_column_spec(str(name), frame[name], spec.get(name, {})) for name in frame.columns)
    return PublicDomain(tuple(s.name for s in specs), tuple(s.size for s in specs), specs)


def census_domain(training: pd.DataFrame) -> PublicDomain:
    """The census table's public domain: 9 categorical columns, age / education_num /
    hours_per_week exact, fnlwgt / capital_gain / capital_loss as 0-or-lower-end plus 63 bins."""
    return public_domain(training)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


def _column_spec(name: str, series: pd.Series, given: Mapping[str, Any]) -> ColumnSpec:
    if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(series.dtype):
        raise ValueError(f"public_domain: column {name!r}: datetimes are not supported")
    if "categories" in given or not _is_numeric(series):
        cats = list(given["categories"]) if "categories" in given else _sorted_categories(series)
        return ColumnSpec(name, CATEGORICAL, series.dtype, categories=tuple(cats))
    if series.isna().any() and "range" not in given:
        raise ValueError(f"public_domain: numeric column {name!r} has missing values")
    is_integer = pd.api.types.is_integer_dtype(series.dtype)
    low, high = given["range"] if "range" in given else (series.min(), series.max())
    low, high = float(low), float(high)
    if not np.isfinite([low, high]).all() or high < low:
        raise ValueError(f"public_domain: column {name!r}: bad range {low}..{high}")
    if is_integer and (low != int(low) or high != int(high)):
        raise ValueError(f"public_domain: integer column {name!r} needs an integer range")
    kind = given.get("kind") or (EXACT if is_integer and high - low + 1 <= MAX_EXACT else BINNED)
    if kind not in (EXACT, BINNED) or (kind == EXACT and not is_integer):
        raise ValueError(f"public_domain: column {name!r}: kind {kind!r} does not apply")
    return ColumnSpec(name, kind, series.dtype, low=low, high=high, is_integer=is_integer)


def _sorted_categories(series: pd.Series) -> list:
    values = pd.unique(series.dropna())
    try:
        cats = sorted(values)
    except TypeError:  # mixed types: keep a stable order by text
        cats = sorted(values, key=repr)
    if series.isna().any():
        cats.append(None)
    return cats


def _encode_column(spec: ColumnSpec, series: pd.Series) -> np.ndarray:
    if spec.kind == CATEGORICAL:
        lookup = {c: i for i, c in enumerate(spec.categories) if not _is_missing(c)}
        na_code = next((i for i, c in enumerate(spec.categories) if _is_missing(c)), None)
        values = series.to_numpy(dtype=object)
        missing = pd.isna(values)
        codes = np.empty(len(values), dtype=np.int64)
        unseen = set()
        for i, (v, m) in enumerate(zip(values, missing)):
            if m:
                if na_code is None:
                    unseen.add("<missing>")
                else:
                    codes[i] = na_code
            elif v in lookup:
                codes[i] = lookup[v]
            else:
                unseen.add(v)
        if unseen:
            shown = sorted(map(str, unseen))[:5]
            raise ValueError(f"encode: column {spec.name!r} has categories outside the public list: {shown}")
        return codes
    if series.isna().any():
        raise ValueError(f"encode: numeric column {spec.name!r} has missing values")
    values = np.clip(series.to_numpy(dtype=float), spec.low, spec.high)
    if spec.kind == EXACT:
        return np.rint(values - spec.low).astype(np.int64)
    above = np.searchsorted(spec.edges(), values, side="left") - 1  # bin k holds (e_k, e_k+1]
    return np.where(values <= spec.low, 0, 1 + np.clip(above, 0, spec.bins - 1)).astype(np.int64)


def _decode_column(spec: ColumnSpec, codes: np.ndarray, rng: np.random.Generator) -> pd.Series:
    if spec.kind == CATEGORICAL:
        cats = np.empty(len(spec.categories), dtype=object)
        cats[:] = [np.nan if _is_missing(c) else c for c in spec.categories]
        return pd.Series(cats[codes], name=spec.name).astype(spec.dtype)
    if spec.kind == EXACT:
        return pd.Series(spec.low + codes, name=spec.name).astype(spec.dtype)
    edges = spec.edges()
    k = np.clip(codes - 1, 0, spec.bins - 1)
    if spec.is_integer:
        # integers in (e_k, e_k+1]: floor(e_k)+1 .. floor(e_k+1); a bin narrower than one integer
        # (only with a custom range) falls back to the integer nearest its upper edge
        lo_int, hi_int = np.floor(edges[k]) + 1, np.floor(edges[k + 1])
        hi_int = np.maximum(hi_int, lo_int)
        drawn = lo_int + np.floor(rng.random(len(codes)) * (hi_int - lo_int + 1))
        drawn = np.clip(np.minimum(drawn, hi_int), spec.low, spec.high)
    else:
        drawn = edges[k] + rng.random(len(codes)) * (edges[k + 1] - edges[k])
        drawn = np.clip(drawn, np.nextafter(edges[k], np.inf), edges[k + 1])
    values = np.where(codes == 0, spec.low, drawn)
    return pd.Series(values, name=spec.name).astype(spec.dtype)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
