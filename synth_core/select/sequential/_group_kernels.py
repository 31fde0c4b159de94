"""Numba kernels of the sequential (group) selection.

A group's contribution to the objective's cells is computed on the fly from its codes; nothing of
size groups × cells is ever materialised. Two tuples carry the inputs:

* ``data = (X, wstarts, wlengths, gw, G, B)``: ``X`` the weighted-row codes (uint8, one row per
  weighted row, C-contiguous), group ``g``'s rows ``wstarts[g] : wstarts[g] + wlengths[g]``, each
  of weight ``gw[g]``; ``G`` (groups × columns, uint8) the per-group codes; ``B`` (groups ×
  columns, uint16) the per-group bucket bitmasks;
* ``spec = (rcols, rstrides, roffsets, rw, ccols, coffsets, cw, scols, soffsets, sw)``: row
  features (cell ``roffsets[f] + Σ_k X[r, rcols[f, k]] · rstrides[f, k]``), per-group code
  features (cell ``coffsets[f] + G[g, ccols[f]]``) and per-group bitmask features (cells
  ``soffsets[f] + b`` for every bit ``b`` of ``B[g, scols[f]]``); ``rw``/``cw``/``sw`` are the
  features' weights per unit count (the objective is ``Σ_f w_f Σ_cells |count − target|``).

Gains read ``x`` (float64, one per cell): ``x = counts − targets``, rounded once from the exact
counts (8 bytes per cell keeps the hot array in the L2 cache). The exact integer counts live in
their own array, changed only when a swap is accepted (:func:`apply_swap`), after which ``x`` is
recomputed from them for the touched cells, so ``x`` never accumulates rounding.

Exactness: a group's rows may share a feature's cell, and two swapped groups may share cells, so a
gain must use the *net* change ``Δ`` per distinct cell: ``|x| − |x + Δ|``, ``x = count − target``.
The kernels apply a move's entries to ``x`` one by one, sum ``|x before| − |x after|`` (the terms
of a shared cell telescope to its net change) and restore ``x`` (:func:`_seq_gain`): no duplicate
search, one pass over the rows. Every gain is a sequential sum in a fixed order (features in
order, then cells in row order), so results do not depend on the number of threads. Gains are
exact up to float64 rounding of ``x`` (about 1e-16 relative); the objective of a result is always
recomputed from the exact counts.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from synth_core.select._heap import (  # heapify is re-exported for the callers
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

BLOCK = 256  # groups per block of the parallel pass: one feature's cells stay in cache across them


@njit(inline="always")
def _seq_gain(cells, vals, old, n, x):
    """``Σ over distinct cells c of |x_c| − |x_c + Σ vals at c|`` for ``cells[:n]``/``vals[:n]``.

    The entries are applied to ``x`` one after the other, each adding ``|x before| − |x after|``:
    over a cell's entries the terms telescope to the net change, so duplicates need no search.
    ``x`` is then restored from the saved old values in reverse order (bit-exact).
    """
    s = 0.0
    for i in range(n):
        c = cells[i]
        o = x[c]
        old[i] = o
        v = o + vals[i]
        s += abs(o) - abs(v)
        x[c] = v
    for i in range(n - 1, -1, -1):
        x[cells[i]] = old[i]
    return s


@njit(inline="always")
def _rcell(X, r, f, rcols, rstrides, roffsets):
    return (roffsets[f] + np.int64(X[r, rcols[f, 0]]) * rstrides[f, 0]
            + np.int64(X[r, rcols[f, 1]]) * rstrides[f, 1] + np.int64(X[r, rcols[f, 2]]) * rstrides[f, 2])


@njit(inline="always")
def _row_feature_gain(g, w, f, data, spec, x, cells, vals, old):
    """Gain of moving group ``g``'s rows by ``w`` each in row feature ``f``."""
    X, wstarts, wlengths, gw, G, B = data
    rcols, rstrides, roffsets, rw, ccols, coffsets, cw, scols, soffsets, sw = spec
    r0 = wstarts[g]
    n = wlengths[g]
    for i in range(n):
        cells[i] = _rcell(X, r0 + i, f, rcols, rstrides, roffsets)
        vals[i] = w
    return _seq_gain(cells, vals, old, n, x)


