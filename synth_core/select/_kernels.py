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

# numba's OpenMP layer (GNU libgomp) lets idle worker threads spin after every parallel region
# unless told otherwise. The selection runs thousands of short regions (one IPF pass per pair),
# and on a shared machine the spinning workers steal the cores the working threads need:
# measured on 2 busy cores, one IPF sweep over 2.5 M rows took 62 s spinning and 21 s passive.
# libgomp reads this when numba first loads it (first parallel call); an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from synth_core.select._heap import (  # noqa: E402  # heapify is re-exported for the callers
    better as _better,
    cache_gains as _cache_gains,
    heapify,  # noqa: F401
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
    hk = np.empty(m, dtype=np.float64)
    hi = np.empty(m, dtype=np.int64)
    size = 0
    for i in range(m):
        if alive[i]:
            hk[size] = stale[i]
            hi[size] = i
            size += 1
    heapify(hk, hi, size)

    removed = 0
    reevals = 0
    while removed < n_remove and size > 0:
        i = hi[0]
        w = row_w[i] if weighted else 1.0
        g = _resid_gain(codes, i, -w, resid, fweights, cols, strides, offsets)
        reevals += 1
        c = _second_best(hk, hi, size)
        if c < 0 or not _better(hk[c], hi[c], g, i) or g >= theta:
            _apply_both(codes, i, -w, counts, resid, cols, strides, offsets)
            alive[i] = 0
            removed_out[n_done + removed] = i
            gain_out[n_done + removed] = g
            removed += 1
            size = _pop(hk, hi, size)
        else:
            hk[0] = g
            _sift_down(hk, hi, 0, size)
        if reevals >= max_reevals and removed > 0:
            break
    return removed, reevals


# ----------------------------------------------------------------------------------------
# swap refinement


@njit(parallel=True, cache=True)
def gains_of(js, n, rows, sign, row_w, codes, resid, fweights, cols, strides, offsets, out):
    """``out[t]`` = the gain of moving row ``rows[js[t]]`` in (``sign=+1``) or out (``-1``), for
    ``t < n``, in parallel: each gain is one sequential sum (:func:`_resid_gain`), so its bits
    do not depend on which thread computes it."""
    weighted = row_w.shape[0] > 0
    for t in prange(n):
        r = rows[js[t]]
        w = row_w[r] if weighted else 1.0
        out[t] = _resid_gain(codes, r, sign * w, resid, fweights, cols, strides, offsets)


@njit(inline="always")
def _cached_gain(j, hk, hi, size, ver, version, rows, sign, row_w, weighted, codes, resid, fweights, cols, strides,
                 offsets, spec):
    """The gain of heap entry ``j`` against the current residuals. With a speculation batch
    (``spec``: see :func:`swap_search`) above 1, a cache miss recomputes, in one parallel call,
    the ``batch`` entries with the best stale keys (the ones the lazy picks would recompute next,
    in that order) and caches them for this counts version; the residuals change only with the
    version, so a cached gain has the bits of a fresh recomputation."""
    cval, cver, fk, fp, js, gbuf, batch, tally = spec
    if batch <= 1:
        r = rows[j]
        w = row_w[r] if weighted else 1.0
        return _resid_gain(codes, r, sign * w, resid, fweights, cols, strides, offsets)
    if cver[j] != version:
        n = _stale_top(hk, hi, size, ver, cver, version, 1, batch, fk, fp, js)
        gains_of(js, n, rows, sign, row_w, codes, resid, fweights, cols, strides, offsets, gbuf)
        _cache_gains(cval, cver, js, gbuf, n, version, tally)
    return cval[j]


@njit(inline="always")
def _lazy_pop(hk, hi, size, ver, version, rows, sign, row_w, weighted, max_reevals, codes, resid, fweights, cols,
              strides, offsets, spec):
    """Pop the entry whose refreshed gain is best: the root's gain (moving row ``rows[j]`` in,
    ``sign=+1``, or out, ``-1``) is recomputed against the current residuals until it still
    beats the next key, at most ``max_reevals`` times; a key of the current ``version`` is fresh
    and taken as it is. Recomputations go through the speculation cache ``spec``
    (:func:`_cached_gain`), which changes their cost, never their values. Returns (heap index,
    gain, new size, recomputations)."""
    n_re = 0
    while True:
        j = hi[0]
        if ver[j] == version:
            g = hk[0]
            break
        g = _cached_gain(j, hk, hi, size, ver, version, rows, sign, row_w, weighted, codes, resid, fweights, cols,
                         strides, offsets, spec)
        ver[j] = version
        n_re += 1
        q = _second_best(hk, hi, size)
        if q < 0 or not _better(hk[q], hi[q], g, j) or n_re >= max_reevals:
            break
        hk[0] = g
        _sift_down(hk, hi, 0, size)
    return j, g, _pop(hk, hi, size), n_re


