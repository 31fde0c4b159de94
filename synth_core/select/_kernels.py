"""Numba kernels of the selection core.

Conventions shared by every kernel:

* ``codes`` is a C-contiguous uint8 matrix (rows x columns); cells are never materialised,
  each kernel computes ``offsets[f] + sum_k codes[r, cols[f, k]] * strides[f, k]`` on the fly
  (see :mod:`synth_core.select._features`).
* The parallel scans visit every row of a contiguous code matrix; callers gather a subset
  (``codes[rows]``, a few MB) first, which also keeps the block's codes in cache. Scans are
  specialised by feature arity (1, 2 or 3 byte loads per cell).
* ``row_w``: per-row weight aligned with the rows of ``codes``; an empty array means every
  row weighs 1 (the fast, common case).
* ``counts`` / ``resid``: float64 vectors over the concatenated cells; ``resid`` is
  ``counts - target``, updated together with ``counts`` so gain computations read one vector
  (one random access per feature). Counts are float64 even when unweighted: integers are exact
  in float64 and one code path serves both cases.
* Floating-point reductions always run in a fixed order (fixed chunking, sequential inner
  loops), so results do not depend on thread scheduling: same inputs, same bits.
* Scans are blocked: a block of ``ROW_BLOCK`` rows is visited once per feature, so the
  feature's small table stays in cache while the block's codes stay in L2.
"""

from __future__ import annotations

import os
from typing import NamedTuple

# numba's OpenMP layer (GNU libgomp) lets idle worker threads spin after every parallel region
# unless told otherwise. The selection runs thousands of short regions (one IPF pass per pair),
# and on a shared machine the spinning workers steal the cores the working threads need:
# measured on 2 busy cores, one IPF sweep over 2.5 M rows took 62 s spinning and 21 s passive.
# libgomp reads this when numba first loads it (first parallel call); an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from numba import njit, prange

# heapify is re-exported for the callers; the import sorter leaves the aliased names in one statement
from synth_core.select._heap import (  # isort: skip
    better as _better,
    cache_gains as _cache_gains,
    heapify,
    hold as _hold,
    load_search as _load_search,
    pop as _pop,
    push_held as _push_held,
    record_swap as _record_swap,
    save_search as _save_search,
    second_best as _second_best,
    sift_down as _sift_down,
    stale_top as _stale_top,
)

ROW_BLOCK = 2048
N_CHUNKS = 64  # fixed (thread-count independent) chunking of reductions: deterministic sums

# slots of the swap search's carried state (:func:`swap_search`), after the four that both swap
# searches share (``STATE_REM_SIZE`` ... ``STATE_VERSION`` of :mod:`synth_core.select._heap`)
STATE_REM_RECOMPUTATIONS = 4  # lazy recomputations of removal gains
STATE_ADD_RECOMPUTATIONS = 5  # lazy recomputations of addition gains
STATE_EVALUATIONS = 6  # swap-gain evaluations (screened or exact)
STATE_SCREENED = 7  # of which screened out without the exact evaluation (swap_search's screen_margin)
STATE_SLOTS = 8  # length of the state array


@njit(inline="always")
def _cell(codes, r, f, cols, strides, offsets):
    return (
        offsets[f]
        + codes[r, cols[f, 0]] * strides[f, 0]
        + codes[r, cols[f, 1]] * strides[f, 1]
        + codes[r, cols[f, 2]] * strides[f, 2]
    )


@njit(inline="always")
def change_term(x, d):
    """``|x| - |x + d|``: the decrease of ``|c - t|`` when a cell with residual ``x = c - t``
    changes by ``d``, computed as ``clip(-sign(d) * (2x + d), -|d|, |d|)`` (the same value in
    exact arithmetic). The clipped form is exactly ``+-|d|`` wherever the cell stays on one
    side of its target, whereas ``|x| - |x + d|`` picks up rounding noise that depends on
    ``x``; with it, stale and fresh gains of unaffected rows would differ in the last bits,
    breaking the ties and upper bounds that lazy evaluation relies on. Must match
    :func:`synth_core.select._objective.change_terms` bit for bit."""
    ad = abs(d)
    v = 2.0 * x + d
    if d > 0:
        v = -v
    return min(ad, max(-ad, v))


