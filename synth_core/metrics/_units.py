"""The units the privacy figures and the privacy guard compare: rows (flat) or sequences.

One encoding for both, so that what selection's guard calls a copy or a near neighbour is what the
evaluation measures: identifier-like and dropped columns left out (:func:`excluded_columns`),
categorical values as shared integer labels and numbers as floats with NaN (:func:`encode_columns`),
exact-match keys per row and per sequence (:func:`row_ids`, :func:`sequence_keys`), one vector per
sequence (:func:`sequence_units`: length, per-column mean or mode) and numbers mapped through the
references' empirical CDFs (:func:`fit_ranks`, :func:`apply_ranks`). The details are in
:mod:`synth_core.metrics._privacy`'s docstring.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from synth_core.conform import value_kind
from synth_core.errors import InputError
from synth_core.metrics._nn_kernels import signature_ids

_KINDS = {"number": "numeric", "datetime": "datetime", "timedelta": "timedelta"}
MIN_ID_UNITS = 20  # below this many rows (groups), distinct values are no sign of an identifier


def id_like_columns(training: pd.DataFrame, group_key: str | None = None) -> dict[str, str]:
    """Columns of ``training`` that look like identifiers (see the module docstring).

    Parameters
    ----------
    training : DataFrame
    group_key : str, optional
        Sequential data: the group column (never reported); a column constant within every
        group and different in every group counts as an identifier too.

    Returns
    -------
    dict of str to str
        Column name → why it counts as an identifier.
    """
    found: dict[str, str] = {}
    n_rows = len(training)
    n_groups = int(training[group_key].nunique()) if group_key is not None else 0
    for col in training.columns:
        if col == group_key:
            continue
        series = training[col]
        if not _id_dtype(series) or series.isna().any():
            continue
        distinct = series.nunique()
        if n_rows >= MIN_ID_UNITS and distinct == n_rows:
            found[col] = "unique per row in training"
        elif (
            group_key is not None
            and n_groups >= MIN_ID_UNITS
            and distinct == n_groups
            and bool((training.groupby(group_key, sort=False)[col].nunique() == 1).all())
        ):
            found[col] = "unique per sequence in training"
    return found


def _id_dtype(series: pd.Series) -> bool:
    """Integer or string values (identifiers are), not floats, dates or booleans (measurements)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return False
    if pd.api.types.is_integer_dtype(dtype):
        return True
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return False
    if pd.api.types.is_timedelta64_dtype(dtype):
        return False
    return pd.api.types.infer_dtype(series, skipna=True) in ("string", "integer", "mixed-integer", "categorical",
                                                             "bytes")


def excluded_columns(training: pd.DataFrame, group_key: str | None, drop: Iterable[str],
                     detect_ids: bool) -> dict[str, str]:
    if group_key is not None and group_key not in training.columns:
        raise InputError(f"group key column {group_key!r} missing from training")
    excluded: dict[str, str] = {}
    for col in drop:
        if col == group_key:
            raise InputError(f"cannot drop the group key {col!r}")
        if col not in training.columns:
            raise InputError(f"column {col!r} to drop is not in training")
        excluded[col] = "dropped"
    if detect_ids:
        for col, why in id_like_columns(training.drop(columns=list(excluded)), group_key).items():
            excluded[col] = why
    return excluded


def check_columns(frames: dict[str, pd.DataFrame], group_key: str | None, excluded: dict[str, str]) -> list[str]:
    columns = [c for c in frames["training"].columns if c != group_key and c not in excluded]
    if not columns:
        left_out = f" (left out: {', '.join(map(str, excluded))})" if excluded else ""
        raise InputError(f"training has no columns to compare besides the group key{left_out}")
    for table, df in frames.items():
        if len(df) == 0:
            raise InputError(f"{table} table has no rows")
        missing = [c for c in columns + ([group_key] if group_key else []) if c not in df.columns]
        if missing:
            raise InputError(f"column {missing[0]!r} missing from {table}")
    return columns


def _column_kind(series: pd.Series) -> str:
    """``numeric``, ``datetime`` or ``timedelta`` for columns of those dtypes, else ``categorical``
    (booleans, text, categories and object columns, whatever they hold)."""
    if series.dtype == object or isinstance(series.dtype, pd.CategoricalDtype):
        return "categorical"
    return _KINDS.get(value_kind(series), "categorical")


