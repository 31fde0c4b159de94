"""Iterative proportional fitting of pool-row weights to the training pair tables, and
integerisation of the weights into an (oversized) subset of unique pool rows.

Design, rationale and measured figures: ``docs/design/ipf.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from synth_core.errors import InputError
from synth_core.select import _kernels as kernels
from synth_core.select._features import _as_n_bins, _normalise_tuples, check_codes, check_row_weights
from synth_core.select._progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IPFResult:
    weights: np.ndarray  # (n_pool,) float64, sum == total
    pairs: np.ndarray  # (K, 2) the pairs fitted, in sweep order
    n_sweeps: int
    converged: bool  # max table change of the last sweep < tol
    stop_reason: str  # "converged" | "stalled" | "no_gain" (patience) | "max_sweeps"
    errors: np.ndarray  # (n_sweeps,) mean pre-adjustment L1 error of the pair tables
    max_change: np.ndarray  # (n_sweeps,) max over pairs of the adjustment's L1 change
    scores: np.ndarray  # (n_sweeps + 1,) score of the start and of each sweep; empty without a score
    kept_sweep: int  # the sweep whose weights these are (0: the start); n_sweeps unless it scored worse than 0


def _raked_tables(pairs: np.ndarray, nb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tables raked in a sweep as (first column, second column, stride of the first).

    A row's cell is ``code[first] * stride + code[second]``: pairs have the second column's
    bin count as stride; without pairs, every column's margin is a "pair" of the column with
    itself at stride 0.
    """
    if pairs.shape[0]:
        return pairs[:, 0], pairs[:, 1], nb[pairs[:, 1]]
    cols = np.arange(nb.shape[0], dtype=np.int64)
    return cols, cols, np.zeros_like(cols)


def _target_tables(train_codes, first, second, stride, n_cells, train_weights):
    """Training proportions of the raked tables, concatenated; returns (tables, offsets)."""
    offsets = np.zeros(len(first) + 1, dtype=np.int64)
    np.cumsum(n_cells, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.float64)
    w = train_weights if train_weights.size else None
    total = float(train_weights.sum()) if w is not None else float(train_codes.shape[0])
    if not total > 0:
        raise InputError("training data has zero total weight")
    cols = {}
    for k, (a, b) in enumerate(zip(first, second)):
        for c in (a, b):
            if c not in cols:
                cols[c] = train_codes[:, c].astype(np.intp)
        t = np.bincount(cols[a] * stride[k] + cols[b], weights=w, minlength=int(n_cells[k]))
        out[offsets[k] : offsets[k + 1]] = t / total
    return out, offsets


def _raked_targets(raker: _Raker, train, train_w, target_tables) -> tuple[np.ndarray, np.ndarray]:
    """The pair tables IPF rakes to and their offsets: counted from ``train`` (weighted by
    ``train_w``), or given as ``target_tables`` (differential-privacy mode: noisy counts), checked
    against the raked tables' cells."""
    if train is not None:
        return _target_tables(train, raker.first, raker.second, raker.stride, raker.table_cells, train_w)
    target_offsets = np.concatenate([[0], np.cumsum(raker.table_cells)]).astype(np.int64)
    targets = np.asarray(target_tables, dtype=np.float64)
    if targets.shape != (int(target_offsets[-1]),):
        raise InputError(f"target_tables has shape {targets.shape}, the raked tables have {int(target_offsets[-1])} "
                         "cells")
    return targets, target_offsets


