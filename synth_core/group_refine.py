"""Group swap refinement: improve a subset of pool groups by swaps that strictly lower the objective.

The subset keeps its size. One move takes a group ``a`` out and a pool group ``b`` in; its exact
gain is ``Σ_c w_c (|x_c| − |x_c + Δ_c|)`` over the cells either group touches, ``x = counts −
target`` and ``Δ_c`` the *net* change of cell ``c`` (``b``'s weight there minus ``a``'s: rows of
one group and the two swapped groups may share cells). The objective is the full one of
:mod:`synth_core.sequences` (uni/bi/tri with the ``1/(L−1)`` row weights plus the three coherence
parts), or any restriction of it (:meth:`SequentialProblem.restrict`), so the same code serves
the coherence pre-selection.

A round: the removal gain of every subset group and the addition gain of every other pool group
go into two max-heaps. A *full* round (the first, then every ``refresh_every + 1``-th) recomputes
them in one parallel pass (:func:`group_kernels.group_gains`; on large pools only the best
``top_candidates`` stored addition keys, and all of them every ``all_every``-th full round); the
rounds between reuse the keys left by the previous round as stale keys, computing only those of
groups that just changed sides. Stale keys are refreshed lazily when they reach the top of a
heap, so the heaps' tops are exact where it matters. Then :func:`group_kernels.swap_search` repeatedly pops the removal candidate with the best
refreshed gain, the ``pairs_per_removal`` best refreshed addition candidates, evaluates each
exact swap gain and applies the best when it exceeds ``eps > 0``; the counts are updated in
place (only the two groups' cells). A round ends after ``swaps_per_round`` swaps, an empty heap
or ``max_fail`` consecutive removal candidates without an improving partner. Refinement stops
when a full round accepts nothing, when a whole refresh cycle gained less than ``tol`` (relative),
after ``max_rounds`` rounds or ``max_swaps`` swaps: budgets are counts, never wall time, so a
run is deterministic.

Verification: ``callback(event)`` runs after every accepted swap with the incrementally
maintained objective; ``verify=True`` recounts the subset from scratch after every swap and
raises ``RuntimeError`` unless the counts are identical (exact integer counts; within 1e-9 when
the row weights are fractional) and the objective matches within 1e-9 (relative). Either forces
one swap per kernel call (slow; for tests).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np

from synth_core import group_kernels as gk
from synth_core.errors import InputError
from synth_core.sequences import SequentialProblem

log = logging.getLogger(__name__)
LOG_EVERY_S = 5.0  # progress lines at most this often
STALE = -(1 << 40)  # key version of a key left from an earlier round


@dataclass(frozen=True)
class GroupSwapEvent:
    """Passed to the callback after each accepted swap (``counts``/``groups`` are live views)."""

    step: int
    removed: int
    added: int
    gain: float
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
    seconds, prefixed by ``label``.
    """
    started = time.perf_counter()
    n_pool = problem.n_pool
    sub = _check_groups(groups, n_pool).copy()
    n_sub = sub.shape[0]
    if n_sub != problem.n_target:
        problem = problem.resized(n_sub)
    if swaps_per_round is None:
        swaps_per_round = max(256, n_sub // 20)
    for name, v in (("max_swaps", max_swaps), ("max_rounds", max_rounds)):
        if v < 0:
            raise InputError(f"{name} must be >= 0, got {v}")
    if top_candidates is None:
        top_candidates = 4 * n_sub
    for name, v in (("swaps_per_round", swaps_per_round), ("pairs_per_removal", pairs_per_removal),
                    ("top_candidates", top_candidates), ("all_every", all_every),
                    ("max_fail", max_fail), ("max_reevals", max_reevals), ("refresh_every", refresh_every),
                    ("max_stale", max_stale)):
        if v < 1:
            raise InputError(f"{name} must be >= 1, got {v}")
    if not tol >= 0:
        raise InputError(f"tol must be >= 0, got {tol}")
    if not eps > 0:
        raise InputError(f"eps must be > 0 (swaps must strictly improve), got {eps}")

    data, spec = problem.pool_data, problem.kspec
    # exact counts (changed only by accepted swaps) and x = counts − target, which the gains read
    counts = problem.counts(sub)
    target = np.ascontiguousarray(problem.target, dtype=np.float64)
    x = counts - target
    in_sub = np.zeros(n_pool, dtype=np.uint8)
    in_sub[sub] = 1
    cells = np.empty(problem.max_rows, dtype=np.int64)
    vals = np.empty(problem.max_rows, dtype=np.float64)
    old = np.empty(problem.max_rows, dtype=np.float64)
    n_chunks = max(1, numba.get_num_threads())

    err = problem.objective(counts)
    trace = [err]
    swaps_out: list[np.ndarray] = []
    n_swaps = n_rounds = 0
    stop_reason = "max_swaps" if max_swaps == 0 else "max_rounds"
    step_mode = callback is not None or verify
    buf = max(1, min(max_swaps, swaps_per_round))
    buf_swaps = np.empty((buf, 2), dtype=np.int64)
    buf_gain = np.empty(buf, dtype=np.float64)
    state = np.zeros(7, dtype=np.int64)
    pass_s = search_s = 0.0
    round_stats: list[tuple] = []
    last_log = started

    def progress(force: bool = False) -> None:
        nonlocal last_log
        now = time.perf_counter()
        if not force and now - last_log < log_every_s:
            return
        last_log = now
        elapsed = now - started
        rate = n_swaps / elapsed if elapsed > 0 else 0.0
        log.info(
            "%s: round %d/%d, %d swaps (%.0f/s), objective %.6f, budget left %d swaps / %d rounds, %.1f s",
            label, n_rounds, max_rounds, n_swaps, rate, err, max_swaps - n_swaps, max_rounds - n_rounds, elapsed,
        )

    # addition keys of every pool group and removal keys of the subset's groups, kept between
    # rounds (stale until refreshed; only a full round recomputes every key)
    akey = np.zeros(n_pool, dtype=np.float64)
    akey_ok = np.zeros(n_pool, dtype=bool)
    rkey = np.zeros(n_pool, dtype=np.float64)
    rkey_ok = np.zeros(n_pool, dtype=bool)
    since_full = refresh_every  # forces a full refresh in the first round
    last_full_err = None  # objective at the start of the last full round
    force_all = False  # the next full round recomputes every addition key
    n_full = 0
    def keys(members, sign, store, ok, full, top=None):
        """Heap keys of ``members`` and their versions: every key recomputed in a full round
        (only the ``top`` best stored keys, when given), else only those without a stored key
        (the stored ones are stale: version STALE)."""
        ver = np.zeros(members.shape[0], dtype=np.int64)  # version 0 = fresh in this round
        if full and (top is None or top >= members.shape[0] or not ok[members].any()):
            k = np.empty(members.shape[0], dtype=np.float64)
            gk.group_gains(members, sign, data, spec, x, problem.max_rows, n_chunks, k)
            return k, ver
        k = store[members]
        fresh = ~ok[members]
        if full:  # the top stored keys (ties by position: deterministic) are recomputed too
            order = np.argsort(-np.where(fresh, np.inf, k), kind="stable")
            fresh[order[:top]] = True
        idx = np.flatnonzero(fresh)
        if idx.size:
            part = np.empty(idx.size, dtype=np.float64)
            gk.group_gains(members[idx], sign, data, spec, x, problem.max_rows, n_chunks, part)
            k[idx] = part
        ver[~fresh] = STALE  # recomputed when it reaches the top of the heap
        return k, ver

    while n_rounds < max_rounds and n_swaps < max_swaps and 0 < n_sub < n_pool:
        n_rounds += 1
        t_pass = time.perf_counter()
        full = since_full >= refresh_every
        cand = np.flatnonzero(in_sub == 0).astype(np.int64)
        if full:
            if not force_all and last_full_err is not None and last_full_err - err < tol * err:
                n_rounds -= 1
                stop_reason = "converged"
                break
            last_full_err = err
            n_full += 1
            since_full = 0
        else:
            since_full += 1
        rk, rver = keys(sub, -1.0, rkey, rkey_ok, full)
        all_round = full and (force_all or (n_full - 1) % all_every == 0 or top_candidates >= cand.shape[0])
        force_all = False
        ak, aver = keys(cand, 1.0, akey, akey_ok, full, None if all_round else top_candidates)
        ri = np.arange(n_sub, dtype=np.int64)
        gk.heapify(rk, ri, n_sub)
        ai = np.arange(cand.shape[0], dtype=np.int64)
        gk.heapify(ak, ai, cand.shape[0])
        rlast = np.full(n_sub, np.nan)
        state[:4] = (n_sub, cand.shape[0], 0, 0)
        t_search = time.perf_counter()
        ev0, re0 = int(state[6]), int(state[5])
        pass_s += t_search - t_pass

        accepted = 0
        while accepted < swaps_per_round and n_swaps < max_swaps:
            room = min(max_swaps - n_swaps, swaps_per_round - accepted, buf)
            acc = gk.swap_search(
                sub, in_sub, cand, rk, ri, rver, rlast, ak, ai, aver, state, 1 if step_mode else room,
                pairs_per_removal, max_fail, max_reevals, max_stale, eps,
                data, spec, counts, target, x, cells, vals, old, buf_swaps, buf_gain,
            )
            for s in range(acc):
                err -= float(buf_gain[s])
                trace.append(err)
            if acc:
                swaps_out.append(buf_swaps[:acc].copy())
            n_swaps += acc
            accepted += acc
            if step_mode and acc:
                a, b = int(buf_swaps[0, 0]), int(buf_swaps[0, 1])
                if verify:
                    _verify(problem, sub, counts, err, a, b)
                if callback is not None:
                    callback(GroupSwapEvent(n_swaps, a, b, float(buf_gain[0]), err, counts, sub))
            if acc == 0:
                break
            progress()
        search_s += time.perf_counter() - t_search
        round_stats.append((int(full), accepted, int(state[6]) - ev0, int(state[5]) - re0,
                            round(time.perf_counter() - t_pass, 4), err))
        # keep the (partly refreshed) addition keys for the next stale round; groups that just
        # left the subset have none yet
        akey[cand[ai[: state[1]]]] = ak[: state[1]]
        akey_ok[cand] = True
        akey_ok[in_sub.view(bool)] = False
        # removal keys likewise: still in the heap, or dropped without a partner (rlast); groups
        # that just entered the subset have none yet
        rkey_ok[:] = False
        left = sub[ri[: state[0]]]
        rkey[left] = rk[: state[0]]
        rkey_ok[left] = True
        dropped = np.flatnonzero(~np.isnan(rlast))
        rkey[sub[dropped]] = rlast[dropped]
        rkey_ok[sub[dropped]] = True
        if n_swaps >= max_swaps:
            stop_reason = "max_swaps"
            break
        if accepted == 0:
            if all_round:
                stop_reason = "no_improving_swap"
                break
            since_full = refresh_every  # a stale round found nothing: refresh everything
            force_all = full
    if n_sub in (0, n_pool) and max_swaps > 0:
        stop_reason = "no_improving_swap"
    progress(force=True)
    log.info("%s: stopped (%s)", label, stop_reason)

    return GroupRefineResult(
        groups=np.sort(sub),
        counts=counts.copy(),
        objective=problem.objective(counts),
        objective_incremental=err,
        trace=np.asarray(trace),
        swaps=np.concatenate(swaps_out) if swaps_out else np.zeros((0, 2), dtype=np.int64),
        n_swaps=n_swaps,
        n_rounds=n_rounds,
        n_evaluations=int(state[6]),
        n_recomputations=int(state[5]),
        stop_reason=stop_reason,
        elapsed_s=time.perf_counter() - started,
        pass_s=pass_s,
        search_s=search_s,
        rounds=tuple(round_stats),
        n_full_rounds=n_full,
    )


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