# ----------------------------------------------------------------------------------------
# materialisation (small cases only) and counting


@njit(parallel=True, cache=True)
def row_cells(codes, cols, strides, offsets, out):
    n = codes.shape[0]
    F = cols.shape[0]
    for r in prange(n):
        for f in range(F):
            out[r, f] = _cell(codes, r, f, cols, strides, offsets)


@njit(parallel=True, cache=True)
def accumulate_counts(codes, row_w, cols, strides, offsets, arity, counts):
    """``counts[cell_f(r)] += w_r`` for every row of ``codes`` and every feature (adds to
    ``counts``).

    Parallel over feature chunks: features own disjoint cells, so there are no races and
    every cell is summed sequentially in row order.
    """
    F = cols.shape[0]
    n = codes.shape[0]
    weighted = row_w.shape[0] > 0
    n_chunks = min(F, N_CHUNKS)
    per = (F + n_chunks - 1) // n_chunks
    for k in prange(n_chunks):
        f0 = k * per
        f1 = min(F, f0 + per)
        for b0 in range(0, n, ROW_BLOCK):
            b1 = min(n, b0 + ROW_BLOCK)
            for f in range(f0, f1):
                tab = counts[offsets[f] :]
                c0 = cols[f, 0]
                c1 = cols[f, 1]
                c2 = cols[f, 2]
                s0 = strides[f, 0]
                s1 = strides[f, 1]
                a = arity[f]
                if weighted:
                    for i in range(b0, b1):
                        if a == 1:
                            c = np.int64(codes[i, c0])
                        elif a == 2:
                            c = codes[i, c0] * s0 + codes[i, c1]
                        else:
                            c = codes[i, c0] * s0 + codes[i, c1] * s1 + codes[i, c2]
                        tab[c] += row_w[i]
                elif a == 1:
                    for i in range(b0, b1):
                        tab[codes[i, c0]] += 1.0
                elif a == 2:
                    for i in range(b0, b1):
                        tab[codes[i, c0] * s0 + codes[i, c1]] += 1.0
                else:
                    for i in range(b0, b1):
                        tab[codes[i, c0] * s0 + codes[i, c1] * s1 + codes[i, c2]] += 1.0


# ----------------------------------------------------------------------------------------
# per-row gains


@njit(parallel=True, cache=True)
def gather_row_sums(codes, cellvec, cols, strides, offsets, arity, out):
    """``out[i] = sum_f cellvec[cell_f(row_i)]`` for every row of ``codes`` (features summed
    in order, so the result does not depend on the thread count).

    Each block of rows is first copied column-major (one int64 vector per column, 256 KB for
    16 columns): a feature's cell indices then come from contiguous vectors that the compiler
    vectorises, instead of byte loads strided by the row length (measured 1.6x faster on the
    census pool, 500 k rows x 576 features). The sums are the same, in the same order.
    """
    F = cols.shape[0]
    n = codes.shape[0]
    n_cols = codes.shape[1]
    n_blocks = (n + ROW_BLOCK - 1) // ROW_BLOCK
    for bk in prange(n_blocks):
        b0 = bk * ROW_BLOCK
        m = min(n, b0 + ROW_BLOCK) - b0
        block = np.empty((n_cols, m), dtype=np.int64)
        for i in range(m):
            for c in range(n_cols):
                block[c, i] = codes[b0 + i, c]
        acc = np.zeros(m, dtype=np.float64)
        for f in range(F):
            tab = cellvec[offsets[f] :]
            x0 = block[cols[f, 0]]
            a = arity[f]
            if a == 1:
                for i in range(m):
                    acc[i] += tab[x0[i]]
            elif a == 2:
                x1 = block[cols[f, 1]]
                s0 = strides[f, 0]
                for i in range(m):
                    acc[i] += tab[x0[i] * s0 + x1[i]]
            else:
                x1 = block[cols[f, 1]]
                x2 = block[cols[f, 2]]
                s0 = strides[f, 0]
                s1 = strides[f, 1]
                for i in range(m):
                    acc[i] += tab[x0[i] * s0 + x1[i] * s1 + x2[i]]
        out[b0 : b0 + m] = acc


