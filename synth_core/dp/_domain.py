"""The discrete domain a DP marginal model works on: one integer code per value range of a column.

A column is either *categorical* (a list of values, plus a code for the values left out of the
list, written back as :data:`RARE`) or *numeric* (integers, floats and datetimes as numbers):
one code per integer when the range spans at most :data:`EXACT_SPAN` values, otherwise the lower
end as an exact code of its own (a mass at zero stays exact) and :data:`NUMERIC_BINS` equal-width
bins over the rest, decoded to a uniform draw inside the bin. Missing values have a code of their
own where the domain says so.

Where the domain comes from decides what the privacy statement covers:

* :func:`declared_domain` reads categories and ranges off a table and treats them as public (the
  data owner publishes them, or the benchmark gives every method the same assumption);
* :func:`private_domain` finds them under DP: a Gaussian-noised count per observed category and
  per bucket of a fixed, data-independent numeric grid, keeping what passes a threshold set by δ.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from synth_core.errors import InputError

EXACT_SPAN = 100  # integer ranges up to this many values get one code per value (ages, hours)
NUMERIC_BINS = 63  # equal-width bins beside the exact lower end
RARE = "_RARE_"  # written for categories the domain does not list
# The data-independent grid private_domain searches for numeric ranges: 0 and ±{1, 2, 5} × 10^k.
_GRID_DECADES = range(-6, 16)


@dataclass(frozen=True)
class ColumnDomain:
    """One column's codes.

    ``kind``: ``categorical``, ``integer``, ``float`` or ``datetime``. Categorical: ``categories``
    (codes ``0..len-1``) then one code for everything else (:data:`RARE`). Numeric: ``lo``/``hi`` (a
    datetime as seconds since the epoch) and ``exact`` (one code per integer). ``missing``: a last
    code for missing values.
    """

    name: str
    kind: str
    categories: tuple | None = None
    lo: float | None = None
    hi: float | None = None
    exact: bool = False
    missing: bool = False

    @property
    def numeric(self) -> bool:
        return self.kind != "categorical"

    @property
    def n_values(self) -> int:
        """Codes for present values (the missing code excluded)."""
        if not self.numeric:
            return len(self.categories) + 1
        if self.exact:
            return int(round(self.hi - self.lo)) + 1
        return NUMERIC_BINS + 1

    @property
    def size(self) -> int:
        return self.n_values + int(self.missing)

    def encode(self, values: pd.Series) -> np.ndarray:
        # without a missing code (a private domain that did not release one), missing values take
        # the rare code (categorical) or the lower end (numeric)
        na = values.isna().to_numpy() if self.missing else np.zeros(len(values), dtype=bool)
        if not self.numeric:
            index = {v: i for i, v in enumerate(self.categories)}
            codes = np.array([index.get(v, len(self.categories)) for v in values.astype(object)], dtype=np.int64)
        else:
            x = np.nan_to_num(_as_number(values), nan=self.lo)
            if self.exact:
                codes = np.clip(np.round(x - self.lo), 0, self.n_values - 1).astype(np.int64)
            else:
                width = (self.hi - self.lo) / NUMERIC_BINS
                codes = np.clip(1 + np.floor((x - self.lo) / width), 1, NUMERIC_BINS).astype(np.int64)
                codes[x <= self.lo] = 0
        codes[na] = self.n_values
        return codes

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> pd.Series:
        codes = np.asarray(codes, dtype=np.int64)
        na = codes >= self.n_values
        if not self.numeric:
            labels = np.array(list(self.categories) + [RARE], dtype=object)
            out = labels[np.minimum(codes, self.n_values - 1)]
            out[na] = None
            return pd.Series(out, name=self.name)
        if self.exact:
            x = self.lo + np.minimum(codes, self.n_values - 1).astype(np.float64)
        else:
            width = (self.hi - self.lo) / NUMERIC_BINS
            x = self.lo + (codes - 1 + rng.random(len(codes))) * width
            x = np.where(codes == 0, self.lo, np.clip(x, self.lo, self.hi))
        x[na] = np.nan
        if self.kind == "integer":
            return pd.Series(pd.array(np.round(x), dtype="Int64"), name=self.name) if na.any() else \
                pd.Series(np.round(x).astype(np.int64), name=self.name)
        if self.kind == "datetime":
            return pd.Series(pd.to_datetime(x, unit="s"), name=self.name)
        return pd.Series(x, name=self.name)


@dataclass(frozen=True)
class Domain:
    """The codes of every column of a table, in order."""

    columns: tuple[ColumnDomain, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def sizes(self) -> list[int]:
        return [c.size for c in self.columns]

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """``(rows, columns)`` int64 codes; numeric values outside the range go to the end codes."""
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            raise InputError(f"the table has no column {missing[0]!r} of the domain")
        return np.stack([c.encode(frame[c.name]) for c in self.columns], axis=1) if self.columns else \
            np.zeros((len(frame), 0), dtype=np.int64)

    def decode(self, codes: np.ndarray, seed: int) -> pd.DataFrame:
        """Values for ``codes`` (deterministic given ``seed``; binned values drawn inside their bin)."""
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xD0_3A1]))
        return pd.DataFrame({c.name: c.decode(codes[:, j], rng) for j, c in enumerate(self.columns)})

    def to_dict(self) -> dict:
        return {"columns": [{**asdict(c), "categories": None if c.categories is None else
                             [_plain(v) for v in c.categories]} for c in self.columns]}

    @classmethod
    def from_dict(cls, data: dict) -> Domain:
        cols = []
        for c in data["columns"]:
            cats = c.get("categories")
            cols.append(ColumnDomain(**{**c, "categories": None if cats is None else tuple(cats)}))
        return cls(tuple(cols))


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _as_number(values: pd.Series) -> np.ndarray:
    """Numbers of a numeric or datetime column (datetimes as seconds since the epoch)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = pd.to_datetime(values)
        seconds = (stamps - pd.Timestamp(0)).dt.total_seconds()
        return seconds.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def column_kind(values: pd.Series) -> str:
    """The domain kind of a column from its dtype (the schema's decision, see :mod:`synth_core.schema`)."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    return "categorical"


def _numeric_column(name: str, kind: str, lo: float, hi: float, missing: bool) -> ColumnDomain:
    if not hi > lo:
        hi = lo + 1.0
    exact = kind == "integer" and float(lo).is_integer() and float(hi).is_integer() and hi - lo <= EXACT_SPAN
    return ColumnDomain(name, kind, lo=float(lo), hi=float(hi), exact=exact, missing=missing)


def declared_domain(frame: pd.DataFrame) -> Domain:
    """The domain read off ``frame``: its categories and ranges, treated as public knowledge."""
    cols = []
    for name in frame.columns:
        values = frame[name]
        kind = column_kind(values)
        missing = bool(values.isna().any())
        if kind == "categorical":
            present = values.dropna().astype(object).unique().tolist()
            cols.append(ColumnDomain(name, kind, categories=tuple(sorted(present, key=str)), missing=missing))
        else:
            x = _as_number(values)
            x = x[~np.isnan(x)]
            lo, hi = (float(x.min()), float(x.max())) if len(x) else (0.0, 1.0)
            cols.append(_numeric_column(name, kind, lo, hi, missing))
    return Domain(tuple(cols))


def grid_edges() -> np.ndarray:
    """The fixed numeric grid of :func:`private_domain`: 0 and ±{1, 2, 5}·10^k, sorted."""
    pos = np.array([m * 10.0 ** k for k in _GRID_DECADES for m in (1, 2, 5)])
    return np.concatenate([-pos[::-1], [0.0], pos])


@dataclass(frozen=True)
class DomainRelease:
    """What :func:`private_domain` spent: ``rho`` (zCDP of the noisy counts), ``delta`` (the chance
    that a value held by one record passes the threshold), ``sigma`` and ``threshold``."""

    rho: float
    delta: float
    sigma: float
    threshold: float


def private_domain(frame: pd.DataFrame, rho: float, delta: float,
                   rng: np.random.Generator) -> tuple[Domain, DomainRelease]:
    """The domain of ``frame`` found under differential privacy.

    Every record adds 1 to one count per column: one category (missing values count as one) or
    one cell of the grid of :func:`grid_edges` (0 exact, the buckets between the edges beside it).
    Gaussian noise of σ = √d / √(2ρ) on every count observed makes the counts ρ-zCDP; a value is
    kept when its noisy count passes ``1 + σ·z``, with ``z`` so that a value held by a single
    record passes in any column with probability at most ``delta`` (the δ the release adds). A
    numeric range runs from the lowest kept bucket's lower edge to the highest's upper edge.
    """
    d = frame.shape[1]
    if d == 0:
        return Domain(()), DomainRelease(float(rho), 0.0, 0.0, 0.0)
    if not (rho > 0 and 0 < delta < 1):
        raise InputError(f"private_domain needs rho > 0 and 0 < delta < 1, got {rho!r}, {delta!r}")
    sigma = math.sqrt(d) / math.sqrt(2.0 * rho)
    threshold = 1.0 + sigma * float(norm.isf(delta / d))
    edges = grid_edges()
    cols = []
    for name in frame.columns:
        values = frame[name]
        kind = column_kind(values)
        na = values.isna().to_numpy()
        missing = bool(na.any()) and na.sum() + rng.normal(0.0, sigma) > threshold
        if kind == "categorical":
            counts = values.dropna().astype(object).value_counts(sort=False)
            order = sorted(counts.index, key=str)  # noise drawn in a data-independent order of the values
            noisy = counts[order].to_numpy(dtype=np.float64) + rng.normal(0.0, sigma, len(order))
            kept = tuple(v for v, c in zip(order, noisy) if c > threshold)
            cols.append(ColumnDomain(name, kind, categories=kept, missing=bool(na.any()) and missing))
            continue
        x = _as_number(values)
        x = x[~np.isnan(x)]
        # cell 2i+1 is the edge value itself, cell 2i the open interval below it
        cell = np.searchsorted(edges, x, side="left") * 2
        on_edge = np.isin(x, edges)
        cell[on_edge] += 1
        counts = np.bincount(cell, minlength=2 * len(edges) + 1).astype(np.float64)
        observed = np.flatnonzero(counts)
        noisy = counts[observed] + rng.normal(0.0, sigma, len(observed))
        kept = observed[noisy > threshold]
        if len(kept) == 0:
            lo, hi = 0.0, 1.0
        else:
            lo = _cell_bound(edges, int(kept.min()), low=True)
            hi = _cell_bound(edges, int(kept.max()), low=False)
        cols.append(_numeric_column(name, kind, lo, hi, bool(na.any()) and missing))
    return Domain(tuple(cols)), DomainRelease(float(rho), float(delta), float(sigma), float(threshold))


def _cell_bound(edges: np.ndarray, cell: int, *, low: bool) -> float:
    i = cell // 2
    if cell % 2 == 1:  # the edge value itself
        return float(edges[i])
    if low:
        return float(edges[i - 1]) if i > 0 else float(edges[0]) * 10.0
    return float(edges[i]) if i < len(edges) else float(edges[-1]) * 10.0