@njit(inline="always")
def _mask_gain(m, base, sign, x):
    s = 0.0
    b = 0
    while m != 0:
        if m & 1:
            xc = x[base + b]
            s += abs(xc) - abs(xc + sign)
        m >>= 1
        b += 1
    return s


@njit(cache=True)
def single_gain(g, sign, data, spec, x, cells, vals, old):
    """Decrease of the objective from adding (``sign=+1``) or removing (``-1``) group ``g``.

    ``x`` is modified and restored (scratch ``cells``/``vals``/``old``: ``wlengths[g]`` each)."""
    X, wstarts, wlengths, gw, G, B = data
    rcols, rstrides, roffsets, rw, ccols, coffsets, cw, scols, soffsets, sw = spec
    w = sign * gw[g]
    s = 0.0
    for f in range(rcols.shape[0]):
        s += rw[f] * _row_feature_gain(g, w, f, data, spec, x, cells, vals, old)
    for f in range(ccols.shape[0]):
        xc = x[coffsets[f] + np.int64(G[g, ccols[f]])]
        s += cw[f] * (abs(xc) - abs(xc + sign))
    for f in range(scols.shape[0]):
        s += sw[f] * _mask_gain(np.int64(B[g, scols[f]]), soffsets[f], sign, x)
    return s


@njit(parallel=True, cache=True)
def group_gains(groups, sign, data, spec, x, max_rows, n_chunks, out):
    """``out[i]`` = :func:`single_gain` of ``groups[i]``, in parallel.

    One chunk of groups per thread, each on its own copy of ``x`` (gains modify and restore
    it). Within a chunk, blocks of groups are scored feature by feature so one feature's
    cells stay in cache; each ``out[i]`` sums its features in :func:`single_gain`'s order
    (identical bits, independent of the number of threads).
    """
    X, wstarts, wlengths, gw, G, B = data
    rcols, rstrides, roffsets, rw, ccols, coffsets, cw, scols, soffsets, sw = spec
    n = groups.shape[0]
    per = (n + n_chunks - 1) // n_chunks
    for k in prange(n_chunks):
        c0 = k * per
        c1 = min(n, c0 + per)
        if c0 >= c1:
            continue
        local = x.copy()
        cells = np.empty(max_rows, dtype=np.int64)
        vals = np.empty(max_rows, dtype=np.float64)
        old = np.empty(max_rows, dtype=np.float64)
        for lo in range(c0, c1, BLOCK):
            hi = min(c1, lo + BLOCK)
            for i in range(lo, hi):
                out[i] = 0.0
            for f in range(rcols.shape[0]):
                for i in range(lo, hi):
                    g = groups[i]
                    out[i] += rw[f] * _row_feature_gain(g, sign * gw[g], f, data, spec, local, cells, vals, old)
            for f in range(ccols.shape[0]):
                for i in range(lo, hi):
                    xc = local[coffsets[f] + np.int64(G[groups[i], ccols[f]])]
                    out[i] += cw[f] * (abs(xc) - abs(xc + sign))
            for f in range(scols.shape[0]):
                for i in range(lo, hi):
                    out[i] += sw[f] * _mask_gain(np.int64(B[groups[i], scols[f]]), soffsets[f], sign, local)