@njit(parallel=True, cache=True)
def weighted_row_gains(codes, row_w, sign, resid, fweights, cols, strides, offsets, out):
    """Gain (decrease of ``sum_f w_f |c - t|``) of moving each row's weight in (sign=+1) or
    out (sign=-1) of the counts: ``sum_f w_f (|x| - |x + sign * w_r|)``, ``x = resid = c - t``.
    ``row_w`` is aligned with the rows of ``codes``.

    Used when rows carry their own weights; the unweighted case uses a per-cell gain vector
    and :func:`gather_row_sums`, which is the same arithmetic with ``w_r = 1``.
    """
    F = cols.shape[0]
    n = codes.shape[0]
    n_blocks = (n + ROW_BLOCK - 1) // ROW_BLOCK
    for bk in prange(n_blocks):
        b0 = bk * ROW_BLOCK
        b1 = min(n, b0 + ROW_BLOCK)
        acc = np.zeros(b1 - b0, dtype=np.float64)
        for f in range(F):
            wf = fweights[f]
            tab = resid[offsets[f] :]
            c0 = cols[f, 0]
            c1 = cols[f, 1]
            c2 = cols[f, 2]
            s0 = strides[f, 0]
            s1 = strides[f, 1]
            s2 = strides[f, 2]
            for i in range(b0, b1):
                x = tab[codes[i, c0] * s0 + codes[i, c1] * s1 + codes[i, c2] * s2]
                acc[i - b0] += wf * change_term(x, sign * row_w[i])
        out[b0:b1] = acc


@njit(cache=True)
def _resid_gain(codes, r, delta, resid, fweights, cols, strides, offsets):
    """Exact decrease of ``sum_f w_f |c - t|`` when row ``r``'s cells change by ``delta``
    (``-w_r`` removes the row, ``+w_r`` adds it), given ``resid = counts - target``.
    Positive = the objective improves."""
    F = cols.shape[0]
    s = 0.0
    for f in range(F):
        x = resid[_cell(codes, r, f, cols, strides, offsets)]
        s += fweights[f] * change_term(x, delta)
    return s


@njit(cache=True)
def _resid_swap_gain(codes, ra, wa, rb, wb, resid, fweights, cols, strides, offsets):
    """Exact decrease of ``sum_f w_f |c - t|`` when row ``ra`` (weight ``wa``) leaves and
    row ``rb`` (weight ``wb``) enters, given ``resid = counts - target``. Where both rows
    share a feature's cell the two changes combine on that one cell (net ``wb - wa``)."""
    F = cols.shape[0]
    s = 0.0
    for f in range(F):
        ca = _cell(codes, ra, f, cols, strides, offsets)
        cb = _cell(codes, rb, f, cols, strides, offsets)
        if ca == cb:
            if wa != wb:
                x = resid[ca]
                s += fweights[f] * change_term(x, wb - wa)
        else:
            xa = resid[ca]
            xb = resid[cb]
            s += fweights[f] * (change_term(xa, -wa) + change_term(xb, wb))
    return s


@njit(inline="always")
def _shared_terms(codes, ra, rb, resid, fweights, cols, strides, offsets):
    """``sum_f w_f (change_term(x, -1) + change_term(x, +1))`` over the features where unit
    rows ``ra`` and ``rb`` share a cell (``x``: that cell's residual): what the separable sum
    ``removal gain + addition gain`` counts on shared cells and the swap does not (a shared
    cell's count stays). Only shared cells read ``resid``; the others cost a few byte loads."""
    F = cols.shape[0]
    s = 0.0
    for f in range(F):
        ca = _cell(codes, ra, f, cols, strides, offsets)
        if ca == _cell(codes, rb, f, cols, strides, offsets):
            x = resid[ca]
            s += fweights[f] * (change_term(x, -1.0) + change_term(x, 1.0))
    return s