def fit_weights(
    pool_codes: np.ndarray,
    train_codes: np.ndarray,
    n_bins,
    pairs,
    *,
    total: float | None = None,
    train_weights=None,
    init_weights=None,
    tol: float = 1e-3,
    max_sweeps: int = 20,
    score: Callable[[np.ndarray], float] | None = None,
    target_tables: np.ndarray | None = None,
    patience: int | None = None,
) -> IPFResult:
    """Fit one weight per pool row so that the pool's weighted pair tables match the
    training pair tables (raking over ``pairs``, see the docs/design/ipf.md).

    ``pairs`` may be empty: the weights are then raked on every column's margin.
    ``total``: the weights' sum (default ``n_pool``; IPF is scale-free, integerisation
    rescales anyway). ``init_weights``: start instead of uniform (rescaled to ``total``).
    ``train_weights``: optional per-training-row weights of the target tables.
    ``score(weights) -> float`` (lower is better): evaluated on the start and after every
    sweep; when the last sweep scores worse than the start, the best-scoring sweep's weights
    are returned instead (the later sweep on ties), so the fit never returns weights that
    score worse than its start.
    ``target_tables``: the raked tables' target proportions, concatenated in sweep order, instead
    of ``train_codes``' (which is then ``None``): differentially private selection passes its
    noisy tables here and never training rows.
    ``patience`` (with ``score``): stop ("no_gain") once that many sweeps in a row scored no
    better than the best score so far; the draw's objective then stopped improving, and later
    sweeps only fit the pair tables closer (None: sweep until converged, stalled or
    ``max_sweeps``).
    """
    nb = _as_n_bins(n_bins)
    pool = check_codes(pool_codes, nb, "pool_codes")
    train = check_codes(train_codes, nb, "train_codes") if target_tables is None else None
    n_pool = pool.shape[0]
    if n_pool == 0:
        raise InputError("pool_codes has no rows")
    if train is not None and train.shape[0] == 0:
        raise InputError("train_codes has no rows")
    pairs = _normalise_tuples(pairs, 2, nb.shape[0], "pairs")
    if max_sweeps < 1:
        raise InputError(f"max_sweeps must be >= 1, got {max_sweeps}")
    if patience is not None and patience < 1:
        raise InputError(f"patience must be >= 1, got {patience}")
    train_w = check_row_weights(train_weights, train.shape[0], "train_weights") if train is not None else None
    total = float(n_pool if total is None else total)
    if not total > 0:
        raise InputError(f"total must be positive, got {total}")

    raker = _Raker.start(pool, nb, pairs, _initial_weights(init_weights, n_pool, total))
    targets, target_offsets = _raked_targets(raker, train, train_w, target_tables)
    K = raker.first.shape[0]
    errors, changes, scores = [], [], []
    best_w, best_sweep = None, 0
    since_best = 0  # sweeps in a row that scored no better than the best so far (patience)
    if score is not None:
        scores.append(float(score(raker.scaled(total))))
        best_w = raker.w.copy()
    stop_reason = "max_sweeps"
    converged = False
    progress = Progress(log, "IPF", total=max_sweeps * K, unit="pair passes")
    table = raker.table_pass(-1, _EMPTY, 0)
    for sweep in range(max_sweeps):
        err_sum, max_change = 0.0, 0.0
        for k in range(K):
            err, ratio, change = _adjustment(table, targets[target_offsets[k] : target_offsets[k + 1]])
            err_sum += err
            max_change = max(max_change, change)
            if k + 1 < K:
                table = raker.table_pass(k, ratio, k + 1)
            progress.update(sweep * K + k + 1, sweep=sweep + 1, last_sweep_error=errors[-1] if errors else float("nan"))
        errors.append(err_sum / K)
        changes.append(max_change)
        log.debug("IPF sweep %d: mean pair error %.6f, max change %.6f", sweep + 1, errors[-1], max_change)
        if max_change < tol:
            converged, stop_reason = True, "converged"
        elif sweep >= 1 and errors[-2] - errors[-1] < tol * errors[-2]:
            stop_reason = "stalled"
        last = converged or stop_reason == "stalled" or sweep == max_sweeps - 1
        # the sweep's last adjustment, fused with the next sweep's first table (measured in vain when
        # the score below ends the fit: one pass)
        table = raker.table_pass(K - 1, ratio, -1 if last else 0)
        if score is not None:
            scores.append(float(score(raker.scaled(total))))
            since_best = 0 if scores[-1] < scores[best_sweep] else since_best + 1
            if scores[-1] <= scores[best_sweep]:
                best_w, best_sweep = raker.w.copy(), sweep + 1
            if patience is not None and not last and since_best >= patience:
                last, stop_reason = True, "no_gain"
        if last:
            break
    kept_sweep = len(errors)
    if score is not None and scores[-1] > scores[0]:
        raker.w, kept_sweep = best_w, best_sweep
        log.info("IPF: the last sweep scores worse than the start (%.6g > %.6g): keeping sweep %d (%.6g)",
                 scores[-1], scores[0], kept_sweep, scores[kept_sweep])
    progress.finish(len(errors) * K, sweeps=len(errors), error=errors[-1], stop=stop_reason)
    return IPFResult(
        weights=raker.scaled(total),
        pairs=pairs,
        n_sweeps=len(errors),
        converged=converged,
        stop_reason=stop_reason,
        errors=np.asarray(errors),
        max_change=np.asarray(changes),
        scores=np.asarray(scores),
        kept_sweep=kept_sweep,
    )