def speculation(n_entries: int, batch: int) -> tuple:
    """The speculation cache of one heap of ``n_entries`` entries (see :func:`_cached_gain`):
    gains cached per entry with their counts version (-1: none), the walk's scratch, the batch's
    buffers, the batch size (1: no speculation, every gain computed when needed) and a tally of
    (parallel calls, gains computed in them)."""
    batch = max(1, int(batch))
    return (np.empty(n_entries, dtype=np.float64), np.full(n_entries, -1, dtype=np.int64),
            np.empty(4 * batch + 2, dtype=np.float64), np.empty(4 * batch + 2, dtype=np.int64),
            np.empty(batch, dtype=np.int64), np.empty(batch, dtype=np.float64), batch, np.zeros(2, dtype=np.int64))


@njit(cache=True)
def swap_search(
    codes, in_subset, subset_rows, row_w, add_rows, rem_hk, rem_hi, rem_ver, add_hk, add_hi, add_ver, state,
    max_accept, pairs_per_removal, max_fail, max_reevals, eps,
    counts, resid, fweights, cols, strides, offsets, out_swaps, out_gain, rem_spec, add_spec,
):
    """Lazy swap search over two heaps of gains (rebuilt by the caller each round).

    ``rem_hk/rem_hi``: removal gains keyed by position in ``subset_rows``; ``add_hk/add_hi``:
    addition gains keyed by index into ``add_rows``. ``resid`` is ``counts - target``, kept
    in step with ``counts`` (one read per cell instead of two). ``rem_ver``/``add_ver`` hold
    the counts version at which each key was computed; the version (``state[3]``) grows with
    every accepted swap, so a key computed at the current version is known fresh and is not
    recomputed. ``state = [rem_size, add_size, consecutive_failures, version,
    removal recomputations, addition recomputations, swap evaluations]`` carries the search
    between calls.

    Each step takes the removal candidate whose recomputed removal gain is best (lazy: the
    root is recomputed until it still beats the next key, at most ``max_reevals`` times),
    then picks up to ``pairs_per_removal`` addition candidates the same way, evaluates the
    exact swap gain of each against the current counts and applies the best if it exceeds
    ``eps``. Unused candidates go back with their fresh keys; a removal candidate without an
    improving partner is dropped for this round. Stops after ``max_accept`` swaps, an empty
    heap, or ``max_fail`` consecutive failed removal candidates. Returns the swaps accepted.

    ``rem_spec``/``add_spec``: each heap's speculation cache (:func:`speculation`, made for the
    round's heaps): with a batch above 1, the recomputations a pick needs are done ahead, a batch
    at a time on all threads; the picks, their order and every gain stay those of the
    one-at-a-time search, so the swaps do not depend on the thread count or the batch size.
    """
    weighted = row_w.shape[0] > 0
    rem_size, add_size, fails, version = _load_search(state)
    held_k = np.empty(pairs_per_removal, dtype=np.float64)
    held_j = np.empty(pairs_per_removal, dtype=np.int64)
    acc = 0
    while acc < max_accept and rem_size > 0 and add_size > 0 and fails < max_fail:
        p, _, rem_size, n_re = _lazy_pop(rem_hk, rem_hi, rem_size, rem_ver, version, subset_rows, -1.0, row_w,
                                         weighted, max_reevals, codes, resid, fweights, cols, strides, offsets,
                                         rem_spec)
        state[4] += n_re
        a = subset_rows[p]
        wa = row_w[a] if weighted else 1.0
        # pick the best addition candidates (lazy) and evaluate the swaps
        n_held = 0
        best = eps
        best_h = -1
        while n_held < pairs_per_removal and add_size > 0:
            j, gb, add_size, n_re = _lazy_pop(add_hk, add_hi, add_size, add_ver, version, add_rows, 1.0, row_w,
                                              weighted, max_reevals, codes, resid, fweights, cols, strides, offsets,
                                              add_spec)
            state[5] += n_re
            b = add_rows[j]
            wb = row_w[b] if weighted else 1.0
            sg = _resid_swap_gain(codes, a, wa, b, wb, resid, fweights, cols, strides, offsets)
            state[6] += 1
            n_held, best, best_h = _hold(held_k, held_j, n_held, gb, j, sg, best, best_h)
        add_size = _push_held(add_hk, add_hi, add_size, held_k, held_j, n_held, best_h)
        if best_h >= 0:
            b = add_rows[held_j[best_h]]
            wb = row_w[b] if weighted else 1.0
            _apply_both(codes, a, -wa, counts, resid, cols, strides, offsets)
            _apply_both(codes, b, wb, counts, resid, cols, strides, offsets)
            _record_swap(in_subset, subset_rows, p, a, b, best, out_swaps, out_gain, acc)
            acc += 1
            fails = 0
            version += 1
        else:
            fails += 1
    _save_search(state, rem_size, add_size, fails, version)
    return acc