@njit(inline="always")
def _shared_terms_masked(codes, ra, rb, fmask, resid, fweights, cols, strides, offsets):
    """:func:`_shared_terms` (the same sum, in the same order) for tables of at most 63 columns:
    ``fmask[f]`` has bit ``c`` set for each column ``c`` of feature ``f``, and a feature is shared
    when the rows agree on all its columns. Deciding that costs one test per feature instead of
    two cell computations (measured about 4x faster on census)."""
    agree = np.int64(0)
    for c in range(codes.shape[1]):
        if codes[ra, c] == codes[rb, c]:
            agree |= np.int64(1) << c
    differ = ~agree
    F = cols.shape[0]
    s = 0.0
    for f in range(F):
        if fmask[f] & differ == 0:
            x = resid[_cell(codes, ra, f, cols, strides, offsets)]
            s += fweights[f] * (change_term(x, -1.0) + change_term(x, 1.0))
    return s


@njit(cache=True)
def _apply_both(codes, r, delta, counts, resid, cols, strides, offsets):
    F = cols.shape[0]
    for f in range(F):
        c = _cell(codes, r, f, cols, strides, offsets)
        counts[c] += delta
        resid[c] += delta


# ----------------------------------------------------------------------------------------
# trimming: lazy greedy over a max-heap of (stale) removal gains


@njit(cache=True)
def trim_lazy_greedy(
    codes, alive, stale, row_w, n_remove, max_reevals, theta, counts, resid, fweights, cols, strides, offsets,
    removed_out, gain_out, n_done,
):
    """Remove up to ``n_remove`` rows from the alive rows of ``codes``, each time the row with
    the largest exact removal gain.

    ``resid`` is ``counts - target``, updated together with ``counts`` (one read per cell).
    ``stale`` holds removal gains computed earlier from ``resid``. A row's removal gain is
    ``sum_f w_f h(c - t)`` with ``h(x) = |x| - |x - w_r|`` nondecreasing in ``x``, and removing
    rows only lowers counts, so a stale gain is an upper bound of the current one. Lazy
    greedy is therefore exact: pop the top, recompute its gain; if it still beats every other
    (stale, i.e. upper-bound) key it is the true best and is removed, otherwise it goes back
    with its fresh key. Stops after ``n_remove`` removals, or once ``max_reevals`` gains have
    been recomputed and at least one row was removed (the caller then refreshes all gains).
    A popped row is also accepted when its recomputed gain is at least ``theta``: ``+inf``
    gives exact greedy, ``-inf`` plain batch removal in order of the stale gains.

    Removed local row indices / their exact gains go to ``removed_out[n_done:]`` /
    ``gain_out[n_done:]``. Returns (number removed, number of recomputed gains).
    """
    m = alive.shape[0]
    weighted = row_w.shape[0] > 0
    heap_keys = np.empty(m, dtype=np.float64)
    heap_ids = np.empty(m, dtype=np.int64)
    size = 0
    for i in range(m):
        if alive[i]:
            heap_keys[size] = stale[i]
            heap_ids[size] = i
            size += 1
    heapify(heap_keys, heap_ids, size)

    removed = 0
    reevals = 0
    while removed < n_remove and size > 0:
        i = heap_ids[0]
        w = row_w[i] if weighted else 1.0
        g = _resid_gain(codes, i, -w, resid, fweights, cols, strides, offsets)
        reevals += 1
        runner_up = _second_best(heap_keys, heap_ids, size)
        if runner_up < 0 or not _better(heap_keys[runner_up], heap_ids[runner_up], g, i) or g >= theta:
            _apply_both(codes, i, -w, counts, resid, cols, strides, offsets)
            alive[i] = 0
            removed_out[n_done + removed] = i
            gain_out[n_done + removed] = g
            removed += 1
            size = _pop(heap_keys, heap_ids, size)
        else:
            heap_keys[0] = g
            _sift_down(heap_keys, heap_ids, 0, size)
        if reevals >= max_reevals and removed > 0:
            break
    return removed, reevals


# ----------------------------------------------------------------------------------------
# swap refinement