_EMPTY = np.zeros(0, dtype=np.float64)  # "no ratio": a pass that only measures a table


def _initial_weights(init_weights, n_pool: int, total: float) -> np.ndarray:
    """The start of the fit: uniform, or ``init_weights`` rescaled to ``total``."""
    if init_weights is None:
        return np.full(n_pool, total / n_pool, dtype=np.float64)
    w = check_row_weights(init_weights, n_pool, "init_weights").copy()
    s = w.sum()
    if not s > 0:
        raise InputError("init_weights sum to zero")
    w *= total / s
    return w


@dataclass
class _Raker:
    """The pool's weights and what a pass over the pool reads: a column-major copy of the codes
    (one uint8 byte column per pass) and the raked tables (:func:`_raked_tables`), ``table_cells``
    cells each."""

    codes_t: np.ndarray
    w: np.ndarray
    first: np.ndarray
    second: np.ndarray
    stride: np.ndarray
    table_cells: np.ndarray

    @classmethod
    def start(cls, pool: np.ndarray, nb: np.ndarray, pairs: np.ndarray, w: np.ndarray) -> _Raker:
        first, second, stride = _raked_tables(pairs, nb)
        table_cells = nb[first] * np.where(stride > 0, stride, 1)
        return cls(np.ascontiguousarray(pool.T), w, first, second, stride, table_cells)

    def table_pass(self, update_k: int, ratio: np.ndarray, next_k: int) -> np.ndarray:
        """One pass (:func:`synth_core.select._kernels.ipf_pass`): rescale the weights by ``ratio`` of
        table ``update_k``'s cells (-1: none), then return table ``next_k`` (-1: none)."""
        if update_k >= 0:
            upd_a, upd_b, upd_stride = self.first[update_k], self.second[update_k], self.stride[update_k]
        else:
            upd_a, upd_b, upd_stride = 0, 0, 1
        if next_k >= 0:
            tab_a, tab_b = self.first[next_k], self.second[next_k]
            tab_stride, tab_cells = self.stride[next_k], self.table_cells[next_k]
        else:
            tab_a, tab_b, tab_stride, tab_cells = 0, 0, 1, 0
        return kernels.ipf_pass(self.codes_t, self.w, int(upd_a), int(upd_b), int(upd_stride), ratio, int(tab_a),
                                int(tab_b), int(tab_stride), int(tab_cells))

    def scaled(self, total: float) -> np.ndarray:
        """The weights rescaled to sum to ``total``."""
        return self.w * (total / self.w.sum())


