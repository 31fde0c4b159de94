"""Greedy trimming of an oversized subset down to exactly ``n_target`` rows.

Counts of every feature's cells are maintained for the current subset and compared with
the target counts ``t = p * N_target``. The gain of removing row ``r`` is the exact change
of the count-space objective (:func:`synth_core.select._objective.count_error`),

    gain(r) = sum_f weight_f * (|c_f - t_f| - |c_f - 1 - t_f|)     over r's cells,

with the objective's feature weights (``1`` becomes the row weight when rows are weighted).
Each step removes the row of largest gain (ties: smallest position in the sorted input).

Exact mode (default): one parallel numba pass computes the gains of all remaining rows;
then rows are removed by *lazy greedy* over a heap of those gains. Removing rows only lowers
counts and each per-cell term is nondecreasing in the count, so a gain computed earlier is
an upper bound of the current one: the popped row's gain is recomputed exactly and it is
removed only if it still beats every other row's (upper-bound) key, otherwise it is pushed
back with the fresh value. The result is therefore the exact one-row-at-a-time greedy
sequence, and batching only decides how often all gains are refreshed: a batch ends after
``ceil(batch_fraction * excess)`` removals (default ``batch_fraction=1``: no limit) or once
its single-row recomputations exceed ``refresh_ratio`` times the number of remaining rows.
A recomputation is a sequential random access to every feature's cell, roughly ten times
the cost of one row of the blocked parallel pass, hence the default ``refresh_ratio=0.1``.

Batch mode (``exact=False``): each pass's ``ceil(batch_fraction * excess)`` best rows
(default fraction 0.2, so batches shrink as the subset approaches the target) are removed
in order of the pass's gains without re-checking; each removal's exact gain is still
recomputed to keep the objective's books. With thousands of features many cells sit near
their targets, so gains go stale quickly and exact mode needs tens of recomputations per
removal; batch mode then is several times faster at some loss of quality (see the
benchmark notes in the report: refinement recovers it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from math import ceil

import numpy as np

from synth_core.errors import InputError
from synth_core.select import _kernels as kernels
from synth_core.select._features import FeatureSet, check_codes, check_row_weights
from synth_core.select._objective import _check_vec, _rows_from, accumulate, count_error, gains_from_resid, objective
from synth_core.select._progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrimResult:
    rows: np.ndarray  # sorted pool row indices, exactly n_target of them
    counts: np.ndarray  # cell counts of the trimmed subset
    objective: float  # metric objective of the result (recomputed from the counts)
    count_error: float  # incrementally maintained sum_f w_f sum |c - t| at the end
    trace: np.ndarray  # count_error / N_target at the start and after every batch
    removed: np.ndarray  # pool rows in removal order
    removal_gains: np.ndarray  # exact gain of each removal when it happened
    n_batches: int
    n_reevaluations: int


def _unique_sorted_rows(rows, n_pool: int) -> np.ndarray:
    """Pool rows of a subset (an index array or a boolean mask, see
    :func:`synth_core.select._objective._rows_from`), sorted; a row listed twice is refused."""
    arr = _rows_from(rows, n_pool)
    uniq = np.unique(arr)
    if uniq.size != arr.size:
        raise InputError("rows contain duplicates (each pool row can be used once)")
    return uniq


def trim_to_size(
    codes: np.ndarray,
    rows,
    feature_set: FeatureSet,
    target: np.ndarray,
    n_target: int,
    *,
    row_weights=None,
    exact: bool = True,
    batch_fraction: float | None = None,
    refresh_ratio: float = 0.1,
) -> TrimResult:
    """Greedily remove rows from ``rows`` (unique pool row indices or a mask into ``codes``)
    until exactly ``n_target`` remain.

    ``target``: target counts for ``N_target`` rows (:func:`synth_core.select._objective.target_counts`).
    ``row_weights``: optional weight per pool row (length ``len(codes)``).
    ``exact``: exact greedy (lazy evaluation, see the module docstring); ``False``: plain
    batch greedy, removing each batch's best rows by the gains of its pass without
    re-checking them (one recomputation per removal, for the incremental objective). Batch
    mode is several times faster when many cells sit near their targets (large feature sets),
    at some cost in quality that refinement can recover.
    ``batch_fraction``: removals per batch as a share of the remaining excess (default 1.0
    when exact, 0.2 otherwise). ``refresh_ratio``: a batch also ends once its recomputations
    exceed this share of the remaining rows.
    """
    fs = feature_set
    codes = check_codes(codes, fs.n_bins)
    _check_vec(target, fs, "target")
    target = np.ascontiguousarray(target, dtype=np.float64)
    rows = _unique_sorted_rows(rows, codes.shape[0])
    m = rows.shape[0]
    if not 0 <= n_target <= m:
        raise InputError(f"n_target {n_target} must be between 0 and the subset size {m}")
    if batch_fraction is None:
        batch_fraction = 1.0 if exact else 0.2
    if not 0 < batch_fraction <= 1:
        raise InputError(f"batch_fraction must be in (0, 1], got {batch_fraction}")
    if not refresh_ratio > 0:
        raise InputError(f"refresh_ratio must be positive, got {refresh_ratio}")
    pool_w = check_row_weights(row_weights, codes.shape[0], "row_weights")

    sub = np.ascontiguousarray(codes[rows])  # gathered: the subset's codes stay in cache
    sub_w = np.ascontiguousarray(pool_w[rows]) if pool_w.size else pool_w
    counts = np.zeros(fs.total_cells, dtype=np.float64)
    accumulate(sub, fs, sub_w, counts)
    resid = counts - target  # kept in step with counts: the kernels read one vector
    t_total = float(target[fs.feature_slice(0)].sum()) or 1.0
    err = count_error(counts, target, fs)
    trace = [err / t_total]

    alive = np.ones(m, dtype=np.uint8)
    stale = np.empty(m, dtype=np.float64)
    n_remove_total = m - n_target
    removed = np.empty(n_remove_total, dtype=np.int64)
    gains = np.empty(n_remove_total, dtype=np.float64)
    n_done = 0
    n_batches = 0
    n_reevals = 0
    progress = Progress(log, "trim", total=n_remove_total, unit="rows")
    while n_done < n_remove_total:
        excess = n_remove_total - n_done
        batch = min(excess, max(1, ceil(batch_fraction * excess)))
        live = np.flatnonzero(alive)
        live_gains = np.empty(live.shape[0], dtype=np.float64)
        live_w = np.ascontiguousarray(sub_w[live]) if sub_w.size else sub_w
        gains_from_resid(np.ascontiguousarray(sub[live]), fs, resid, live_w, -1, live_gains)
        stale[live] = live_gains
        # exact: accept only the verified best row; batch: the batch's best rows by the gains
        # of this pass, unverified (each one's exact gain is still recomputed for the books)
        theta = np.inf if exact else -np.inf
        n_removed, n_recomputed = kernels.trim_lazy_greedy(
            sub, alive, stale, sub_w, batch, max(64, int(refresh_ratio * live.shape[0])), theta, counts, resid,
            fs.weights, fs.cols, fs.strides, fs.offsets, removed, gains, n_done,
        )
        err -= float(gains[n_done : n_done + n_removed].sum())
        n_done += n_removed
        n_batches += 1
        n_reevals += n_recomputed
        trace.append(err / t_total)
        progress.update(n_done, batches=n_batches, objective=err / t_total)
    progress.finish(n_done, batches=n_batches, recomputations=n_reevals, objective=err / t_total)

    return TrimResult(
        rows=rows[alive.astype(bool)],
        counts=counts,
        objective=objective(counts, target, fs),
        count_error=err,
        trace=np.asarray(trace),
        removed=rows[removed],
        removal_gains=gains,
        n_batches=n_batches,
        n_reevaluations=n_reevals,
    )