@njit(parallel=True, cache=True)
def gains_of(picked, n, rows, sign, row_w, codes, resid, fweights, cols, strides, offsets, out):
    """``out[t]`` = the gain of moving row ``rows[picked[t]]`` in (``sign=+1``) or out (``-1``), for
    ``t < n``, in parallel: each gain is one sequential sum (:func:`_resid_gain`), so its bits
    do not depend on which thread computes it."""
    weighted = row_w.shape[0] > 0
    for t in prange(n):
        r = rows[picked[t]]
        w = row_w[r] if weighted else 1.0
        out[t] = _resid_gain(codes, r, sign * w, resid, fweights, cols, strides, offsets)


@njit(inline="always")
def _cached_gain(j, heap_keys, heap_ids, size, key_versions, version, rows, sign, row_w, weighted, codes, resid,
                 fweights, cols, strides, offsets, cache):
    """The gain of heap entry ``j`` against the current residuals. With a speculation batch
    (``cache``, a :class:`Speculation`: see :func:`swap_search`) above 1, a cache miss recomputes,
    in one parallel call, the ``batch`` entries with the best stale keys (the ones the lazy picks
    would recompute next, in that order) and caches them for this counts version; the residuals
    change only with the version, so a cached gain has the bits of a fresh recomputation."""
    if cache.batch <= 1:
        r = rows[j]
        w = row_w[r] if weighted else 1.0
        return _resid_gain(codes, r, sign * w, resid, fweights, cols, strides, offsets)
    if cache.versions[j] != version:
        # max_stale 1: every key computed before this version would be recomputed
        n = _stale_top(heap_keys, heap_ids, size, key_versions, cache.versions, version, 1, cache.batch,
                       cache.frontier_keys, cache.frontier_pos, cache.picked)
        gains_of(cache.picked, n, rows, sign, row_w, codes, resid, fweights, cols, strides, offsets,
                 cache.picked_gains)
        _cache_gains(cache.gains, cache.versions, cache.picked, cache.picked_gains, n, version, cache.tally)
    return cache.gains[j]


@njit(inline="always")
def _lazy_pop(heap_keys, heap_ids, size, key_versions, version, rows, sign, row_w, weighted, max_reevals, codes, resid,
              fweights, cols, strides, offsets, cache):
    """Pop the entry whose refreshed gain is best: the root's gain (moving row ``rows[j]`` in,
    ``sign=+1``, or out, ``-1``) is recomputed against the current residuals until it still
    beats the next key, at most ``max_reevals`` times; a key of the current ``version`` is fresh
    and taken as it is. Recomputations go through the speculation cache ``cache``
    (:func:`_cached_gain`), which changes their cost, never their values. Returns (heap id,
    gain, new size, recomputations)."""
    n_recomputed = 0
    while True:
        j = heap_ids[0]
        if key_versions[j] == version:
            g = heap_keys[0]
            break
        g = _cached_gain(j, heap_keys, heap_ids, size, key_versions, version, rows, sign, row_w, weighted, codes,
                         resid, fweights, cols, strides, offsets, cache)
        key_versions[j] = version
        n_recomputed += 1
        runner_up = _second_best(heap_keys, heap_ids, size)
        if (runner_up < 0 or not _better(heap_keys[runner_up], heap_ids[runner_up], g, j)
                or n_recomputed >= max_reevals):
            break
        heap_keys[0] = g
        _sift_down(heap_keys, heap_ids, 0, size)
    return j, g, _pop(heap_keys, heap_ids, size), n_recomputed


class Speculation(NamedTuple):
    """The speculation cache of one heap (see :func:`_cached_gain`; made by :func:`speculation`),
    a named tuple to numba. Arrays with one value per heap entry are indexed by the entry's id."""

    gains: np.ndarray  # (entries,) float64: the gain cached per entry, ...
    versions: np.ndarray  # (entries,) int64: ... valid at this counts version (-1: none)
    frontier_keys: np.ndarray  # (4 * batch + 2,) float64: scratch of the walk that picks a batch ...
    frontier_pos: np.ndarray  # (4 * batch + 2,) int64: ... (synth_core.select._heap.stale_top)
    picked: np.ndarray  # (batch,) int64: the entries of the batch computed ahead, ...
    picked_gains: np.ndarray  # (batch,) float64: ... and their gains
    batch: int  # entries computed per parallel call (1: no speculation, every gain when needed)
    tally: np.ndarray  # (2,) int64: parallel calls and the gains computed in them (_heap.TALLY_*)


