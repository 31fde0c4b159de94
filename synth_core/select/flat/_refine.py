"""Swap refinement of a subset of pool rows.

Design, rationale and measured figures: ``docs/design/swap-refinement.md``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial

import numpy as np

from synth_core.select import _kernels as kernels
from synth_core.select._features import FeatureSet, check_codes, check_row_weights
from synth_core.select._heap import TALLY_CALLS, TALLY_GAINS, start_search
from synth_core.select._objective import _check_vec, accumulate, count_error, gains_from_resid, objective, partial_gains
from synth_core.select._progress import Progress
from synth_core.select._swap_rounds import SwapLog, SwapStep, check_options, run_round
from synth_core.select.flat._trim import _unique_sorted_rows

log = logging.getLogger(__name__)
SEARCH_CHUNK = 512  # swaps per kernel call: lets the loop log progress (results do not depend on it)
# gains the search recomputes ahead per parallel call (speculate; one gain is ~3 us on census, starting
# a parallel call 5-30 us); results do not depend on it
SPECULATION_BATCH = 64
# relative margin of the pair screen in the search (kernels.swap_search): the rounding of a screened
# gain is ~1e-13 of the weights' sum at most; a pair within this margin of the best gets the exact evaluation
SCREEN_MARGIN = 1e-9


@dataclass(frozen=True)
class SwapEvent(SwapStep):
    """Passed to the callback after each accepted swap (``step``, ``removed``, ``added``,
    ``gain``: the exact decrease of count_error, then these). ``counts`` and ``rows`` are live
    views (copy them to keep them); ``rows`` is the current subset in working order."""

    count_error: float  # incrementally maintained
    objective: float  # incrementally maintained count_error / N_target
    counts: np.ndarray
    rows: np.ndarray


@dataclass(frozen=True)
class RefineResult:
    rows: np.ndarray  # sorted pool row indices of the refined subset
    counts: np.ndarray
    objective: float  # metric objective recomputed from the final counts
    count_error: float  # incrementally maintained at the end
    trace: np.ndarray  # count_error / N_target at the start and after each accepted swap
    swaps: np.ndarray  # (n_swaps, 2): (removed, added) pool rows, in order
    n_swaps: int
    n_rounds: int
    n_evaluations: int  # exact swap-gain evaluations
    n_recomputations: int  # lazy recomputations of single-row gains
    stop_reason: str  # "no_improving_swap" | "max_swaps" | "max_rounds"
    n_ahead: int = 0  # gains computed ahead in parallel calls (speculate; a superset of the recomputations they served)


def refine_swaps(
    codes: np.ndarray,
    rows,
    feature_set: FeatureSet,
    target: np.ndarray,
    *,
    row_weights=None,
    max_swaps: int = 50_000,
    max_rounds: int = 50,
    swaps_per_round: int | None = None,
    pairs_per_removal: int = 8,
    max_fail: int = 512,
    max_reevals: int = 16,
    n_add: int | None = None,
    candidate_sample: int | None = None,
    prefilter: int | None = None,
    seed: int = 0,
    eps: float = 1e-12,
    callback: Callable[[SwapEvent], None] | None = None,
    verify: bool = False,
    speculate: bool = False,
) -> RefineResult:
    """Improve the subset ``rows`` (unique pool row indices or a mask) of the pool ``codes``
    by swaps that strictly decrease the objective.

    ``target``: target counts for the subset's size (:func:`synth_core.select._objective.target_counts`).
    ``swaps_per_round``: swaps before all gains are refreshed (default ``max(256, N // 20)``).
    ``pairs_per_removal``: addition candidates evaluated exactly per removal candidate.
    ``max_fail``: consecutive removal candidates without an improving partner that end a round.
    ``max_reevals``: cap of lazy recomputations per candidate pick.
    ``n_add``: keep only the best ``n_add`` addition candidates per round (``None``: all).
    ``candidate_sample``: score only this many pool rows per round, a rotating window over a
    permutation seeded by ``seed`` (``None``: the whole pool every round).
    ``prefilter``: directed candidate search for large pools: each round ranks the candidate
    rows by their addition gain on the lowest-arity features only (one cheap pass; rows that
    hit under-filled cells of single columns come first) and scores only the best
    ``prefilter`` of them exactly (``None``: score every candidate).
    ``row_weights``: optional weight per pool row.
    ``speculate``: compute the gains the search's lazy picks will need ahead, in parallel calls
    on numba's threads (see docs/design/swap-refinement.md: it pays only on otherwise idle cores). It changes
    the time taken, never the result.
    """
    fs = feature_set
    codes = check_codes(codes, fs.n_bins)
    n_pool = codes.shape[0]
    _check_vec(target, fs, "target")
    subset_rows = _unique_sorted_rows(rows, n_pool).copy()
    n_sub = subset_rows.shape[0]
    pool_w = check_row_weights(row_weights, n_pool, "row_weights")
    if swaps_per_round is None:
        swaps_per_round = max(256, n_sub // 20)
    check_options(
        eps,
        {"max_swaps": max_swaps, "max_rounds": max_rounds},
        {"swaps_per_round": swaps_per_round, "pairs_per_removal": pairs_per_removal, "max_fail": max_fail,
         "max_reevals": max_reevals, "candidate_sample": candidate_sample, "n_add": n_add, "prefilter": prefilter},
    )
    run = _FlatSearch.start(codes, subset_rows, pool_w, fs, np.ascontiguousarray(target, dtype=np.float64),
                            (pairs_per_removal, max_fail, max_reevals, eps), speculate)
    book = SwapLog.start(count_error(run.counts, run.target, fs), float(run.target[fs.feature_slice(0)].sum()) or 1.0,
                        max_swaps, swaps_per_round)
    windows = _Windows.of(candidate_sample, n_pool, seed)
    step_mode = callback is not None or verify
    n_rounds = 0
    stop_reason = "max_swaps" if max_swaps == 0 else "max_rounds"
    # the swaps a round may accept are capped too: the ETA must respect both caps
    progress = Progress(log, "refine", total=min(max_swaps, max_rounds * swaps_per_round), unit="swaps",
                        limits={"rounds_done": max_rounds})

    def after(accepted: int) -> None:
        progress.update(book.n_swaps, rounds_done=n_rounds - 1, objective=book.objective)
        if step_mode and accepted:
            run.check_step(book, verify, callback)

    while n_rounds < max_rounds and book.n_swaps < max_swaps and n_sub > 0:
        n_rounds += 1
        heaps = run.heaps(windows.next(), n_add, prefilter)
        accepted = run_round(book, partial(run.search, heaps, book), after, swaps_per_round=swaps_per_round,
                             max_swaps=max_swaps, step_mode=step_mode, chunk=SEARCH_CHUNK)
        rem_tally, add_tally = heaps.rem_cache.tally, heaps.add_cache.tally
        run.ahead += int(rem_tally[TALLY_GAINS] + add_tally[TALLY_GAINS])
        log.debug("refine round %d: %d swaps accepted, objective %.6g, %d recomputations and %d exact swap evaluations"
                  " so far; this round's parallel recomputation calls (removal, addition): %s gains in %s calls",
                  n_rounds, accepted, book.objective, run.n_recomputations, run.n_evaluations - run.n_screened,
                  (int(rem_tally[TALLY_GAINS]), int(add_tally[TALLY_GAINS])),
                  (int(rem_tally[TALLY_CALLS]), int(add_tally[TALLY_CALLS])))
        if book.n_swaps >= max_swaps:
            stop_reason = "max_swaps"
            break
        if windows.exhausted(accepted):
            stop_reason = "no_improving_swap"
            break

    progress.finish(book.n_swaps, rounds=n_rounds, objective=book.objective, stop=stop_reason, **run.timings)
    return run.result(book, n_rounds, stop_reason)


@dataclass
class _Windows:
    """Which pool rows a round scores as addition candidates: a rotating window of
    ``size`` rows over a seeded permutation of the pool, or (``perm`` None) every row."""

    size: int | None
    perm: np.ndarray | None
    n_pool: int
    window: int = 0
    empty: int = 0  # consecutive windows without an accepted swap

    @classmethod
    def of(cls, candidate_sample: int | None, n_pool: int, seed: int) -> _Windows:
        perm = None
        if candidate_sample is not None and candidate_sample < n_pool:
            perm = np.random.default_rng(seed).permutation(n_pool).astype(np.int64)
        return cls(candidate_sample, perm, n_pool)

    def next(self) -> np.ndarray | None:
        """The next window's pool rows (None: the whole pool)."""
        if self.perm is None:
            return None
        start = (self.window * self.size) % self.n_pool
        self.window += 1
        return np.take(self.perm, np.arange(start, start + self.size), mode="wrap")

    def exhausted(self, accepted: int) -> bool:
        """Whether refinement is done after a round that accepted ``accepted`` swaps: a round
        over the whole pool, or a full cycle of windows, that accepted nothing."""
        if accepted:
            self.empty = 0
            return False
        if self.perm is None:
            return True
        self.empty += 1
        return self.empty * self.size >= self.n_pool


@dataclass
class _Heaps:
    """One round's two heaps (see :func:`synth_core.select._kernels.swap_search`) and the residuals
    ``counts - target`` the kernel keeps in step with the counts."""

    resid: np.ndarray
    rem_keys: np.ndarray
    rem_ids: np.ndarray
    rem_versions: np.ndarray
    add_rows: np.ndarray
    add_keys: np.ndarray
    add_ids: np.ndarray
    add_versions: np.ndarray
    rem_cache: kernels.Speculation  # speculation caches of the heaps (kernels.speculation)
    add_cache: kernels.Speculation


@dataclass
class _FlatSearch:
    """The live state of one refinement: the subset (in working order; the kernel swaps rows
    in place), its membership mask and cell counts, and the search kernel's carried state."""

    codes: np.ndarray
    fs: FeatureSet
    target: np.ndarray
    pool_w: np.ndarray
    rows: np.ndarray
    in_subset: np.ndarray
    counts: np.ndarray
    options: tuple  # (pairs_per_removal, max_fail, max_reevals, eps) of the kernel
    speculate: bool  # see refine_swaps
    ahead: int = 0  # gains computed ahead (RefineResult.n_ahead)
    # the search kernel's carried state (see kernels.swap_search; slots _heap.STATE_* and kernels.STATE_*)
    state: np.ndarray = field(default_factory=lambda: np.zeros(kernels.STATE_SLOTS, dtype=np.int64))
    timings: dict = field(default_factory=lambda: {"gains_s": 0.0, "search_s": 0.0})

    @property
    def screen_margin(self) -> float:
        """The search's screening margin (see :func:`synth_core.select._kernels.swap_search`): a
        bound, far above the rounding of three sums of at most ``2 sum_f w_f`` in magnitude, of
        how far a screened swap gain may be from the exact one; negative (off) for weighted rows."""
        return -1.0 if self.pool_w.size else SCREEN_MARGIN * max(1.0, 2.0 * float(np.abs(self.fs.weights).sum()))

    @cached_property
    def fmask(self) -> np.ndarray:
        """Column bit masks of the features, for the screen (kernels.feature_masks)."""
        return kernels.feature_masks(self.fs.cols, self.fs.arity, self.codes.shape[1])

    @property
    def n_screened(self) -> int:
        """Swap evaluations the screen settled without the exact evaluation."""
        return int(self.state[kernels.STATE_SCREENED])

    @classmethod
    def start(cls, codes, rows, pool_w, fs, target, options, speculate) -> _FlatSearch:
        in_subset = np.zeros(codes.shape[0], dtype=np.uint8)
        in_subset[rows] = 1
        counts = np.zeros(fs.total_cells, dtype=np.float64)
        accumulate(np.ascontiguousarray(codes[rows]), fs, _take(pool_w, rows), counts)
        return cls(codes, fs, target, pool_w, rows, in_subset, counts, options, speculate)

    @property
    def n_recomputations(self) -> int:
        """Lazy recomputations of single-row gains so far (both heaps)."""
        return int(self.state[kernels.STATE_REM_RECOMPUTATIONS] + self.state[kernels.STATE_ADD_RECOMPUTATIONS])

    @property
    def n_evaluations(self) -> int:
        """Exact swap-gain evaluations so far."""
        return int(self.state[kernels.STATE_EVALUATIONS])

    def heaps(self, cand, n_add, prefilter) -> _Heaps:
        """Fresh gains for a round: every subset row's removal gain, and the addition gains of
        the candidates (``cand``, None: every pool row) outside the subset, each in a max-heap;
        the kernel's state is reset for the new heaps."""
        started = time.perf_counter()
        codes, fs, pool_w, n_sub = self.codes, self.fs, self.pool_w, self.rows.shape[0]
        resid = self.counts - self.target  # refreshed each round, then kept in step with counts
        rem_keys = np.empty(n_sub, dtype=np.float64)
        gains_from_resid(np.ascontiguousarray(codes[self.rows]), fs, resid, _take(pool_w, self.rows), -1, rem_keys)
        rem_ids = np.arange(n_sub, dtype=np.int64)
        kernels.heapify(rem_keys, rem_ids, n_sub)
        n_cand = codes.shape[0] if cand is None else cand.shape[0]
        if prefilter is not None and n_cand > prefilter:
            # directed search: rank the candidates by the addition gain of their low-arity cells
            # (one cheap pass: it rewards rows that hit under-filled columns), score only the best
            low_features = np.flatnonzero(fs.arity == fs.arity.min())
            cand = _prefilter(codes, cand, self.in_subset, fs, resid, pool_w, low_features, prefilter)
        add_rows, add_keys = self._addition_keys(cand, resid, n_add)
        add_ids = np.arange(add_rows.shape[0], dtype=np.int64)
        kernels.heapify(add_keys, add_ids, add_rows.shape[0])
        # keys from this pass are fresh at version 0
        batch = SPECULATION_BATCH if self.speculate else 1
        heaps = _Heaps(resid, rem_keys, rem_ids, np.zeros(n_sub, dtype=np.int64), add_rows, add_keys, add_ids,
                       np.zeros(add_rows.shape[0], dtype=np.int64), kernels.speculation(n_sub, batch),
                       kernels.speculation(add_rows.shape[0], batch))
        start_search(self.state, n_sub, add_rows.shape[0])
        self.timings["gains_s"] += time.perf_counter() - started
        return heaps

    def _addition_keys(self, cand, resid, n_add) -> tuple[np.ndarray, np.ndarray]:
        """(pool rows, addition gains) of the candidates outside the subset: the best ``n_add``
        by gain (None: all of them)."""
        if cand is None:
            add_gain = np.empty(self.codes.shape[0], dtype=np.float64)
            gains_from_resid(self.codes, self.fs, resid, self.pool_w, +1, add_gain)
            add_gain[self.in_subset.view(bool)] = -np.inf
        else:
            add_gain = np.empty(cand.shape[0], dtype=np.float64)
            gains_from_resid(np.ascontiguousarray(self.codes[cand]), self.fs, resid, _take(self.pool_w, cand), +1,
                             add_gain)
            add_gain[self.in_subset[cand].view(bool)] = -np.inf
        keep = kernels.topk_desc(add_gain, n_add) if n_add is not None else np.flatnonzero(add_gain > -np.inf)
        return (keep if cand is None else cand[keep]), np.ascontiguousarray(add_gain[keep])

    def search(self, heaps: _Heaps, book: SwapLog, limit: int) -> int:
        """One call of the search kernel on the round's heaps: at most ``limit`` swaps, written
        to ``book``'s buffers; returns how many."""
        started = time.perf_counter()
        fs = self.fs
        pairs_per_removal, max_fail, max_reevals, eps = self.options
        accepted = kernels.swap_search(
            self.codes, self.in_subset, self.rows, self.pool_w, heaps.add_rows, heaps.rem_keys, heaps.rem_ids,
            heaps.rem_versions, heaps.add_keys, heaps.add_ids, heaps.add_versions, self.state, limit,
            pairs_per_removal, max_fail, max_reevals, eps,
            self.counts, heaps.resid, fs.weights, fs.cols, fs.strides, fs.offsets, book.buf_swaps, book.buf_gain,
            heaps.rem_cache, heaps.add_cache, self.screen_margin, self.fmask,
        )
        self.timings["search_s"] += time.perf_counter() - started
        return accepted

    def result(self, book: SwapLog, n_rounds: int, stop_reason: str) -> RefineResult:
        """The refinement's result; the objective is recomputed from the final counts."""
        return RefineResult(
            rows=np.sort(self.rows),
            counts=self.counts,
            objective=objective(self.counts, self.target, self.fs),
            count_error=book.err,
            trace=np.asarray(book.trace),
            swaps=book.swaps(),
            n_swaps=book.n_swaps,
            n_rounds=n_rounds,
            n_evaluations=self.n_evaluations,
            n_recomputations=self.n_recomputations,
            stop_reason=stop_reason,
            n_ahead=self.ahead,
        )

    def check_step(self, book: SwapLog, verify: bool, callback: Callable[[SwapEvent], None] | None) -> None:
        """After a one-swap kernel call: recount and compare (``verify``), then tell ``callback``."""
        a, b, gain = book.first()
        if verify:
            _verify(self.codes, self.rows, self.pool_w, self.fs, self.counts, self.target, book.err, a, b)
        if callback is not None:
            callback(SwapEvent(book.n_swaps, a, b, gain, book.err, book.objective, self.counts, self.rows))


def _prefilter(codes, cand, in_subset, fs, resid, pool_w, low, k) -> np.ndarray:
    """The ``k`` candidate rows (outside the subset) with the best addition gain on the
    features ``low`` alone, sorted by row index (``cand=None``: every pool row)."""
    block = codes if cand is None else np.ascontiguousarray(codes[cand])
    w = pool_w if cand is None else _take(pool_w, cand)
    score = np.empty(block.shape[0], dtype=np.float64)
    partial_gains(block, fs, resid, w, +1, low, score)
    score[(in_subset if cand is None else in_subset[cand]).view(bool)] = -np.inf
    top = np.sort(kernels.topk_desc(score, k))
    return top if cand is None else cand[top]


def _take(w: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Row weights of ``rows`` (empty stays empty: unit weights)."""
    return np.ascontiguousarray(w[rows]) if w.size else w


def _verify(codes, subset_rows, pool_w, fs, counts, target, err, a, b) -> None:
    fresh = np.zeros(fs.total_cells, dtype=np.float64)
    accumulate(np.ascontiguousarray(codes[subset_rows]), fs, _take(pool_w, subset_rows), fresh)
    tol = 1e-9 * max(1.0, float(np.abs(fresh).max(initial=0.0)))
    if not np.allclose(fresh, counts, rtol=0.0, atol=tol):
        raise RuntimeError(f"refine: counts drifted from a recomputation after swapping {a} -> {b}")
    fresh_err = count_error(fresh, target, fs)
    if not abs(fresh_err - err) <= 1e-9 * max(1.0, abs(fresh_err)):
        raise RuntimeError(
            f"refine: incremental count error {err!r} != recomputed {fresh_err!r} after swapping {a} -> {b}"
        )
