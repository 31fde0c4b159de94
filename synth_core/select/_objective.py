"""Counts, targets and the selection objective.

Definition (the metric restricted to the selected features): for a feature ``f`` with
target proportions ``p_f`` (training cell counts / training total) and subset proportions
``q_f`` (subset cell counts / subset total),

    error_f = sum_cells |q_f - p_f|        accuracy_f = 1 - error_f / 2

and the objective is ``sum_f weight_f * error_f`` with the :class:`FeatureSet` weights,
i.e. the mean over the present phases (uni, bi, tri) of the mean error of the phase's
features. :func:`objective` computes exactly this from any counts and target vectors (each
feature is normalised by its own total, so sizes need not match).

Trimming and refinement work in count space against ``t_f = p_f * N_target``
(:func:`target_counts`): :func:`count_error` ``= sum_f weight_f * sum_cells |c_f - t_f|``. When
the subset total equals ``N_target``, ``objective == count_error / N_target`` exactly (up to
rounding).
"""

from __future__ import annotations

import numpy as np

from synth_core.errors import InputError
from synth_core.select import _kernels as kernels
from synth_core.select._features import FeatureSet, check_codes, check_row_weights


def _rows_from(rows_or_mask, n_rows: int) -> np.ndarray:
    arr = np.asarray(rows_or_mask)
    if arr.dtype == np.bool_:
        if arr.shape != (n_rows,):
            raise InputError(f"row mask has shape {arr.shape}, expected ({n_rows},)")
        return np.flatnonzero(arr).astype(np.int64)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer) or arr.ndim != 1:
        raise InputError("rows must be a 1-D integer index array or a boolean mask")
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= n_rows:
        raise InputError(f"row index outside [0, {n_rows})")
    return np.ascontiguousarray(arr)


def cell_counts(codes: np.ndarray, feature_set: FeatureSet, rows=None, weights=None) -> np.ndarray:
    """Cell counts (float64, length ``total_cells``) of ``codes`` over all rows or the given
    rows (index array or boolean mask). ``weights`` (optional, one per row of ``codes``)
    weights each row; otherwise each row counts 1. A row listed twice counts twice."""
    codes = check_codes(codes, feature_set.n_bins)
    w = check_row_weights(weights, codes.shape[0])
    if rows is not None:
        idx = _rows_from(rows, codes.shape[0])
        codes = np.ascontiguousarray(codes[idx])  # gathered: the scan streams the subset
        w = np.ascontiguousarray(w[idx]) if w.size else w
    counts = np.zeros(feature_set.total_cells, dtype=np.float64)
    accumulate(codes, feature_set, w, counts)
    return counts


def accumulate(codes: np.ndarray, feature_set: FeatureSet, row_w: np.ndarray, counts: np.ndarray) -> None:
    """Add every row of the (validated, contiguous) ``codes`` to ``counts``; ``row_w`` is
    empty (unit weights) or aligned with the rows of ``codes``."""
    fs = feature_set
    kernels.accumulate_counts(codes, row_w, fs.cols, fs.strides, fs.offsets, fs.arity, counts)


def subset_counts(codes: np.ndarray, rows_or_mask, feature_set: FeatureSet, weights=None) -> np.ndarray:
    """Cell counts of the subset ``rows_or_mask`` of ``codes`` (see :func:`cell_counts`)."""
    return cell_counts(codes, feature_set, rows=rows_or_mask, weights=weights)


def feature_totals(vec: np.ndarray, feature_set: FeatureSet) -> np.ndarray:
    """Per-feature sums of a cell vector."""
    return np.add.reduceat(vec, feature_set.offsets) if vec.size else np.zeros(0)


def target_counts(train_codes: np.ndarray, feature_set: FeatureSet, n_target: float, weights=None) -> np.ndarray:
    """Target cell counts ``p_f * n_target`` where ``p_f`` = (weighted) training cell counts /
    (weighted) training total. ``weights``: optional per-training-row weights (e.g. 1/(L-1)
    for sequential data)."""
    if not n_target > 0:
        raise InputError(f"n_target must be positive, got {n_target}")
    counts = cell_counts(train_codes, feature_set, weights=weights)
    total = counts[feature_set.feature_slice(0)].sum()
    if not total > 0:
        raise InputError("training data has zero total weight")
    return counts * (float(n_target) / total)


def _normalised(vec: np.ndarray, feature_set: FeatureSet) -> np.ndarray:
    tot = feature_totals(vec, feature_set)
    tot = np.where(tot > 0, tot, 1.0)
    return vec / np.repeat(tot, feature_set.n_cells)


def feature_errors(counts: np.ndarray, target: np.ndarray, feature_set: FeatureSet) -> np.ndarray:
    """Per-feature L1 error ``sum_cells |q_f - p_f|`` (each side normalised by its own
    per-feature total; an all-zero side counts as proportions 0)."""
    _check_vec(counts, feature_set, "counts")
    _check_vec(target, feature_set, "target")
    diff = np.abs(_normalised(counts, feature_set) - _normalised(target, feature_set))
    return np.add.reduceat(diff, feature_set.offsets)


def feature_accuracies(counts: np.ndarray, target: np.ndarray, feature_set: FeatureSet) -> np.ndarray:
    """Per-feature metric accuracy ``1 - error_f / 2``."""
    return 1.0 - feature_errors(counts, target, feature_set) / 2.0