def speculation(n_entries: int, batch: int) -> Speculation:
    """The speculation cache of one heap of ``n_entries`` entries (:class:`Speculation`): no gain
    cached yet, a tally of zero; ``batch`` 1: no speculation."""
    batch = max(1, int(batch))
    return Speculation(np.empty(n_entries, dtype=np.float64), np.full(n_entries, -1, dtype=np.int64),
                       np.empty(4 * batch + 2, dtype=np.float64), np.empty(4 * batch + 2, dtype=np.int64),
                       np.empty(batch, dtype=np.int64), np.empty(batch, dtype=np.float64), batch,
                       np.zeros(2, dtype=np.int64))


@njit(cache=True)
def swap_search(
    codes, in_subset, subset_rows, row_w, add_rows, rem_keys, rem_ids, rem_versions, add_keys, add_ids, add_versions,
    state, max_accept, pairs_per_removal, max_fail, max_reevals, eps,
    counts, resid, fweights, cols, strides, offsets, out_swaps, out_gain, rem_cache, add_cache, screen_margin,
    fmask,
):
    """Lazy swap search over two heaps of gains (rebuilt by the caller each round).

    ``rem_keys/rem_ids``: removal gains and the positions in ``subset_rows`` they belong to;
    ``add_keys/add_ids``: addition gains and their indices into ``add_rows``. ``resid`` is
    ``counts - target``, kept in step with ``counts`` (one read per cell instead of two).
    ``rem_versions``/``add_versions`` hold, per id, the counts version at which its key was
    computed; the version (``state[_heap.STATE_VERSION]``) grows with every accepted swap, so a key
    computed at the current version is known fresh and is not recomputed. ``state`` (int64,
    ``STATE_SLOTS`` long: removal heap size, addition heap size, consecutive failures, version,
    removal recomputations, addition recomputations, swap evaluations, at the ``STATE_*`` slots)
    carries the search between calls.

    Each step takes the removal candidate whose recomputed removal gain is best (lazy: the
    root is recomputed until it still beats the next key, at most ``max_reevals`` times),
    then picks up to ``pairs_per_removal`` addition candidates the same way, evaluates the
    exact swap gain of each against the current counts and applies the best if it exceeds
    ``eps``. Unused candidates go back with their fresh keys; a removal candidate without an
    improving partner is dropped for this round. Stops after ``max_accept`` swaps, an empty
    heap, or ``max_fail`` consecutive failed removal candidates. Returns the swaps accepted.

    ``rem_cache``/``add_cache``: each heap's speculation cache (:func:`speculation`, made for the
    round's heaps): with a batch above 1, the recomputations a pick needs are done ahead, a batch
    at a time on all threads; the picks, their order and every gain stay those of the
    one-at-a-time search, so the swaps do not depend on the thread count or the batch size.

    ``screen_margin`` (>= 0; unit rows only, negative: off) screens pairs before the exact
    evaluation. Both picks' gains are fresh, so a pair's swap gain is ``removal gain + addition
    gain - shared`` (:func:`_shared_terms`), which reads ``resid`` only where the rows share a
    cell. A pair whose value is below the best so far by more than ``screen_margin`` (a bound
    on the rounding of the two sums) cannot become the best: it is held with that value and
    not evaluated exactly. Pairs that can are evaluated by :func:`_resid_swap_gain` as before,
    so the picks, the accepted swaps and their gains are the unscreened search's, bit for bit.
    Most pairs of a round fail, and a screened pair costs a fraction of an exact one when
    ``fmask`` (:func:`feature_masks`; an empty int64 array: cells are compared) is given
    (:func:`_shared_terms_masked`).
    """
    weighted = row_w.shape[0] > 0
    screen = screen_margin >= 0.0 and not weighted
    rem_size, add_size, fails, version = _load_search(state)
    held_keys = np.empty(pairs_per_removal, dtype=np.float64)
    held_ids = np.empty(pairs_per_removal, dtype=np.int64)
    n_accepted = 0
    while n_accepted < max_accept and rem_size > 0 and add_size > 0 and fails < max_fail:
        p, ga, rem_size, n_recomputed = _lazy_pop(rem_keys, rem_ids, rem_size, rem_versions, version, subset_rows, -1.0,
                                                 row_w, weighted, max_reevals, codes, resid, fweights, cols, strides,
                                                 offsets, rem_cache)
        state[STATE_REM_RECOMPUTATIONS] += n_recomputed
        a = subset_rows[p]
        wa = row_w[a] if weighted else 1.0
        # pick the best addition candidates (lazy) and evaluate the swaps
        n_held = 0
        best = eps
        best_held = -1
        while n_held < pairs_per_removal and add_size > 0:
            j, gb, add_size, n_recomputed = _lazy_pop(add_keys, add_ids, add_size, add_versions, version, add_rows, 1.0,
                                                      row_w, weighted, max_reevals, codes, resid, fweights, cols,
                                                      strides, offsets, add_cache)
            state[STATE_ADD_RECOMPUTATIONS] += n_recomputed
            b = add_rows[j]
            wb = row_w[b] if weighted else 1.0
            swap_gain = -np.inf
            if screen:
                if fmask.shape[0]:
                    shared = _shared_terms_masked(codes, a, b, fmask, resid, fweights, cols, strides, offsets)
                else:
                    shared = _shared_terms(codes, a, b, resid, fweights, cols, strides, offsets)
                swap_gain = ga + gb - shared
                if swap_gain > best - screen_margin:  # may be the best: its exact bits decide
                    swap_gain = -np.inf
                else:
                    state[STATE_SCREENED] += 1
            if swap_gain == -np.inf:
                swap_gain = _resid_swap_gain(codes, a, wa, b, wb, resid, fweights, cols, strides, offsets)
            state[STATE_EVALUATIONS] += 1
            n_held, best, best_held = _hold(held_keys, held_ids, n_held, gb, j, swap_gain, best, best_held)
        add_size = _push_held(add_keys, add_ids, add_size, held_keys, held_ids, n_held, best_held)
        if best_held >= 0:
            b = add_rows[held_ids[best_held]]
            wb = row_w[b] if weighted else 1.0
            _apply_both(codes, a, -wa, counts, resid, cols, strides, offsets)
            _apply_both(codes, b, wb, counts, resid, cols, strides, offsets)
            _record_swap(in_subset, subset_rows, p, a, b, best, out_swaps, out_gain, n_accepted)
            n_accepted += 1
            fails = 0
            version += 1
        else:
            fails += 1
    _save_search(state, rem_size, add_size, fails, version)
    return n_accepted