# ----------------------------------------------------------------------------------------
# IPF


@njit(parallel=True, cache=True)
def ipf_pass(codes_t, w, ua, ub, unb, ratio, ta, tb, tnb, t_cells):
    """One fused IPF pass over the pool (``codes_t`` is column-major: columns x rows).

    If ``ratio`` is non-empty, first rescale every row weight by ``ratio`` of its cell of
    pair ``(ua, ub)`` (the adjustment of the previous pair); then, if ``t_cells > 0``, return
    the weighted table of pair ``(ta, tb)`` (the next pair) from the updated weights. Fusing
    the two halves the passes over the pool. Fixed chunking keeps the sums deterministic.
    ``w`` may be float32 or float64; tables are float64 sums of the stored weights. A row's
    cell is ``code_a * unb + code_b`` (``tnb`` likewise): ``unb`` is the second column's bin
    count for a pair, 0 for a single column's margin (``ua == ub``).
    """
    n = w.shape[0]
    do_update = ratio.shape[0] > 0
    do_table = t_cells > 0
    n_chunks = N_CHUNKS
    per = (n + n_chunks - 1) // n_chunks
    local = np.zeros((n_chunks, max(t_cells, 1)), dtype=np.float64)
    for k in prange(n_chunks):
        lo = k * per
        hi = min(n, lo + per)
        if do_update and do_table:
            for r in range(lo, hi):
                w[r] = w[r] * ratio[codes_t[ua, r] * unb + codes_t[ub, r]]
                local[k, codes_t[ta, r] * tnb + codes_t[tb, r]] += w[r]
        elif do_update:
            for r in range(lo, hi):
                w[r] = w[r] * ratio[codes_t[ua, r] * unb + codes_t[ub, r]]
        elif do_table:
            for r in range(lo, hi):
                local[k, codes_t[ta, r] * tnb + codes_t[tb, r]] += w[r]
    table = np.zeros(max(t_cells, 1), dtype=np.float64)
    for k in range(n_chunks):
        for c in range(t_cells):
            table[c] += local[k, c]
    return table[:t_cells]


@njit(inline="always")
def _sift_down_worst(hk, hi, v, i, size):
    """Put (v, i) at the root of the worst-first heap ``hk[:size]`` / ``hi[:size]`` (the root
    sorts after every other entry in :func:`synth_core.select._heap.better` order) and sift it down."""
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and _better(hk[child], hi[child], hk[child + 1], hi[child + 1]):
            child += 1
        if not _better(v, i, hk[child], hi[child]):
            break
        hk[pos] = hk[child]
        hi[pos] = hi[child]
        pos = child
    hk[pos] = v
    hi[pos] = i


@njit(cache=True)
def topk_desc(values, k):
    """Indices of the ``k`` largest finite-or-+inf values (``-inf`` never chosen), ordered by
    value descending, ties by index ascending. Deterministic.

    The best k seen so far are kept in a worst-first heap, the mirror image of the max-heaps of
    :mod:`synth_core.select._heap`. Those would serve on negated entries, but measured 6-25 % slower
    here (2.5 M values with many ties, k up to 400 k), so this kernel keeps its own sift.
    """
    n = values.shape[0]
    cnt = 0
    for i in range(n):
        if values[i] > -np.inf:
            cnt += 1
    k = min(k, cnt)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    hk = np.empty(k, dtype=np.float64)
    hi = np.empty(k, dtype=np.int64)
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
                if not _better(hk[parent], hi[parent], v, i):
                    break
                hk[pos] = hk[parent]
                hi[pos] = hi[parent]
                pos = parent
            hk[pos] = v
            hi[pos] = i
        elif _better(v, i, hk[0], hi[0]):  # (v, i) beats the worst kept
            _sift_down_worst(hk, hi, v, i, size)
    # pop worst first into the back of the output
    out = np.empty(k, dtype=np.int64)
    for t in range(k - 1, -1, -1):
        out[t] = hi[0]
        size -= 1
        if size > 0:
            _sift_down_worst(hk, hi, hk[size], hi[size], size)
    return out