@njit(cache=True)
def swap_gain(a, b, data, spec, x, cells, vals, old):
    """Decrease of the objective when group ``a`` leaves and group ``b`` enters; cells the two
    share net out. ``x`` is modified and restored (scratch of ``wlengths[a] + wlengths[b]``)."""
    X, wstarts, wlengths, gw, G, B = data
    rcols, rstrides, roffsets, rw, ccols, coffsets, cw, scols, soffsets, sw = spec
    wa = -gw[a]
    wb = gw[b]
    ra = wstarts[a]
    na = wlengths[a]
    rb = wstarts[b]
    nb = wlengths[b]
    s = 0.0
    for f in range(rcols.shape[0]):
        for i in range(na):
            cells[i] = _rcell(X, ra + i, f, rcols, rstrides, roffsets)
            vals[i] = wa
        for i in range(nb):
            cells[na + i] = _rcell(X, rb + i, f, rcols, rstrides, roffsets)
            vals[na + i] = wb
        s += rw[f] * _seq_gain(cells, vals, old, na + nb, x)
    for f in range(ccols.shape[0]):
        ca = coffsets[f] + np.int64(G[a, ccols[f]])
        cb = coffsets[f] + np.int64(G[b, ccols[f]])
        if ca != cb:
            xa = x[ca]
            xb = x[cb]
            s += cw[f] * ((abs(xa) - abs(xa - 1.0)) + (abs(xb) - abs(xb + 1.0)))
    for f in range(scols.shape[0]):
        ma = np.int64(B[a, scols[f]])
        mb = np.int64(B[b, scols[f]])
        s += sw[f] * (_mask_gain(ma & ~mb, soffsets[f], -1.0, x) + _mask_gain(mb & ~ma, soffsets[f], 1.0, x))
    return s


@njit(cache=True)
def apply_group(g, sign, data, spec, counts):
    """``counts += sign ·`` group ``g``'s contribution."""
    X, wstarts, wlengths, gw, G, B = data
    rcols, rstrides, roffsets, rw, ccols, coffsets, cw, scols, soffsets, sw = spec
    w = sign * gw[g]
    r0 = wstarts[g]
    r1 = r0 + wlengths[g]
    for f in range(rcols.shape[0]):
        for r in range(r0, r1):
            counts[_rcell(X, r, f, rcols, rstrides, roffsets)] += w
    for f in range(ccols.shape[0]):
        counts[coffsets[f] + np.int64(G[g, ccols[f]])] += sign
    for f in range(scols.shape[0]):
        m = np.int64(B[g, scols[f]])
        b = 0
        while m != 0:
            if m & 1:
                counts[soffsets[f] + b] += sign
            m >>= 1
            b += 1


@njit(cache=True)
def accumulate(groups, sign, data, spec, counts):
    """``counts += sign ·`` the contributions of ``groups`` (in order: deterministic sums)."""
    for i in range(groups.shape[0]):
        apply_group(groups[i], sign, data, spec, counts)


@njit(inline="always")
def _refresh_x(g, data, spec, counts, target, x):
    """``x = counts − target`` on every cell of group ``g``."""
    X, wstarts, wlengths, gw, G, B = data
    rcols, rstrides, roffsets, rw, ccols, coffsets, cw, scols, soffsets, sw = spec
    r0 = wstarts[g]
    r1 = r0 + wlengths[g]
    for f in range(rcols.shape[0]):
        for r in range(r0, r1):
            c = _rcell(X, r, f, rcols, rstrides, roffsets)
            x[c] = counts[c] - target[c]
    for f in range(ccols.shape[0]):
        c = coffsets[f] + np.int64(G[g, ccols[f]])
        x[c] = counts[c] - target[c]
    for f in range(scols.shape[0]):
        m = np.int64(B[g, scols[f]])
        b = 0
        while m != 0:
            if m & 1:
                c = soffsets[f] + b
                x[c] = counts[c] - target[c]
            m >>= 1
            b += 1


@njit(cache=True)
def apply_swap(a, b, data, spec, counts, target, x, xs):
    """Group ``a`` leaves, ``b`` enters: exact ``counts`` updated, then ``x`` and each of its copies
    ``xs`` (rows) recomputed on their cells (the same expression: the copies keep ``x``'s bits)."""
    apply_group(a, -1.0, data, spec, counts)
    apply_group(b, 1.0, data, spec, counts)
    _refresh_x(a, data, spec, counts, target, x)
    _refresh_x(b, data, spec, counts, target, x)
    for k in range(xs.shape[0]):
        _refresh_x(a, data, spec, counts, target, xs[k])
        _refresh_x(b, data, spec, counts, target, xs[k])


