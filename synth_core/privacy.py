"""Privacy metrics: distance to closest record (DCR), NNDR and exact copies.

A synthetic set leaks when its rows sit closer to the training rows than to rows the generator
never saw (the holdout). Both references are subsampled to the same number of units, so with
no leak a synthetic row is equally likely to be closest to either: ``dcr_share`` ≈ 0.5.

Distance between two rows (after :func:`_encode`):

* numeric and datetime columns (datetimes as int64 ns) are mapped to [0, 1] by their mid-rank
  empirical CDF fitted on the training ∪ holdout reference rows, then compared as ``(a − b)²``;
  the rank transform makes a unit of distance mean the same share of the data in every column;
* categorical columns (object, string, bool, category, mixed types on their string form) add 1
  on mismatch, never anything based on the order of their codes;
* NaN is a value of its own: NaN vs NaN adds 0, NaN vs a number adds 1;
* the distance is the square root of the sum (Euclidean).

Nearest neighbours are exact (brute force, :func:`synth_core.nn_kernels.two_nearest`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from synth_core.errors import InputError
from synth_core.nn_kernels import two_nearest

DEFAULT_SAMPLE_FLAT = 10_000
DEFAULT_SAMPLE_SEQUENTIAL = 2_000
NNDR_EPS = 1e-8
REFERENCES = ("training", "holdout")
TABLES = (*REFERENCES, "synthetic")


@dataclass(frozen=True)
class PrivacyResult:
    """Privacy metrics of a synthetic table against its training and holdout tables.

    Attributes
    ----------
    dcr_share : float
        Share of synthetic rows closer to the training reference than to the holdout
        reference (ties count half). About 0.5 when nothing leaks.
    dcr_training, dcr_holdout : float
        Mean distance of a synthetic row to its closest training / holdout reference row.
    dcr_training_p5, dcr_holdout_p5 : float
        5th percentiles of those distances.
    nndr_ratio : float
        ``median NNDR(synthetic→training) / median NNDR(synthetic→holdout)`` with
        ``NNDR = (d1 + 1e-8) / (d2 + 1e-8)``; well below 1 when synthetic rows hug training rows.
    exact_copy_training, exact_copy_holdout : float
        Share of all synthetic rows equal (on every column, NaN equal to NaN) to some row of the
        full training / holdout table.
    exact_copy_training_sequences, exact_copy_holdout_sequences : float or None
        Sequential data only: share of synthetic groups whose whole sequence (rows in order, key
        excluded) equals some training / holdout sequence.
    n : int
        Units (rows, or groups for sequential data) in each of the two references.
    n_synthetic : int
        Synthetic units used for the distances (``n``, or all when there are fewer).
    rows : dict
        Rows entering the distance search per table (equals the units for flat data).
    """

    dcr_share: float
    dcr_training: float
    dcr_holdout: float
    dcr_training_p5: float
    dcr_holdout_p5: float
    nndr_ratio: float
    exact_copy_training: float
    exact_copy_holdout: float
    exact_copy_training_sequences: float | None
    exact_copy_holdout_sequences: float | None
    n: int
    n_synthetic: int
    rows: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values: floats rounded to 6 decimals, ints, None."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, dict):
                out[key] = {k: int(v) for k, v in value.items()}
            elif isinstance(value, (int, np.integer)):
                out[key] = int(value)
            elif value is None:
                out[key] = None
            else:
                out[key] = round(float(value), 6)
        return out


def privacy_passes(
    result: PrivacyResult,
    *,
    max_dcr_share: float = 0.52,
    min_nndr_ratio: float = 0.5,
    exact_copy_tolerance: float = 0.0,
) -> tuple[bool, list[str]]:
    """Judge a :class:`PrivacyResult` against thresholds.

    Parameters
    ----------
    result : PrivacyResult
    max_dcr_share : float, default 0.52
        Fail when ``dcr_share`` exceeds it.
    min_nndr_ratio : float, default 0.5
        Fail when ``nndr_ratio`` is below it.
    exact_copy_tolerance : float, default 0.0
        Fail when ``exact_copy_training > exact_copy_holdout + exact_copy_tolerance``. Discrete
        data produce coincidental copies of both tables; a training table larger than the
        holdout gets more of them, so a small positive tolerance avoids false alarms there.

    Returns
    -------
    passed : bool
    reasons : list of str
        One line per failed check, with the value and the threshold; empty when passed.
    """
    reasons = []
    if result.dcr_share > max_dcr_share:
        reasons.append(f"dcr_share {result.dcr_share:.4f} > max_dcr_share {max_dcr_share}")
    if result.nndr_ratio < min_nndr_ratio:
        reasons.append(f"nndr_ratio {result.nndr_ratio:.4f} < min_nndr_ratio {min_nndr_ratio}")
    if result.exact_copy_training > result.exact_copy_holdout + exact_copy_tolerance:
        reasons.append(
            f"exact_copy_training {result.exact_copy_training:.6f} > exact_copy_holdout "
            f"{result.exact_copy_holdout:.6f} + exact_copy_tolerance {exact_copy_tolerance}"
        )
    return not reasons, reasons


def privacy_metrics(
    training: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    *,
    group_key: str | None = None,
    sample_size: int | None = None,
    seed: int = 0,
) -> PrivacyResult:
    """Distance-based privacy metrics of ``synthetic`` against ``training`` and ``holdout``.

    Parameters
    ----------
    training, holdout, synthetic : DataFrame
        The columns used are ``training``'s, less ``group_key``; the other two tables are
        reindexed to them.
    group_key : str, optional
        Column holding the group (sequence) id of sequential data. Units are then groups: all
        rows of a sampled group are used, each with its group's sequence length as an extra
        numeric feature.
    sample_size : int, optional
        Units per reference: both references get ``n = min(|training|, |holdout|,
        sample_size)`` units, drawn without replacement, and the synthetic sample ``n`` units
        (or all, when fewer). Default 10,000 rows for flat data and 2,000 groups for sequential
        data: at about 7.7 rows per group that is about 15,000 rows per table, which keeps the
        exact (quadratic) neighbour search to a few seconds.
    seed : int, default 0
        Seed of ``numpy.random.default_rng`` for the subsampling; same seed and inputs give
        identical numbers.

    Returns
    -------
    PrivacyResult

    Raises
    ------
    InputError
        A column (or the group key) missing from a table, an empty table, or fewer than two
        units in a reference.

    Notes
    -----
    Exact copies are counted over the full tables (every synthetic row against every training /
    holdout row), not only over the subsample.
    """
    frames = {"training": training, "holdout": holdout, "synthetic": synthetic}
    columns = _check_columns(frames, group_key)
    if sample_size is None:
        sample_size = DEFAULT_SAMPLE_SEQUENTIAL if group_key else DEFAULT_SAMPLE_FLAT
    if int(sample_size) < 2:
        raise InputError(f"sample_size must be at least 2, got {sample_size}")

    values, keys, is_cat = _encode(frames, columns)
    ids = dict(zip(TABLES, _row_ids([keys[t] for t in TABLES])))
    exact_trn = float(np.isin(ids["synthetic"], ids["training"]).mean())
    exact_hol = float(np.isin(ids["synthetic"], ids["holdout"]).mean())

    groups: dict[str, np.ndarray] | None = None
    seq_trn = seq_hol = None
    if group_key is not None:
        # Group codes 0..k-1 in order of first appearance; a missing key is a group too.
        groups = {t: pd.factorize(frames[t][group_key], use_na_sentinel=False)[0] for t in TABLES}
        seqs = {t: _sequence_keys(ids[t], groups[t]) for t in TABLES}
        trn_set, hol_set = set(seqs["training"]), set(seqs["holdout"])
        seq_trn = float(np.mean([key in trn_set for key in seqs["synthetic"]]))
        seq_hol = float(np.mean([key in hol_set for key in seqs["synthetic"]]))

    units = {t: (int(groups[t].max()) + 1 if groups else len(frames[t])) for t in TABLES}
    n = min(units["training"], units["holdout"], int(sample_size))
    if n < 2:
        raise InputError(
            f"need at least 2 {'groups' if groups else 'rows'} in training and holdout, got "
            f"{units['training']} and {units['holdout']}"
        )
    n_syn = min(n, units["synthetic"])

    rng = np.random.default_rng(seed)
    features = {}
    for table in TABLES:
        size = n_syn if table == "synthetic" else n
        picked = np.sort(rng.choice(units[table], size, replace=False))
        if groups is None:
            features[table] = values[table][picked]
        else:
            g = groups[table]
            rows = np.flatnonzero(np.isin(g, picked))
            seq_len = np.bincount(g)[g[rows]].astype(np.float64)
            features[table] = np.column_stack([values[table][rows], seq_len])
    feat_cat = is_cat if groups is None else np.append(is_cat, False)
    _rank_transform(features, feat_cat)
    (t1, t2), (h1, h2) = _nearest(features, feat_cat)

    dcr_trn, dcr_hol = np.sqrt(t1), np.sqrt(h1)
    nndr_trn = (dcr_trn + NNDR_EPS) / (np.sqrt(t2) + NNDR_EPS)
    nndr_hol = (dcr_hol + NNDR_EPS) / (np.sqrt(h2) + NNDR_EPS)
    # Compare squared sums: no rounding from the square root can create or break a tie.
    share = float(np.mean(t1 < h1) + 0.5 * np.mean(t1 == h1))
    return PrivacyResult(
        dcr_share=share,
        dcr_training=float(dcr_trn.mean()),
        dcr_holdout=float(dcr_hol.mean()),
        dcr_training_p5=float(np.percentile(dcr_trn, 5)),
        dcr_holdout_p5=float(np.percentile(dcr_hol, 5)),
        nndr_ratio=float(np.median(nndr_trn) / np.median(nndr_hol)),
        exact_copy_training=exact_trn,
        exact_copy_holdout=exact_hol,
        exact_copy_training_sequences=seq_trn,
        exact_copy_holdout_sequences=seq_hol,
        n=n,
        n_synthetic=n_syn,
        rows={t: len(features[t]) for t in TABLES},
    )


def _nearest(features: dict[str, np.ndarray], is_cat: np.ndarray):
    """Squared distances (d1, d2) of each synthetic row to its two nearest training rows and
    to its two nearest holdout rows."""
    ref = np.vstack([features["training"], features["holdout"]])
    cat_cols, num_cols = _feature_order(ref, is_cat)
    parts = {
        t: (
            np.ascontiguousarray(features[t][:, cat_cols], dtype=np.int32),
            np.ascontiguousarray(features[t][:, num_cols]),
        )
        for t in TABLES
    }
    q_cat, q_num = parts["synthetic"]
    return tuple(two_nearest(q_cat, parts[t][0], q_num, parts[t][1]) for t in REFERENCES)


def _check_columns(frames: dict[str, pd.DataFrame], group_key: str | None) -> list[str]:
    if group_key is not None and group_key not in frames["training"].columns:
        raise InputError(f"group key column {group_key!r} missing from training")
    columns = [c for c in frames["training"].columns if c != group_key]
    if not columns:
        raise InputError("training has no columns to compare (besides the group key)")
    for table, df in frames.items():
        if len(df) == 0:
            raise InputError(f"{table} table has no rows")
        missing = [c for c in columns + ([group_key] if group_key else []) if c not in df.columns]
        if missing:
            raise InputError(f"column {missing[0]!r} missing from {table}")
    return columns


def _column_kind(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "timedelta"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    return "categorical"


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


def _encode(frames: dict[str, pd.DataFrame], columns: list[str]):
    """Per table: float64 value matrix (numerics raw, categoricals as shared int codes) and an
    int64 key matrix for exact comparison; plus the categorical flag per column."""
    sizes = [len(frames[t]) for t in TABLES]
    bounds = np.cumsum([0] + sizes)
    values = {t: np.empty((len(frames[t]), len(columns))) for t in TABLES}
    keys = {t: np.empty((len(frames[t]), len(columns)), dtype=np.int64) for t in TABLES}
    is_cat = np.zeros(len(columns), dtype=bool)
    for j, col in enumerate(columns):
        kind = _column_kind(frames["training"][col])
        if kind == "categorical":
            is_cat[j] = True
            labels = np.concatenate([_labels(frames[t][col]) for t in TABLES])
            # NaN gets code -1: just another category.
            codes = pd.factorize(labels, use_na_sentinel=True)[0].astype(np.int64)
            for k, t in enumerate(TABLES):
                part = codes[bounds[k] : bounds[k + 1]]
                values[t][:, j] = part
                keys[t][:, j] = part
        else:
            for t in TABLES:
                values[t][:, j], keys[t][:, j] = _numeric(frames[t][col], kind)
    return values, keys, is_cat


def _row_ids(key_blocks: list[np.ndarray]) -> list[np.ndarray]:
    """One integer id per distinct row across all blocks (exact, no hashing collisions).

    Factorizes column by column, folding each column's codes into the running id; ids stay
    below the row count, so the product cannot overflow. O(rows · columns).
    """
    keys = np.vstack(key_blocks)
    ids = np.zeros(len(keys), dtype=np.int64)
    for j in range(keys.shape[1]):
        codes = pd.factorize(keys[:, j])[0].astype(np.int64)
        ids = pd.factorize(ids * (int(codes.max()) + 1) + codes)[0].astype(np.int64)
    out, start = [], 0
    for block in key_blocks:
        out.append(ids[start : start + len(block)])
        start += len(block)
    return out


def _sequence_keys(row_ids: np.ndarray, groups: np.ndarray) -> list[bytes]:
    """Per group, the bytes of its row ids in table order: equal bytes ⇔ equal sequences."""
    ordered = row_ids[np.argsort(groups, kind="stable")]
    sizes = np.bincount(groups)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    return [ordered[a:b].tobytes() for a, b in zip(starts.tolist(), ends.tolist())]


def _rank_transform(features: dict[str, np.ndarray], is_cat: np.ndarray) -> None:
    """Map numeric columns in place to their mid-rank empirical CDF on the reference rows.

    Values between reference values are interpolated linearly, values outside clamp to the
    ends; ties share their mid-rank, so a column's share of equal values stays at distance 0.
    """
    for j in np.flatnonzero(~is_cat):
        ref = np.concatenate([features["training"][:, j], features["holdout"][:, j]])
        ref = ref[~np.isnan(ref)]
        if ref.size == 0:  # no reference numbers: every number is alike, NaN still differs
            uniq, cdf = np.zeros(1), np.zeros(1)
        else:
            uniq, counts = np.unique(ref, return_counts=True)
            below = np.cumsum(counts) - counts
            cdf = (below + (counts - 1) / 2.0) / max(ref.size - 1, 1)
        for t in TABLES:
            col = features[t][:, j]
            ok = ~np.isnan(col)
            col[ok] = np.interp(col[ok], uniq, cdf)


def _feature_order(ref: np.ndarray, is_cat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Categorical and numeric column indices, each by decreasing expected contribution to a
    random pair's squared distance.

    The kernel abandons a candidate once its partial sum is too large, so summing the
    features that usually differ most first makes that happen sooner.
    """
    expected = np.empty(ref.shape[1])
    for j in range(ref.shape[1]):
        col = ref[:, j]
        if is_cat[j]:
            p = np.unique(col, return_counts=True)[1] / col.size
            expected[j] = 1.0 - np.sum(p * p)
        else:
            nan = np.isnan(col)
            p = nan.mean()
            var = col[~nan].var() if (~nan).any() else 0.0
            expected[j] = 2 * p * (1 - p) + (1 - p) ** 2 * 2 * var
    order = np.argsort(-expected, kind="stable")
    return order[is_cat[order]], order[~is_cat[order]]