def phase_accuracies(counts: np.ndarray, target: np.ndarray, feature_set: FeatureSet) -> dict[str, float]:
    """Mean accuracy per present phase, keyed ``"uni"``, ``"bi"``, ``"tri"``."""
    from synth_core.select._features import PHASE_NAMES

    acc = feature_accuracies(counts, target, feature_set)
    return {
        PHASE_NAMES[p]: float(acc[feature_set.phase == p].mean())
        for p in range(3)  # the metric's phases; a guard feature is not accuracy
        if np.any(feature_set.phase == p)
    }


def objective(counts: np.ndarray, target: np.ndarray, feature_set: FeatureSet) -> float:
    """The objective: ``sum_f weight_f * error_f`` (mean over phases of mean feature error)."""
    return float(np.dot(feature_set.weights, feature_errors(counts, target, feature_set)))


def count_error(counts: np.ndarray, target: np.ndarray, feature_set: FeatureSet) -> float:
    """Count-space objective ``sum_f weight_f * sum_cells |c - t|`` (what trimming and
    refinement minimise; equals ``objective * N_target`` when the subset total is N_target)."""
    _check_vec(counts, feature_set, "counts")
    _check_vec(target, feature_set, "target")
    return float(np.dot(feature_set.cell_weights, np.abs(counts - target)))


def _check_vec(vec: np.ndarray, feature_set: FeatureSet, what: str) -> None:
    if vec.shape != (feature_set.total_cells,):
        raise InputError(f"{what} has shape {vec.shape}, expected ({feature_set.total_cells},)")


def _row_gains(codes, rows, feature_set, counts, target, row_weights, sign):
    if rows is not None:
        idx = _rows_from(rows, codes.shape[0])
        codes = np.ascontiguousarray(codes[idx])
        row_weights = np.ascontiguousarray(row_weights[idx]) if row_weights.size else row_weights
    out = np.empty(codes.shape[0], dtype=np.float64)
    gains_from_resid(codes, feature_set, counts - target, row_weights, sign, out)
    return out


def change_terms(resid: np.ndarray, d: float) -> np.ndarray:
    """``|x| - |x + d|`` for every cell, in the clipped form of
    :func:`synth_core.select._kernels.change_term` (same arithmetic, so the same bits)."""
    v = 2.0 * resid + d
    if d > 0:
        v = -v
    return np.minimum(abs(d), np.maximum(-abs(d), v))


def gains_from_resid(codes, fs, resid, row_w, sign, out):
    """Kernel dispatch shared by trimming and refinement (inputs already validated; ``codes``
    contiguous, ``row_w`` empty or aligned with its rows): ``out[i]`` = decrease of
    :func:`count_error` when row ``i`` is removed (``sign=-1``) or added (``sign=+1``), given
    ``resid = counts - target``. Unweighted rows go through a per-cell gain vector (one
    gather per feature), weighted rows through the direct formula."""
    if row_w.shape[0] == 0:
        cellvec = fs.cell_weights * change_terms(resid, float(sign))
        kernels.gather_row_sums(codes, cellvec, fs.cols, fs.strides, fs.offsets, fs.arity, out)
    else:
        kernels.weighted_row_gains(codes, row_w, float(sign), resid, fs.weights, fs.cols, fs.strides, fs.offsets, out)


def partial_gains(codes, fs, resid, row_w, sign, features, out):
    """Like :func:`gains_from_resid`, summed over the features ``features`` (index array) only."""
    cols = np.ascontiguousarray(fs.cols[features])
    strides = np.ascontiguousarray(fs.strides[features])
    offsets = np.ascontiguousarray(fs.offsets[features])
    if row_w.shape[0] == 0:
        cellvec = fs.cell_weights * change_terms(resid, float(sign))
        kernels.gather_row_sums(codes, cellvec, cols, strides, offsets, np.ascontiguousarray(fs.arity[features]), out)
    else:
        weights = np.ascontiguousarray(fs.weights[features])
        kernels.weighted_row_gains(codes, row_w, float(sign), resid, weights, cols, strides, offsets, out)


def removal_gains(codes, rows, feature_set: FeatureSet, counts, target, row_weights=None) -> np.ndarray:
    """Exact decrease of :func:`count_error` from removing each single row (``rows``: index
    array, mask, or ``None`` for all rows of ``codes``) from a subset with ``counts``:
    ``sum_f weight_f * (|c - t| - |c - w_r - t|)`` over the row's cells (``w_r = 1``
    unless ``row_weights``, one per row of ``codes``, is given). Positive = improvement."""
    codes = check_codes(codes, feature_set.n_bins)
    w = check_row_weights(row_weights, codes.shape[0], "row_weights")
    return _row_gains(codes, rows, feature_set, counts, target, w, -1)


def addition_gains(codes, rows, feature_set: FeatureSet, counts, target, row_weights=None) -> np.ndarray:
    """Exact decrease of :func:`count_error` from adding each single row:
    ``sum_f weight_f * (|c - t| - |c + w_r - t|)``. Positive = improvement."""
    codes = check_codes(codes, feature_set.n_bins)
    w = check_row_weights(row_weights, codes.shape[0], "row_weights")
    return _row_gains(codes, rows, feature_set, counts, target, w, +1)