@njit(parallel=True, cache=True)
def gains_of(js, n, members, sign, data, spec, xs, cells, vals, old, out):
    """``out[t]`` = :func:`single_gain` of group ``members[js[t]]`` for ``t < n``, in parallel: one
    contiguous share of the batch per copy of ``x`` (``xs`` rows; gains modify and restore it) and
    per row of the scratch; each gain is the same sequential sum, whichever thread computes it."""
    n_copies = xs.shape[0]
    per = (n + n_copies - 1) // n_copies
    for k in prange(n_copies):
        for t in range(k * per, min(n, (k + 1) * per)):
            out[t] = single_gain(members[js[t]], sign, data, spec, xs[k], cells[k], vals[k], old[k])


@njit(parallel=True, cache=True)
def _swap_gains_of(a, cand, held_j, n, data, spec, xs, cells, vals, old, out):
    """``out[h]`` = :func:`swap_gain` of group ``a`` out and ``cand[held_j[h]]`` in, for ``h < n``,
    in parallel (shares as in :func:`gains_of`)."""
    n_copies = xs.shape[0]
    per = (n + n_copies - 1) // n_copies
    for k in prange(n_copies):
        for h in range(k * per, min(n, (k + 1) * per)):
            out[h] = swap_gain(a, cand[held_j[h]], data, spec, xs[k], cells[k], vals[k], old[k])


@njit(inline="always")
def _cached_gain(j, hk, hi, size, ver, version, max_stale, members, sign, data, spec, x, cells, vals, old, sp):
    """:func:`single_gain` of heap entry ``j`` against the current ``x``. With a speculation batch
    above 1 (``sp``: see :func:`synth_core.select._kernels.speculation`, plus the copies of ``x``
    and their scratch), a cache miss computes, in one parallel call, the gains of the ``batch``
    entries with the best stale keys -- those the lazy picks would recompute next -- and caches
    them for this counts version; ``x`` changes only with the version, so a cached gain has the
    bits of a fresh recomputation."""
    cval, cver, fk, fp, js, gbuf, batch, tally, xs, xcells, xvals, xold = sp
    if batch <= 1:
        return single_gain(members[j], sign, data, spec, x, cells, vals, old)
    if cver[j] != version:
        n = _stale_top(hk, hi, size, ver, cver, version, max_stale, batch, fk, fp, js)
        gains_of(js, n, members, sign, data, spec, xs, xcells, xvals, xold, gbuf)
        _cache_gains(cval, cver, js, gbuf, n, version, tally)
    return cval[j]


@njit(cache=True)
def _lazy_top(hk, hi, size, ver, version, max_stale, members, sign, max_reevals, data, spec, x, cells, vals, old, state,
              sp):
    """Pop the entry whose refreshed gain is best (lazily: the root is recomputed against the
    current counts until it still beats the next stale key, at most ``max_reevals`` times). A key
    computed fewer than ``max_stale`` accepted swaps ago counts as fresh (keys only order the
    candidates; every accepted swap is checked exactly). Recomputations go through the
    speculation cache ``sp`` (:func:`_cached_gain`: their cost changes, never their values).
    Returns (heap index, gain, new size); ``state[5]`` counts recomputations."""
    n_re = 0
    while True:
        j = hi[0]
        if version - ver[j] < max_stale:
            g = hk[0]
            break
        g = _cached_gain(j, hk, hi, size, ver, version, max_stale, members, sign, data, spec, x, cells, vals, old, sp)
        ver[j] = version
        n_re += 1
        state[5] += 1
        q = _second_best(hk, hi, size)
        if q < 0 or not _better(hk[q], hi[q], g, j) or n_re >= max_reevals:
            break
        hk[0] = g
        _sift_down(hk, hi, 0, size)
    size = _pop(hk, hi, size)
    return j, g, size