def feature_masks(cols: np.ndarray, arity: np.ndarray, n_cols: int) -> np.ndarray:
    """Per feature, the bit mask of its columns (int64), for :func:`swap_search`'s screen; empty
    when the table has more than 63 columns (the screen then compares cells)."""
    if n_cols > 63:
        return np.zeros(0, dtype=np.int64)
    masks = np.zeros(cols.shape[0], dtype=np.int64)
    for k in range(cols.shape[1]):
        used = arity > k
        masks[used] |= np.left_shift(np.int64(1), cols[used, k].astype(np.int64))
    return masks


# ----------------------------------------------------------------------------------------
# IPF


@njit(parallel=True, cache=True)
def ipf_pass(codes_t, w, upd_a, upd_b, upd_stride, ratio, tab_a, tab_b, tab_stride, tab_cells):
    """One fused IPF pass over the pool (``codes_t`` is column-major: columns x rows).

    If ``ratio`` is non-empty, first rescale every row weight by ``ratio`` of its cell of the
    updated pair ``(upd_a, upd_b)`` (the adjustment of the previous pair); then, if
    ``tab_cells > 0``, return the weighted table of pair ``(tab_a, tab_b)`` (the next pair) from
    the updated weights. Fusing the two halves the passes over the pool. Fixed chunking keeps the
    sums deterministic. ``w`` may be float32 or float64; tables are float64 sums of the stored
    weights. A row's cell is ``code_a * upd_stride + code_b`` (``tab_stride`` likewise):
    ``upd_stride`` is the second column's bin count for a pair, 0 for a single column's margin
    (``upd_a == upd_b``).
    """
    n = w.shape[0]
    do_update = ratio.shape[0] > 0
    do_table = tab_cells > 0
    n_chunks = N_CHUNKS
    per = (n + n_chunks - 1) // n_chunks
    local = np.zeros((n_chunks, max(tab_cells, 1)), dtype=np.float64)
    for k in prange(n_chunks):
        lo = k * per
        hi = min(n, lo + per)
        if do_update and do_table:
            for r in range(lo, hi):
                w[r] = w[r] * ratio[codes_t[upd_a, r] * upd_stride + codes_t[upd_b, r]]
                local[k, codes_t[tab_a, r] * tab_stride + codes_t[tab_b, r]] += w[r]
        elif do_update:
            for r in range(lo, hi):
                w[r] = w[r] * ratio[codes_t[upd_a, r] * upd_stride + codes_t[upd_b, r]]
        elif do_table:
            for r in range(lo, hi):
                local[k, codes_t[tab_a, r] * tab_stride + codes_t[tab_b, r]] += w[r]
    table = np.zeros(max(tab_cells, 1), dtype=np.float64)
    for k in range(n_chunks):
        for c in range(tab_cells):
            table[c] += local[k, c]
    return table[:tab_cells]


