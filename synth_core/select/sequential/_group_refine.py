"""Group swap refinement: improve a subset of pool groups by swaps that strictly lower the objective.

The subset keeps its size. One move takes a group ``a`` out and a pool group ``b`` in; its exact
gain is ``Σ_c w_c (|x_c| − |x_c + Δ_c|)`` over the cells either group touches, ``x = counts −
target`` and ``Δ_c`` the *net* change of cell ``c`` (``b``'s weight there minus ``a``'s: rows of
one group and the two swapped groups may share cells). The objective is the full one of
:mod:`synth_core.select.sequential._sequences` (uni/bi/tri with the ``1/(L−1)`` row weights plus the three coherence
parts), or any restriction of it (:meth:`SequentialProblem.restrict`), so the same code serves
the coherence pre-selection.

A round: the removal gain of every subset group and the addition gain of every other pool group
go into two max-heaps. A *full* round (the first, then every ``refresh_every + 1``-th) recomputes
them in one parallel pass (:func:`group_kernels.group_gains`; on large pools only the best
``top_candidates`` stored addition keys, and all of them every ``all_every``-th full round); the
rounds between reuse the keys left by the previous round as stale keys, computing only those of
groups that just changed sides. Stale keys are refreshed lazily when they reach the top of a
heap, so the heaps' tops are exact where it matters. Then :func:`group_kernels.swap_search`
repeatedly pops the removal candidate with the best refreshed gain, the ``pairs_per_removal``
best refreshed addition candidates, evaluates each
exact swap gain and applies the best when it exceeds ``eps > 0``; the counts are updated in
place (only the two groups' cells). A round ends after ``swaps_per_round`` swaps, an empty heap
or ``max_fail`` consecutive removal candidates without an improving partner. Refinement stops
when a full round accepts nothing, when a whole refresh cycle gained less than ``tol`` (relative),
after ``max_rounds`` rounds or ``max_swaps`` swaps: budgets are counts, never wall time, so a
run is deterministic.

Both cores: the gain passes run on all numba threads. In the search, the recomputations of stale
keys between two accepted swaps all read the same ``x``; with ``speculate`` a pick that needs one
computes the ``SPECULATION_BATCH`` best stale entries in one parallel call (each thread on its own
copy of ``x``, kept equal to it by the kernel) and caches them for the counts version, and a
removal candidate's ``pairs_per_removal`` swap gains are evaluated in one parallel call. Each gain
is the same sequential sum whichever thread makes it, so the swaps and every counter are those of
the one-at-a-time search, for any thread count. It is off by default: the calls are short and
many, each must wake the sleeping worker threads, and on 2 cores shared with other work that cost
more than it saved (12 rounds of the prize refinement at load ~3.5: 369 s with it, 15 s without).

Verification: ``callback(event)`` runs after every accepted swap with the incrementally
maintained objective; ``verify=True`` recounts the subset from scratch after every swap and
raises ``RuntimeError`` unless the counts are identical (exact integer counts; within 1e-9 when
the row weights are fractional) and the objective matches within 1e-9 (relative). Either forces
one swap per kernel call (slow; for tests).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import numba
import numpy as np

from synth_core.errors import InputError
from synth_core.select import _kernels as kernels
from synth_core.select._heap import (
    STATE_ADD_SIZE,
    STATE_REM_SIZE,
    TALLY_CALLS,
    TALLY_GAINS,
    start_search,
)
from synth_core.select._progress import Progress
from synth_core.select._swap_rounds import SwapLog, SwapStep, check_options, run_round
from synth_core.select.sequential import _group_kernels as gk
from synth_core.select.sequential._sequences import SequentialProblem

log = logging.getLogger(__name__)
LOG_EVERY_S = 5.0  # progress lines at most this often
STALE = -(1 << 40)  # key version of a key left from an earlier round
# gains the search recomputes ahead per parallel call (speculate; one group's gain is ~10-20 us on the
# prize data, starting a parallel call 5-30 us); results do not depend on it
SPECULATION_BATCH = 16


@dataclass(frozen=True)
class GroupSwapEvent(SwapStep):
    """Passed to the callback after each accepted swap (``step``, ``removed``, ``added``,
    ``gain``, then these; ``counts``/``groups`` are live views)."""

    objective: float  # incrementally maintained
    counts: np.ndarray
    groups: np.ndarray


@dataclass(frozen=True)
class GroupRefineResult:
    groups: np.ndarray  # sorted pool group indices of the refined subset
    counts: np.ndarray
    objective: float  # recomputed from the final counts
    objective_incremental: float
    trace: np.ndarray  # objective at the start and after each accepted swap
    swaps: np.ndarray  # (n_swaps, 2) removed, added
    n_swaps: int
    n_rounds: int
    n_evaluations: int
    n_recomputations: int
    stop_reason: str  # "no_improving_swap" | "converged" | "max_swaps" | "max_rounds"
    elapsed_s: float
    pass_s: float = 0.0  # time in the parallel gain passes
    search_s: float = 0.0  # time in the swap search
    rounds: tuple = ()  # per round: (full refresh 0/1, swaps, evaluations, recomputations, seconds, objective after)
    n_full_rounds: int = 0
    n_ahead: int = 0  # gains computed ahead in parallel calls (speculate; a superset of the recomputations they served)


def _check_groups(groups, n_pool: int) -> np.ndarray:
    arr = np.asarray(groups)
    if arr.dtype == np.bool_:
        if arr.shape != (n_pool,):
            raise InputError(f"group mask has shape {arr.shape}, expected ({n_pool},)")
        arr = np.flatnonzero(arr)
    arr = arr.astype(np.int64).ravel()
    if arr.size and (arr.min() < 0 or arr.max() >= n_pool):
        raise InputError(f"group index outside [0, {n_pool})")
    if np.unique(arr).size != arr.size:
        raise InputError("group indices repeat")
    return np.sort(arr)


def refine_groups(
    problem: SequentialProblem,
    groups,
    *,
    max_swaps: int = 1_000_000,
    max_rounds: int = 200,
    swaps_per_round: int | None = None,
    pairs_per_removal: int = 4,
    max_fail: int = 512,
    max_reevals: int = 16,
    max_stale: int = 1,
    tol: float = 1e-3,
    top_candidates: int | None = None,
    all_every: int = 4,
    refresh_every: int = 4,
    eps: float = 1e-12,
    callback: Callable[[GroupSwapEvent], None] | None = None,
    verify: bool = False,
    label: str = "refine",
    log_every_s: float = LOG_EVERY_S,
    speculate: bool = False,
) -> GroupRefineResult:
    """Refine the subset ``groups`` (pool group indices or a mask) of ``problem.pool``.

    The subset's size should equal ``problem.n_target`` (the targets are scaled to it).
    ``swaps_per_round`` defaults to ``max(256, n // 20)``. ``tol``: stop ("converged") once a
    refresh cycle (from one full round to the next) lowered the objective by less than ``tol``
    times its value (0 disables the rule). Large pools: a full round recomputes the addition
    keys of the ``top_candidates`` (default ``4 · n``) candidates with the best stored keys only
    (the others keep stale keys, refreshed lazily should they reach the top of the heap); every
    ``all_every``-th full round recomputes all of them. Progress (round, swaps, swap rate,
    objective, remaining budget) goes to :mod:`logging` at INFO, at most every ``log_every_s``
    seconds, prefixed by ``label``. ``speculate``: compute the gains the search's lazy picks will
    need ahead, and a removal candidate's swaps together, in parallel calls on numba's threads (see
    the module notes: it pays only on otherwise idle cores). It changes the time taken, never the
    result.
    """
    started = time.perf_counter()
    n_pool = problem.n_pool
    sub = _check_groups(groups, n_pool).copy()
    n_sub = sub.shape[0]
    if n_sub != problem.n_target:
        problem = problem.resized(n_sub)
    if swaps_per_round is None:
        swaps_per_round = max(256, n_sub // 20)
    if top_candidates is None:
        top_candidates = 4 * n_sub
    if not tol >= 0:
        raise InputError(f"tol must be >= 0, got {tol}")
    check_options(
        eps,
        {"max_swaps": max_swaps, "max_rounds": max_rounds},
        {"swaps_per_round": swaps_per_round, "pairs_per_removal": pairs_per_removal, "top_candidates": top_candidates,
         "all_every": all_every, "max_fail": max_fail, "max_reevals": max_reevals, "refresh_every": refresh_every,
         "max_stale": max_stale},
    )
    run = _GroupSearch.start(problem, sub, (pairs_per_removal, max_fail, max_reevals, max_stale, eps), speculate)
    book = SwapLog.start(problem.objective(run.counts), 1.0, max_swaps, swaps_per_round)
    schedule = _Schedule(refresh_every, all_every, top_candidates, tol)
    step_mode = callback is not None or verify
    stop_reason = "max_swaps" if max_swaps == 0 else "max_rounds"
    n_rounds = 0
    progress = Progress(log, label, total=max_swaps, unit="swaps", limits={"rounds": max_rounds}, every_s=log_every_s)

    def after(accepted: int) -> None:
        if step_mode and accepted:
            run.check_step(book, verify, callback)
        if accepted:
            progress.update(book.n_swaps, rounds=n_rounds, objective=book.err)

    while n_rounds < max_rounds and book.n_swaps < max_swaps and 0 < n_sub < n_pool:
        t_pass = time.perf_counter()
        kind = schedule.begin(book.err, n_pool - n_sub)
        if kind is None:
            stop_reason = "converged"
            break
        n_rounds += 1
        full, all_round = kind
        accepted = run.round(full, None if all_round else top_candidates, book, after, t_pass,
                             swaps_per_round=swaps_per_round, max_swaps=max_swaps, step_mode=step_mode)
        if book.n_swaps >= max_swaps:
            stop_reason = "max_swaps"
            break
        if accepted == 0:
            if all_round:
                stop_reason = "no_improving_swap"
                break
            schedule.nothing_found(full)
    if n_sub in (0, n_pool) and max_swaps > 0:
        stop_reason = "no_improving_swap"
    progress.update(book.n_swaps, force=True, rounds=n_rounds, objective=book.err)
    log.info("%s: stopped (%s)", label, stop_reason)
    return run.result(book, n_rounds, stop_reason, schedule.n_full, started)


@dataclass
class _Schedule:
    """Which rounds are full (every key recomputed) and when refinement has converged.

    The first round is full, then every ``refresh_every + 1``-th; a full round recomputes the
    addition keys of the ``top_candidates`` best stored keys only, except every ``all_every``-th
    full round and the full round after an empty one (``force_all``), which recompute all.
    """

    refresh_every: int
    all_every: int
    top_candidates: int
    tol: float
    since_full: int = 0  # rounds since the last full one (set to refresh_every: the first is full)
    last_full_err: float | None = None  # objective at the start of the last full round
    force_all: bool = False  # the next full round recomputes every addition key
    n_full: int = 0

    def __post_init__(self) -> None:
        self.since_full = self.refresh_every

    def begin(self, err: float, n_cand: int) -> tuple[bool, bool] | None:
        """Start a round at objective ``err`` with ``n_cand`` addition candidates: (full round,
        every key recomputed), or None when the last refresh cycle gained less than ``tol``."""
        full = self.since_full >= self.refresh_every
        if full:
            if not self.force_all and self.last_full_err is not None and self.last_full_err - err < self.tol * err:
                return None
            self.last_full_err = err
            self.n_full += 1
            self.since_full = 0
        else:
            self.since_full += 1
        all_round = full and (self.force_all or (self.n_full - 1) % self.all_every == 0
                              or self.top_candidates >= n_cand)
        self.force_all = False
        return full, all_round

    def nothing_found(self, full: bool) -> None:
        """A round that did not recompute every key accepted nothing: refresh everything next
        round (after a full round, every addition key too)."""
        self.since_full = self.refresh_every
        self.force_all = full


@dataclass
class _KeyStore:
    """Heap keys of every pool group kept between rounds (stale until recomputed); ``ok``
    marks the groups that have one."""

    key: np.ndarray
    ok: np.ndarray

    @classmethod
    def empty(cls, n_pool: int) -> _KeyStore:
        return cls(np.zeros(n_pool, dtype=np.float64), np.zeros(n_pool, dtype=bool))


class _XCopies(NamedTuple):
    """Copies of ``x`` for the search's parallel calls and their scratch: the last four fields of
    :class:`synth_core.select.sequential._group_kernels.GroupSpeculation`."""

    x_copies: np.ndarray  # (copies, cells) float64
    copy_cells: np.ndarray  # (copies, max_rows) int64
    copy_vals: np.ndarray  # (copies, max_rows) float64
    copy_old: np.ndarray  # (copies, max_rows) float64


@dataclass
class _GroupHeaps:
    """One round's heaps (see :func:`synth_core.select.sequential._group_kernels.swap_search`): removal keys by
    position in the subset, addition keys by index into ``cand``."""

    cand: np.ndarray
    rem_keys: np.ndarray
    rem_ids: np.ndarray
    rem_versions: np.ndarray
    rem_last: np.ndarray  # refreshed key of a removal candidate dropped without a partner, else NaN
    add_keys: np.ndarray
    add_ids: np.ndarray
    add_versions: np.ndarray
    rem_cache: gk.GroupSpeculation  # speculation caches of the heaps (see _GroupSearch.speculation)
    add_cache: gk.GroupSpeculation


@dataclass
class _GroupSearch:
    """The live state of one refinement: the subset (working order; the kernel swaps in place),
    its exact counts and ``x = counts − target`` (which the gains read), the kernel's scratch and
    carried state, and the keys kept between rounds."""

    problem: SequentialProblem
    sub: np.ndarray
    in_sub: np.ndarray
    counts: np.ndarray
    target: np.ndarray
    x: np.ndarray
    scratch: tuple  # (cells, vals, old) of problem.max_rows each
    options: tuple  # (pairs_per_removal, max_fail, max_reevals, max_stale, eps) of the kernel
    n_chunks: int
    addition: _KeyStore
    removal: _KeyStore
    # the search kernel's carried state (see group_kernels.swap_search; slots _heap.STATE_* and group_kernels.STATE_*)
    state: np.ndarray = field(default_factory=lambda: np.zeros(gk.STATE_SLOTS, dtype=np.int64))
    pass_s: float = 0.0  # time in the parallel gain passes
    search_s: float = 0.0  # time in the swap search
    rounds: list = field(default_factory=list)  # per round, as GroupRefineResult.rounds
    speculate: bool = False  # see refine_groups
    ahead: int = 0  # gains computed ahead (GroupRefineResult.n_ahead)

    @classmethod
    def start(cls, problem: SequentialProblem, sub: np.ndarray, options: tuple, speculate: bool) -> _GroupSearch:
        counts = problem.counts(sub)  # exact, changed only by accepted swaps
        target = np.ascontiguousarray(problem.target, dtype=np.float64)
        in_sub = np.zeros(problem.n_pool, dtype=np.uint8)
        in_sub[sub] = 1
        m = problem.max_rows
        scratch = (np.empty(m, dtype=np.int64), np.empty(m, dtype=np.float64), np.empty(m, dtype=np.float64))
        return cls(problem, sub, in_sub, counts, target, counts - target, scratch, options,
                   max(1, numba.get_num_threads()), _KeyStore.empty(problem.n_pool), _KeyStore.empty(problem.n_pool),
                   speculate=speculate)

    @property
    def n_evaluations(self) -> int:
        """Exact swap-gain evaluations so far."""
        return int(self.state[gk.STATE_EVALUATIONS])

    @property
    def n_recomputations(self) -> int:
        """Lazy recomputations of single-group gains so far (both heaps)."""
        return int(self.state[gk.STATE_RECOMPUTATIONS])

    def round(self, full: bool, top: int | None, book: SwapLog, after: Callable[[int], None], started: float,
              **limits) -> int:
        """One round begun at ``started``: the heaps (:meth:`heaps`), the swap search
        (:func:`synth_core.select._swap_rounds.run_round` with ``after`` and ``limits``), the round's
        figures, the keys kept for the next round. Returns the swaps accepted."""
        heaps = self.heaps(full, top)
        t_search = time.perf_counter()
        evaluations_before, recomputations_before = self.n_evaluations, self.n_recomputations
        self.pass_s += t_search - started
        accepted = run_round(book, partial(self.search, heaps, book), after, **limits)
        self.search_s += time.perf_counter() - t_search
        self.rounds.append((int(full), accepted, self.n_evaluations - evaluations_before,
                            self.n_recomputations - recomputations_before, round(time.perf_counter() - started, 4),
                            book.err))
        rem_tally, add_tally = heaps.rem_cache.tally, heaps.add_cache.tally
        self.ahead += int(rem_tally[TALLY_GAINS] + add_tally[TALLY_GAINS])
        log.debug("%s round %d: %d swaps; parallel recomputations (removal, addition): %s gains in %s calls",
                  "full" if full else "stale", len(self.rounds), accepted,
                  (int(rem_tally[TALLY_GAINS]), int(add_tally[TALLY_GAINS])),
                  (int(rem_tally[TALLY_CALLS]), int(add_tally[TALLY_CALLS])))
        self.keep_keys(heaps)
        return accepted

    def heaps(self, full: bool, top: int | None) -> _GroupHeaps:
        """The round's heaps over the subset and the other pool groups (:meth:`_keys`); the
        kernel's state is reset for them."""
        n_sub = self.sub.shape[0]
        cand = np.flatnonzero(self.in_sub == 0).astype(np.int64)
        rem_keys, rem_versions = self._keys(self.sub, -1.0, self.removal, full)
        add_keys, add_versions = self._keys(cand, 1.0, self.addition, full, top)
        rem_ids = np.arange(n_sub, dtype=np.int64)
        gk.heapify(rem_keys, rem_ids, n_sub)
        add_ids = np.arange(cand.shape[0], dtype=np.int64)
        gk.heapify(add_keys, add_ids, cand.shape[0])
        start_search(self.state, n_sub, cand.shape[0])
        copies = self.copies(cand)
        return _GroupHeaps(cand, rem_keys, rem_ids, rem_versions, np.full(n_sub, np.nan), add_keys, add_ids,
                           add_versions, self.speculation(n_sub, copies), self.speculation(cand.shape[0], copies))

    def copies(self, cand: np.ndarray) -> _XCopies:
        """Copies of ``x`` for the search's parallel calls, one per numba thread, with their
        scratch; none without ``speculate`` (or with one candidate ``cand``). The kernel keeps
        them equal to ``x``."""
        n = max(1, numba.get_num_threads()) if self.speculate and cand.shape[0] > 1 else 0
        m = self.problem.max_rows
        return _XCopies(np.tile(self.x, (n, 1)), np.empty((n, m), dtype=np.int64), np.empty((n, m), dtype=np.float64),
                        np.empty((n, m), dtype=np.float64))

    @staticmethod
    def speculation(n_entries: int, copies: _XCopies) -> gk.GroupSpeculation:
        """A heap's speculation cache: :func:`synth_core.select._kernels.speculation`'s (batch 1
        without copies of ``x``) with the copies and their scratch (:meth:`copies`)."""
        batch = SPECULATION_BATCH if copies.x_copies.shape[0] > 0 else 1
        return gk.GroupSpeculation(*kernels.speculation(n_entries, batch), *copies)

    def _keys(self, members, sign, store: _KeyStore, full: bool, top: int | None = None):
        """Heap keys of ``members`` and their versions: every key recomputed in a full round
        (only the ``top`` best stored keys, when given), else only those without a stored key
        (the stored ones are stale: version STALE)."""
        versions = np.zeros(members.shape[0], dtype=np.int64)  # version 0 = fresh in this round
        if full and (top is None or top >= members.shape[0] or not store.ok[members].any()):
            keys = np.empty(members.shape[0], dtype=np.float64)
            self._gains(members, sign, keys)
            return keys, versions
        keys = store.key[members]
        fresh = ~store.ok[members]
        if full:  # the top stored keys (ties by position: deterministic) are recomputed too
            order = np.argsort(-np.where(fresh, np.inf, keys), kind="stable")
            fresh[order[:top]] = True
        idx = np.flatnonzero(fresh)
        if idx.size:
            part = np.empty(idx.size, dtype=np.float64)
            self._gains(members[idx], sign, part)
            keys[idx] = part
        versions[~fresh] = STALE  # recomputed when it reaches the top of the heap
        return keys, versions

    def _gains(self, members, sign, out) -> None:
        problem = self.problem
        gk.group_gains(members, sign, problem.pool_data, problem.kspec, self.x, problem.max_rows, self.n_chunks, out)

    def search(self, heaps: _GroupHeaps, book: SwapLog, limit: int) -> int:
        """One call of the search kernel on the round's heaps: at most ``limit`` swaps, written
        to ``book``'s buffers; returns how many."""
        problem = self.problem
        pairs_per_removal, max_fail, max_reevals, max_stale, eps = self.options
        return gk.swap_search(
            self.sub, self.in_sub, heaps.cand, heaps.rem_keys, heaps.rem_ids, heaps.rem_versions, heaps.rem_last,
            heaps.add_keys, heaps.add_ids, heaps.add_versions, self.state, limit,
            pairs_per_removal, max_fail, max_reevals, max_stale, eps,
            problem.pool_data, problem.kspec, self.counts, self.target, self.x, *self.scratch, book.buf_swaps,
            book.buf_gain, heaps.rem_cache, heaps.add_cache,
        )

    def keep_keys(self, heaps: _GroupHeaps) -> None:
        """Store the round's keys for the next stale round: the addition keys still in the heap
        (partly refreshed; groups that just left the subset have none yet), and the removal
        keys still in the heap or dropped without a partner (``rem_last``; groups that just
        entered the subset have none yet)."""
        add_left, rem_left = self.state[STATE_ADD_SIZE], self.state[STATE_REM_SIZE]
        self.addition.key[heaps.cand[heaps.add_ids[:add_left]]] = heaps.add_keys[:add_left]
        self.addition.ok[heaps.cand] = True
        self.addition.ok[self.in_sub.view(bool)] = False
        self.removal.ok[:] = False
        left = self.sub[heaps.rem_ids[:rem_left]]
        self.removal.key[left] = heaps.rem_keys[:rem_left]
        self.removal.ok[left] = True
        dropped = np.flatnonzero(~np.isnan(heaps.rem_last))
        self.removal.key[self.sub[dropped]] = heaps.rem_last[dropped]
        self.removal.ok[self.sub[dropped]] = True

    def result(self, book: SwapLog, n_rounds: int, stop_reason: str, n_full: int, started: float) -> GroupRefineResult:
        """The refinement's result; the objective is recomputed from the final counts."""
        return GroupRefineResult(
            groups=np.sort(self.sub),
            counts=self.counts.copy(),
            objective=self.problem.objective(self.counts),
            objective_incremental=book.err,
            trace=np.asarray(book.trace),
            swaps=book.swaps(),
            n_swaps=book.n_swaps,
            n_rounds=n_rounds,
            n_evaluations=self.n_evaluations,
            n_recomputations=self.n_recomputations,
            stop_reason=stop_reason,
            elapsed_s=time.perf_counter() - started,
            pass_s=self.pass_s,
            search_s=self.search_s,
            rounds=tuple(self.rounds),
            n_full_rounds=n_full,
            n_ahead=self.ahead,
        )

    def check_step(self, book: SwapLog, verify: bool, callback: Callable[[GroupSwapEvent], None] | None) -> None:
        """After a one-swap kernel call: recount and compare (``verify``), then tell ``callback``."""
        a, b, gain = book.first()
        if verify:
            _verify(self.problem, self.sub, self.counts, book.err, a, b)
        if callback is not None:
            callback(GroupSwapEvent(book.n_swaps, a, b, gain, book.err, self.counts, self.sub))


def _verify(problem: SequentialProblem, sub: np.ndarray, counts: np.ndarray, err: float, a: int, b: int) -> None:
    fresh = problem.counts(np.sort(sub))
    if problem.exact:
        same = np.array_equal(fresh, counts)
    else:
        same = np.allclose(fresh, counts, rtol=0.0, atol=1e-9 * max(1.0, float(np.abs(fresh).max(initial=0.0))))
    if not same:
        raise RuntimeError(f"refine_groups: counts drifted from a recount after swapping group {a} -> {b}")
    fresh_err = problem.objective(fresh)
    if not abs(fresh_err - err) <= 1e-9 * max(1.0, abs(fresh_err)):
        raise RuntimeError(
            f"refine_groups: incremental objective {err!r} != recomputed {fresh_err!r} after swapping {a} -> {b}"
        )


__all__ = ["GroupRefineResult", "GroupSwapEvent", "refine_groups"]