@njit(cache=True)
def swap_search(
    sub, in_sub, cand, rk, ri, rver, rlast, ak, ai, aver, state, max_accept, pairs, max_fail, max_reevals, max_stale, eps,
    data, spec, counts, target, x, cells, vals, old, out_swaps, out_gain, rsp, asp,
):
    """Greedy swaps from two heaps of single-group gains (built by the caller each round).

    ``rk/ri``: removal gains keyed by position in ``sub`` (the subset's groups); ``ak/ai``:
    addition gains keyed by index into ``cand``. ``rver``/``aver`` record the counts version of
    each key (the version grows with every accepted swap: a key of the current version is
    fresh). ``state = [removal heap size, addition heap size, consecutive failures, version,
    unused, recomputations, swap evaluations]`` persists between calls.

    Each step pops the best (refreshed) removal candidate and up to ``pairs`` best (refreshed)
    addition candidates, evaluates each exact swap gain and applies the best one if it exceeds
    ``eps`` (a strict decrease). Unused addition candidates go back with their fresh keys; a
    removal candidate without an improving partner is dropped for this round. Stops after
    ``max_accept`` swaps, an empty heap or ``max_fail`` consecutive failures. Returns the number
    of swaps; ``out_swaps[s] = (removed group, added group)``, ``out_gain[s]`` its exact gain.
    A removal candidate dropped at position ``p`` leaves its refreshed key in ``rlast[p]``.

    ``rsp``/``asp``: the heaps' speculation caches (:func:`_cached_gain`). With a batch above 1
    the recomputations are done ahead, a batch at a time on all threads, and a removal
    candidate's swaps with its ``pairs`` partners are evaluated together in parallel (the
    partners are popped first: the pops never depend on the swap gains); the picks, their order
    and every gain stay those of the one-at-a-time search, so the swaps do not depend on the
    thread count or the batch size.
    """
    rsize, asize, fails, version = _load_search(state)
    held_k = np.empty(pairs, dtype=np.float64)
    held_j = np.empty(pairs, dtype=np.int64)
    pair_k = np.empty(pairs, dtype=np.float64)
    pair_j = np.empty(pairs, dtype=np.int64)
    pair_g = np.empty(pairs, dtype=np.float64)
    xs, xcells, xvals, xold = rsp[8], rsp[9], rsp[10], rsp[11]
    in_parallel = asp[6] > 1
    acc = 0
    while acc < max_accept and rsize > 0 and asize > 0 and fails < max_fail:
        p, ga, rsize = _lazy_top(rk, ri, rsize, rver, version, max_stale, sub, -1.0, max_reevals, data, spec, x,
                                 cells, vals, old, state, rsp)
        a = sub[p]
        n_pairs = 0
        while n_pairs < pairs and asize > 0:
            j, gb, asize = _lazy_top(ak, ai, asize, aver, version, max_stale, cand, 1.0, max_reevals, data, spec, x,
                                     cells, vals, old, state, asp)
            pair_k[n_pairs] = gb
            pair_j[n_pairs] = j
            n_pairs += 1
        if in_parallel:
            _swap_gains_of(a, cand, pair_j, n_pairs, data, spec, xs, xcells, xvals, xold, pair_g)
        else:
            for h in range(n_pairs):
                pair_g[h] = swap_gain(a, cand[pair_j[h]], data, spec, x, cells, vals, old)
        state[6] += n_pairs
        n_held = 0
        best = eps
        best_h = -1
        for h in range(n_pairs):
            n_held, best, best_h = _hold(held_k, held_j, n_held, pair_k[h], pair_j[h], pair_g[h], best, best_h)
        asize = _push_held(ak, ai, asize, held_k, held_j, n_held, best_h)
        if best_h >= 0:
            b = cand[held_j[best_h]]
            apply_swap(a, b, data, spec, counts, target, x, xs)
            _record_swap(in_sub, sub, p, a, b, best, out_swaps, out_gain, acc)
            acc += 1
            fails = 0
            version += 1
        else:
            rlast[p] = ga
            fails += 1
    _save_search(state, rsize, asize, fails, version)
    return acc