def _adjustment(table: np.ndarray, p: np.ndarray) -> tuple[float, np.ndarray, float]:
    """Raking of one table (docs/design/ipf.md): its error before the adjustment, the ratio that
    takes every fixable cell to its target ``p`` (scaled to the table's total) and how far that
    moves the table (L1, relative to the total)."""
    cur_total = table.sum()
    if not cur_total > 0:
        raise InputError("IPF: every pool row has weight 0 (pool cannot match the training tables)")
    err = float(np.abs(table / cur_total - p).sum())
    fixable = (table > 0) & (p > 0)
    mass = p[fixable].sum()
    if mass > 0:
        new = np.where(fixable, p * (cur_total / mass), 0.0)
        ratio = np.divide(new, table, out=np.zeros_like(table), where=table > 0)
    else:  # nothing fixable: leave the weights alone
        new = table
        ratio = np.ones_like(table)
    return err, ratio, float(np.abs(table - new).sum() / cur_total)


def inclusion_probabilities(weights: np.ndarray, n_out: int) -> np.ndarray:
    """``pi = min(1, c * w)`` with ``sum(pi) == n_out`` (needs ``n_out <= #(w > 0)``)."""
    w = np.asarray(weights, dtype=np.float64)
    certain = np.zeros(w.shape[0], dtype=bool)
    while True:
        remaining = n_out - int(certain.sum())
        rest = np.where(certain, 0.0, w)
        s = rest.sum()
        if remaining <= 0 or not s > 0:
            break
        scale = remaining / s
        new = (~certain) & (w * scale >= 1.0)
        if not new.any():
            break
        certain |= new
    pi = np.minimum(1.0, w * scale) if remaining > 0 and s > 0 else np.zeros_like(w)
    pi[certain] = 1.0
    return pi


def integerise(weights, n_target: int, rng, *, oversize: float = 1.25) -> np.ndarray:
    """Turn IPF weights into ``round(oversize * n_target)`` unique pool rows (sorted int64),
    each row included with probability ``min(1, c * w_r)`` (see docs/design/ipf.md).

    ``rng``: a seed or ``np.random.Generator``; same seed and weights -> same rows. The
    output size is clipped to the pool size.
    """
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise InputError("weights must be a non-empty 1-D array")
    if not np.all(np.isfinite(w)) or w.min() < 0:
        raise InputError("weights must be finite and non-negative")
    if n_target < 1 or not oversize >= 1.0:
        raise InputError(f"need n_target >= 1 and oversize >= 1 (got {n_target}, {oversize})")
    n_pool = w.shape[0]
    n_out = min(n_pool, int(round(oversize * n_target)))
    if n_target > n_pool:
        raise InputError(f"n_target {n_target} exceeds the pool size {n_pool}")

    positive = np.flatnonzero(w > 0)
    if positive.size <= n_out:
        zero = np.flatnonzero(w == 0)
        fill = gen.choice(zero, size=n_out - positive.size, replace=False) if n_out > positive.size else zero[:0]
        return np.sort(np.concatenate([positive, fill])).astype(np.int64)

    pi = inclusion_probabilities(w, n_out)
    certain = np.flatnonzero(pi >= 1.0)
    remaining = n_out - certain.size
    if remaining == 0:
        return certain.astype(np.int64)
    cand = np.flatnonzero((pi > 0) & (pi < 1.0))
    order = cand[gen.permutation(cand.size)]
    cum = np.cumsum(pi[order])
    cum *= remaining / cum[-1]  # remove rounding drift: the last point lands exactly
    u = 1.0 - gen.random()  # in (0, 1]
    hits = np.diff(np.floor(cum - u), prepend=-1.0)
    chosen = hits > 0
    deficit = remaining - int(chosen.sum())
    if deficit > 0:  # only if rounding put two points in one row: top up with the largest pi
        left = np.flatnonzero(~chosen)
        top = left[np.lexsort((left, -pi[order[left]]))[:deficit]]
        chosen[top] = True
    return np.sort(np.concatenate([certain, order[chosen]])).astype(np.int64)