def _numeric(series: pd.Series, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values with NaN, int64 exact keys) of a numeric-like column.

    The kind is the training column's; other tables are coerced to it, unparsable values
    becoming missing.
    """
    if kind in ("datetime", "timedelta"):
        if kind == "datetime":
            s = pd.to_datetime(series, errors="coerce")
            if getattr(s.dt, "tz", None) is not None:
                s = s.dt.tz_convert("UTC").dt.tz_localize(None)
            ns = s.to_numpy(dtype="datetime64[ns]").view(np.int64)
        else:
            td = pd.to_timedelta(series, errors="coerce")
            ns = td.to_numpy(dtype="timedelta64[ns]").view(np.int64)
        missing = ns == np.iinfo(np.int64).min  # NaT
        vals = ns.astype(np.float64)
        vals[missing] = np.nan
        return vals, ns.copy()
    vals = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    # One bit pattern per value: -0.0 equals 0.0, every NaN payload is the same NaN.
    canon = vals + 0.0
    canon[np.isnan(canon)] = np.nan
    return vals, canon.view(np.int64)


def _labels(series: pd.Series) -> np.ndarray:
    # String form, so that 1, "1" and a category "1" are the same value in every table.
    labels = series.astype(str).to_numpy(dtype=object)
    labels[series.isna().to_numpy()] = None
    return labels


def encode_columns(frames: dict[str, pd.DataFrame], columns: list[str]):
    """Per table: float64 value matrix (numerics raw, categoricals as shared int codes) and an
    int64 key matrix for exact comparison; plus the categorical flag per column. Categorical
    codes are shared by all tables (in the order of ``frames``)."""
    tables = list(frames)
    sizes = [len(frames[t]) for t in tables]
    bounds = np.cumsum([0] + sizes)
    values = {t: np.empty((len(frames[t]), len(columns))) for t in tables}
    keys = {t: np.empty((len(frames[t]), len(columns)), dtype=np.int64) for t in tables}
    is_cat = np.zeros(len(columns), dtype=bool)
    for j, col in enumerate(columns):
        kind = _column_kind(frames["training"][col])
        if kind == "categorical":
            is_cat[j] = True
            labels = np.concatenate([_labels(frames[t][col]) for t in tables])
            # NaN gets code -1: just another category.
            codes = pd.factorize(labels, use_na_sentinel=True)[0].astype(np.int64)
            for k, t in enumerate(tables):
                part = codes[bounds[k] : bounds[k + 1]]
                values[t][:, j] = part
                keys[t][:, j] = part
        else:
            for t in tables:
                values[t][:, j], keys[t][:, j] = _numeric(frames[t][col], kind)
    return values, keys, is_cat


def row_ids(key_blocks: list[np.ndarray]) -> list[np.ndarray]:
    """One integer id per distinct row across all blocks (exact, no hashing collisions)."""
    ids = signature_ids(np.vstack(key_blocks))
    bounds = np.cumsum([0] + [len(block) for block in key_blocks])
    return [ids[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def sequence_keys(row_ids: np.ndarray, groups: np.ndarray) -> list[bytes]:
    """Per group, the bytes of its row ids in table order: equal bytes ⇔ equal sequences."""
    ordered = row_ids[np.argsort(groups, kind="stable")]
    sizes = np.bincount(groups)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    return [ordered[a:b].tobytes() for a, b in zip(starts.tolist(), ends.tolist())]


def sequence_units(values: np.ndarray, is_cat: np.ndarray, groups: np.ndarray):
    """One vector per group (module docstring): the length, then each column's level.

    Parameters
    ----------
    values : ndarray of shape (rows, columns)
        Encoded rows (categoricals as codes).
    is_cat : ndarray of bool
    groups : ndarray of int
        Group code 0..g-1 of each row.

    Returns
    -------
    units : ndarray of shape (g, 1 + columns)
    unit_is_cat : ndarray of bool
    lengths : ndarray of int, the rows per group
    """
    order = np.argsort(groups, kind="stable")
    rows = values[order]
    g = groups[order]
    lengths = np.bincount(g)
    starts = np.cumsum(lengths) - lengths
    units = np.empty((len(lengths), 1 + values.shape[1]))
    units[:, 0] = lengths
    for j in range(values.shape[1]):
        col = rows[:, j]
        if is_cat[j]:
            units[:, 1 + j] = _group_mode(g, col, len(lengths))
        else:
            present = ~np.isnan(col)
            total = np.add.reduceat(np.where(present, col, 0.0), starts)
            seen = np.add.reduceat(present.astype(np.int64), starts)
            units[:, 1 + j] = np.where(seen > 0, total / np.maximum(seen, 1), np.nan)
    return units, np.r_[False, is_cat], lengths


def _group_mode(g: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Most frequent code per group; ties go to the smallest code."""
    order = np.lexsort((codes, g))
    gs, cs = g[order], codes[order]
    new_run = np.r_[True, (gs[1:] != gs[:-1]) | (cs[1:] != cs[:-1])]
    run_start = np.flatnonzero(new_run)
    run_len = np.diff(np.r_[run_start, len(gs)])
    run_g, run_c = gs[run_start], cs[run_start]
    best = np.lexsort((run_c, -run_len, run_g))  # per group: longest run, then smallest code
    first = best[np.r_[True, run_g[best][1:] != run_g[best][:-1]]]
    mode = np.empty(n_groups)
    mode[run_g[first]] = run_c[first]
    return mode


def fit_ranks(reference: list[np.ndarray], is_cat: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per numeric feature, the mid-rank empirical CDF of the reference units: (values, CDF).

    Ties share their mid-rank, so a feature's share of equal values stays at distance 0.
    """
    ref = np.vstack(reference)
    fitted = {}
    for j in np.flatnonzero(~is_cat):
        col = ref[:, j]
        col = col[~np.isnan(col)]
        if col.size == 0:  # no reference numbers: every number is alike, NaN still differs
            fitted[j] = (np.zeros(1), np.zeros(1))
            continue
        uniq, counts = np.unique(col, return_counts=True)
        below = np.cumsum(counts) - counts
        fitted[j] = (uniq, (below + (counts - 1) / 2.0) / max(col.size - 1, 1))
    return fitted


def apply_ranks(x: np.ndarray, fitted: dict, is_cat: np.ndarray) -> np.ndarray:
    """A copy of ``x`` with numeric features mapped through their fitted CDF; values between
    reference values are interpolated linearly, values outside clamp to the ends."""
    out = np.array(x, dtype=np.float64, copy=True)
    for j, (uniq, cdf) in fitted.items():
        col = out[:, j]
        ok = ~np.isnan(col)
        col[ok] = np.interp(col[ok], uniq, cdf)
    return out