@njit(inline="always")
def _sift_down_worst(heap_keys, heap_ids, v, i, size):
    """Put (v, i) at the root of the worst-first heap ``heap_keys[:size]`` / ``heap_ids[:size]`` (the
    root sorts after every other entry in :func:`synth_core.select._heap.better` order) and sift it
    down."""
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and _better(heap_keys[child], heap_ids[child], heap_keys[child + 1],
                                        heap_ids[child + 1]):
            child += 1
        if not _better(v, i, heap_keys[child], heap_ids[child]):
            break
        heap_keys[pos] = heap_keys[child]
        heap_ids[pos] = heap_ids[child]
        pos = child
    heap_keys[pos] = v
    heap_ids[pos] = i


@njit(cache=True)
def topk_desc(values, k):
    """Indices of the ``k`` largest finite-or-+inf values (``-inf`` never chosen), ordered by
    value descending, ties by index ascending. Deterministic.

    The best k seen so far are kept in a worst-first heap, the mirror image of the max-heaps of
    :mod:`synth_core.select._heap`. Those would serve on negated entries, but measured 6-25 % slower
    here (2.5 M values with many ties, k up to 400 k), so this kernel keeps its own sift.
    """
    n = values.shape[0]
    n_eligible = 0
    for i in range(n):
        if values[i] > -np.inf:
            n_eligible += 1
    k = min(k, n_eligible)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    heap_keys = np.empty(k, dtype=np.float64)
    heap_ids = np.empty(k, dtype=np.int64)
    size = 0
    for i in range(n):
        v = values[i]
        if not v > -np.inf:
            continue
        if size < k:  # sift up from the new leaf
            pos = size
            size += 1
            while pos > 0:
                parent = (pos - 1) // 2
                if not _better(heap_keys[parent], heap_ids[parent], v, i):
                    break
                heap_keys[pos] = heap_keys[parent]
                heap_ids[pos] = heap_ids[parent]
                pos = parent
            heap_keys[pos] = v
            heap_ids[pos] = i
        elif _better(v, i, heap_keys[0], heap_ids[0]):  # (v, i) beats the worst kept
            _sift_down_worst(heap_keys, heap_ids, v, i, size)
    # pop worst first into the back of the output
    out = np.empty(k, dtype=np.int64)
    for t in range(k - 1, -1, -1):
        out[t] = heap_ids[0]
        size -= 1
        if size > 0:
            _sift_down_worst(heap_keys, heap_ids, heap_keys[size], heap_ids[size], size)
    return out
