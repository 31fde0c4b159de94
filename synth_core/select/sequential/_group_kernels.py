"""Numba kernels of the sequential (group) selection.

A group's contribution to the objective's cells is computed on the fly from its codes; nothing of
size groups × cells is ever materialised. Two tuples carry the inputs:

* ``data = (row_codes, wstarts, wlengths, group_w, group_codes, group_masks)``: ``row_codes`` the
  weighted-row codes (uint8, one row per weighted row, C-contiguous), group ``g``'s rows
  ``wstarts[g] : wstarts[g] + wlengths[g]``, each of weight ``group_w[g]``; ``group_codes``
  (groups × columns, uint8) the per-group codes; ``group_masks`` (groups × columns, uint16) the
  per-group bucket bitmasks (the arrays of a :class:`~synth_core.select.sequential._sequences.GroupedTable`);
* ``spec = (rcols, rstrides, roffsets, rweights, ccols, coffsets, cweights, scols, soffsets,
  sweights)``: row features (prefix ``r``, cell ``roffsets[f] + Σ_k row_codes[r, rcols[f, k]] ·
  rstrides[f, k]``), per-group code features (``c``, cell ``coffsets[f] + group_codes[g,
  ccols[f]]``) and per-group bitmask features (``s``, cells ``soffsets[f] + b`` for every bit
  ``b`` of ``group_masks[g, scols[f]]``); ``rweights``/``cweights``/``sweights`` are the features'
  weights per unit count (the objective is ``Σ_f w_f Σ_cells |count − target|``).

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

from typing import NamedTuple

import numpy as np
from numba import njit, prange

# heapify is re-exported for the callers; the import sorter leaves the aliased names in one statement
from synth_core.select._heap import (  # isort: skip
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

# slots of the swap search's carried state (:func:`swap_search`), after the four that both swap
# searches share (``STATE_REM_SIZE`` ... ``STATE_VERSION`` of :mod:`synth_core.select._heap`); slot 4
# is unused here (the flat search counts its removal recomputations there)
STATE_RECOMPUTATIONS = 5  # lazy recomputations of single-group gains, both heaps
STATE_EVALUATIONS = 6  # exact swap-gain evaluations
STATE_SLOTS = 7  # length of the state array


class GroupSpeculation(NamedTuple):
    """A heap's speculation cache in the grouped search (see :func:`_cached_gain`): the fields of
    :class:`synth_core.select._kernels.Speculation`, then copies of ``x`` and their scratch for the
    parallel calls (shared by the two heaps of a round; no rows without speculation)."""

    gains: np.ndarray  # (entries,) float64: the gain cached per entry id, ...
    versions: np.ndarray  # (entries,) int64: ... valid at this counts version (-1: none)
    frontier_keys: np.ndarray  # scratch of the walk that picks a batch (_heap.stale_top) ...
    frontier_pos: np.ndarray  # ...
    picked: np.ndarray  # (batch,) int64: the entries of the batch computed ahead, ...
    picked_gains: np.ndarray  # (batch,) float64: ... and their gains
    batch: int  # entries computed per parallel call (1: no speculation)
    tally: np.ndarray  # (2,) int64: parallel calls and the gains computed in them (_heap.TALLY_*)
    x_copies: np.ndarray  # (copies, cells) float64: one copy of x per parallel share, kept equal to x
    copy_cells: np.ndarray  # (copies, max_rows) int64: the scratch of single_gain / swap_gain, per copy
    copy_vals: np.ndarray  # (copies, max_rows) float64
    copy_old: np.ndarray  # (copies, max_rows) float64


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
        before = x[c]
        old[i] = before
        after = before + vals[i]
        s += abs(before) - abs(after)
        x[c] = after
    for i in range(n - 1, -1, -1):
        x[cells[i]] = old[i]
    return s


@njit(inline="always")
def _rcell(row_codes, r, f, rcols, rstrides, roffsets):
    """Cell of weighted row ``r`` in row feature ``f`` (its up to three columns ``rcols[f, k]``)."""
    return (roffsets[f] + np.int64(row_codes[r, rcols[f, 0]]) * rstrides[f, 0]
            + np.int64(row_codes[r, rcols[f, 1]]) * rstrides[f, 1]
            + np.int64(row_codes[r, rcols[f, 2]]) * rstrides[f, 2])


@njit(inline="always")
def _row_feature_gain(g, w, f, data, spec, x, cells, vals, old):
    """Gain of moving group ``g``'s rows by ``w`` each in row feature ``f``."""
    row_codes, wstarts, wlengths, group_w, group_codes, group_masks = data
    rcols, rstrides, roffsets, rweights, ccols, coffsets, cweights, scols, soffsets, sweights = spec
    r0 = wstarts[g]
    n = wlengths[g]
    for i in range(n):
        cells[i] = _rcell(row_codes, r0 + i, f, rcols, rstrides, roffsets)
        vals[i] = w
    return _seq_gain(cells, vals, old, n, x)


@njit(inline="always")
def _mask_gain(mask, base, sign, x):
    """Gain of moving the cells ``base + bit`` of every set bit of ``mask`` by ``sign``."""
    s = 0.0
    bit = 0
    while mask != 0:
        if mask & 1:
            xc = x[base + bit]
            s += abs(xc) - abs(xc + sign)
        mask >>= 1
        bit += 1
    return s


@njit(cache=True)
def single_gain(g, sign, data, spec, x, cells, vals, old):
    """Decrease of the objective from adding (``sign=+1``) or removing (``-1``) group ``g``.

    ``x`` is modified and restored (scratch ``cells``/``vals``/``old``: ``wlengths[g]`` each)."""
    row_codes, wstarts, wlengths, group_w, group_codes, group_masks = data
    rcols, rstrides, roffsets, rweights, ccols, coffsets, cweights, scols, soffsets, sweights = spec
    w = sign * group_w[g]
    s = 0.0
    for f in range(rcols.shape[0]):
        s += rweights[f] * _row_feature_gain(g, w, f, data, spec, x, cells, vals, old)
    for f in range(ccols.shape[0]):
        xc = x[coffsets[f] + np.int64(group_codes[g, ccols[f]])]
        s += cweights[f] * (abs(xc) - abs(xc + sign))
    for f in range(scols.shape[0]):
        s += sweights[f] * _mask_gain(np.int64(group_masks[g, scols[f]]), soffsets[f], sign, x)
    return s


@njit(parallel=True, cache=True)
def group_gains(groups, sign, data, spec, x, max_rows, n_chunks, out):
    """``out[i]`` = :func:`single_gain` of ``groups[i]``, in parallel.

    One chunk of groups per thread, each on its own copy of ``x`` (gains modify and restore
    it). Within a chunk, blocks of groups are scored feature by feature so one feature's
    cells stay in cache; each ``out[i]`` sums its features in :func:`single_gain`'s order
    (identical bits, independent of the number of threads).
    """
    row_codes, wstarts, wlengths, group_w, group_codes, group_masks = data
    rcols, rstrides, roffsets, rweights, ccols, coffsets, cweights, scols, soffsets, sweights = spec
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
                    out[i] += rweights[f] * _row_feature_gain(g, sign * group_w[g], f, data, spec, local, cells, vals,
                                                              old)
            for f in range(ccols.shape[0]):
                for i in range(lo, hi):
                    xc = local[coffsets[f] + np.int64(group_codes[groups[i], ccols[f]])]
                    out[i] += cweights[f] * (abs(xc) - abs(xc + sign))
            for f in range(scols.shape[0]):
                for i in range(lo, hi):
                    out[i] += sweights[f] * _mask_gain(np.int64(group_masks[groups[i], scols[f]]), soffsets[f], sign,
                                                       local)


@njit(cache=True)
def swap_gain(a, b, data, spec, x, cells, vals, old):
    """Decrease of the objective when group ``a`` leaves and group ``b`` enters; cells the two
    share net out. ``x`` is modified and restored (scratch of ``wlengths[a] + wlengths[b]``)."""
    row_codes, wstarts, wlengths, group_w, group_codes, group_masks = data
    rcols, rstrides, roffsets, rweights, ccols, coffsets, cweights, scols, soffsets, sweights = spec
    wa = -group_w[a]
    wb = group_w[b]
    ra = wstarts[a]
    na = wlengths[a]
    rb = wstarts[b]
    nb = wlengths[b]
    s = 0.0
    for f in range(rcols.shape[0]):
        for i in range(na):
            cells[i] = _rcell(row_codes, ra + i, f, rcols, rstrides, roffsets)
            vals[i] = wa
        for i in range(nb):
            cells[na + i] = _rcell(row_codes, rb + i, f, rcols, rstrides, roffsets)
            vals[na + i] = wb
        s += rweights[f] * _seq_gain(cells, vals, old, na + nb, x)
    for f in range(ccols.shape[0]):
        ca = coffsets[f] + np.int64(group_codes[a, ccols[f]])
        cb = coffsets[f] + np.int64(group_codes[b, ccols[f]])
        if ca != cb:
            xa = x[ca]
            xb = x[cb]
            s += cweights[f] * ((abs(xa) - abs(xa - 1.0)) + (abs(xb) - abs(xb + 1.0)))
    for f in range(scols.shape[0]):
        ma = np.int64(group_masks[a, scols[f]])
        mb = np.int64(group_masks[b, scols[f]])
        s += sweights[f] * (_mask_gain(ma & ~mb, soffsets[f], -1.0, x)
                            + _mask_gain(mb & ~ma, soffsets[f], 1.0, x))
    return s


@njit(cache=True)
def apply_group(g, sign, data, spec, counts):
    """``counts += sign ·`` group ``g``'s contribution."""
    row_codes, wstarts, wlengths, group_w, group_codes, group_masks = data
    rcols, rstrides, roffsets, rweights, ccols, coffsets, cweights, scols, soffsets, sweights = spec
    w = sign * group_w[g]
    r0 = wstarts[g]
    r1 = r0 + wlengths[g]
    for f in range(rcols.shape[0]):
        for r in range(r0, r1):
            counts[_rcell(row_codes, r, f, rcols, rstrides, roffsets)] += w
    for f in range(ccols.shape[0]):
        counts[coffsets[f] + np.int64(group_codes[g, ccols[f]])] += sign
    for f in range(scols.shape[0]):
        mask = np.int64(group_masks[g, scols[f]])
        bit = 0
        while mask != 0:
            if mask & 1:
                counts[soffsets[f] + bit] += sign
            mask >>= 1
            bit += 1


@njit(cache=True)
def accumulate(groups, sign, data, spec, counts):
    """``counts += sign ·`` the contributions of ``groups`` (in order: deterministic sums)."""
    for i in range(groups.shape[0]):
        apply_group(groups[i], sign, data, spec, counts)


@njit(inline="always")
def _refresh_x(g, data, spec, counts, target, x):
    """``x = counts − target`` on every cell of group ``g``."""
    row_codes, wstarts, wlengths, group_w, group_codes, group_masks = data
    rcols, rstrides, roffsets, rweights, ccols, coffsets, cweights, scols, soffsets, sweights = spec
    r0 = wstarts[g]
    r1 = r0 + wlengths[g]
    for f in range(rcols.shape[0]):
        for r in range(r0, r1):
            c = _rcell(row_codes, r, f, rcols, rstrides, roffsets)
            x[c] = counts[c] - target[c]
    for f in range(ccols.shape[0]):
        c = coffsets[f] + np.int64(group_codes[g, ccols[f]])
        x[c] = counts[c] - target[c]
    for f in range(scols.shape[0]):
        mask = np.int64(group_masks[g, scols[f]])
        bit = 0
        while mask != 0:
            if mask & 1:
                c = soffsets[f] + bit
                x[c] = counts[c] - target[c]
            mask >>= 1
            bit += 1


@njit(cache=True)
def apply_swap(a, b, data, spec, counts, target, x, x_copies):
    """Group ``a`` leaves, ``b`` enters: exact ``counts`` updated, then ``x`` and each of its copies
    ``x_copies`` (rows) recomputed on their cells (the same expression: the copies keep ``x``'s
    bits)."""
    apply_group(a, -1.0, data, spec, counts)
    apply_group(b, 1.0, data, spec, counts)
    _refresh_x(a, data, spec, counts, target, x)
    _refresh_x(b, data, spec, counts, target, x)
    for k in range(x_copies.shape[0]):
        _refresh_x(a, data, spec, counts, target, x_copies[k])
        _refresh_x(b, data, spec, counts, target, x_copies[k])


@njit(parallel=True, cache=True)
def gains_of(picked, n, members, sign, data, spec, x_copies, cells, vals, old, out):
    """``out[t]`` = :func:`single_gain` of group ``members[picked[t]]`` for ``t < n``, in parallel:
    one contiguous share of the batch per copy of ``x`` (``x_copies`` rows; gains modify and
    restore it) and per row of the scratch; each gain is the same sequential sum, whichever thread
    computes it."""
    n_copies = x_copies.shape[0]
    per = (n + n_copies - 1) // n_copies
    for k in prange(n_copies):
        for t in range(k * per, min(n, (k + 1) * per)):
            out[t] = single_gain(members[picked[t]], sign, data, spec, x_copies[k], cells[k], vals[k], old[k])


@njit(parallel=True, cache=True)
def _swap_gains_of(a, cand, pair_ids, n, data, spec, x_copies, cells, vals, old, out):
    """``out[h]`` = :func:`swap_gain` of group ``a`` out and ``cand[pair_ids[h]]`` in, for ``h < n``,
    in parallel (shares as in :func:`gains_of`)."""
    n_copies = x_copies.shape[0]
    per = (n + n_copies - 1) // n_copies
    for k in prange(n_copies):
        for h in range(k * per, min(n, (k + 1) * per)):
            out[h] = swap_gain(a, cand[pair_ids[h]], data, spec, x_copies[k], cells[k], vals[k], old[k])


@njit(inline="always")
def _cached_gain(j, heap_keys, heap_ids, size, key_versions, version, max_stale, members, sign, data, spec, x, cells,
                 vals, old, cache):
    """:func:`single_gain` of heap entry ``j`` against the current ``x``. With a speculation batch
    above 1 (``cache``, a :class:`GroupSpeculation`), a cache miss computes, in one parallel call,
    the gains of the ``batch`` entries with the best stale keys -- those the lazy picks would
    recompute next -- and caches them for this counts version; ``x`` changes only with the
    version, so a cached gain has the bits of a fresh recomputation."""
    if cache.batch <= 1:
        return single_gain(members[j], sign, data, spec, x, cells, vals, old)
    if cache.versions[j] != version:
        n = _stale_top(heap_keys, heap_ids, size, key_versions, cache.versions, version, max_stale, cache.batch,
                       cache.frontier_keys, cache.frontier_pos, cache.picked)
        gains_of(cache.picked, n, members, sign, data, spec, cache.x_copies, cache.copy_cells, cache.copy_vals,
                 cache.copy_old, cache.picked_gains)
        _cache_gains(cache.gains, cache.versions, cache.picked, cache.picked_gains, n, version, cache.tally)
    return cache.gains[j]


@njit(cache=True)
def _lazy_top(heap_keys, heap_ids, size, key_versions, version, max_stale, members, sign, max_reevals, data, spec, x,
              cells, vals, old, state, cache):
    """Pop the entry whose refreshed gain is best (lazily: the root is recomputed against the
    current counts until it still beats the next stale key, at most ``max_reevals`` times). A key
    computed fewer than ``max_stale`` accepted swaps ago counts as fresh (keys only order the
    candidates; every accepted swap is checked exactly). Recomputations go through the
    speculation cache ``cache`` (:func:`_cached_gain`: their cost changes, never their values).
    Returns (heap id, gain, new size); ``state[STATE_RECOMPUTATIONS]`` counts recomputations."""
    n_recomputed = 0
    while True:
        j = heap_ids[0]
        if version - key_versions[j] < max_stale:
            g = heap_keys[0]
            break
        g = _cached_gain(j, heap_keys, heap_ids, size, key_versions, version, max_stale, members, sign, data, spec, x,
                         cells, vals, old, cache)
        key_versions[j] = version
        n_recomputed += 1
        state[STATE_RECOMPUTATIONS] += 1
        runner_up = _second_best(heap_keys, heap_ids, size)
        if (runner_up < 0 or not _better(heap_keys[runner_up], heap_ids[runner_up], g, j)
                or n_recomputed >= max_reevals):
            break
        heap_keys[0] = g
        _sift_down(heap_keys, heap_ids, 0, size)
    size = _pop(heap_keys, heap_ids, size)
    return j, g, size


@njit(cache=True)
def swap_search(
    sub, in_sub, cand, rem_keys, rem_ids, rem_versions, rem_last, add_keys, add_ids, add_versions, state, max_accept,
    pairs, max_fail, max_reevals, max_stale, eps, data, spec, counts, target, x, cells, vals, old, out_swaps, out_gain,
    rem_cache, add_cache,
):
    """Greedy swaps from two heaps of single-group gains (built by the caller each round).

    ``rem_keys/rem_ids``: removal gains and the positions in ``sub`` (the subset's groups) they
    belong to; ``add_keys/add_ids``: addition gains and their indices into ``cand``.
    ``rem_versions``/``add_versions`` record, per id, the counts version of its key (the version
    grows with every accepted swap: a key of the current version is fresh). ``state`` (int64,
    ``STATE_SLOTS`` long: removal heap size, addition heap size, consecutive failures, version,
    unused, recomputations, swap evaluations, at the ``STATE_*`` slots) persists between calls.

    Each step pops the best (refreshed) removal candidate and up to ``pairs`` best (refreshed)
    addition candidates, evaluates each exact swap gain and applies the best one if it exceeds
    ``eps`` (a strict decrease). Unused addition candidates go back with their fresh keys; a
    removal candidate without an improving partner is dropped for this round. Stops after
    ``max_accept`` swaps, an empty heap or ``max_fail`` consecutive failures. Returns the number
    of swaps; ``out_swaps[s] = (removed group, added group)``, ``out_gain[s]`` its exact gain.
    A removal candidate dropped at position ``p`` leaves its refreshed key in ``rem_last[p]``.

    ``rem_cache``/``add_cache``: the heaps' speculation caches (:class:`GroupSpeculation`,
    :func:`_cached_gain`). With a batch above 1 the recomputations are done ahead, a batch at a
    time on all threads, and a removal candidate's swaps with its ``pairs`` partners are evaluated
    together in parallel (the partners are popped first: the pops never depend on the swap
    gains); the picks, their order and every gain stay those of the one-at-a-time search, so the
    swaps do not depend on the thread count or the batch size.
    """
    rem_size, add_size, fails, version = _load_search(state)
    held_keys = np.empty(pairs, dtype=np.float64)
    held_ids = np.empty(pairs, dtype=np.int64)
    pair_keys = np.empty(pairs, dtype=np.float64)
    pair_ids = np.empty(pairs, dtype=np.int64)
    pair_gains = np.empty(pairs, dtype=np.float64)
    # the copies of x are the same arrays in both caches
    x_copies, copy_cells, copy_vals, copy_old = (rem_cache.x_copies, rem_cache.copy_cells, rem_cache.copy_vals,
                                                 rem_cache.copy_old)
    in_parallel = add_cache.batch > 1
    n_accepted = 0
    while n_accepted < max_accept and rem_size > 0 and add_size > 0 and fails < max_fail:
        p, ga, rem_size = _lazy_top(rem_keys, rem_ids, rem_size, rem_versions, version, max_stale, sub, -1.0,
                                    max_reevals, data, spec, x, cells, vals, old, state, rem_cache)
        a = sub[p]
        n_pairs = 0
        while n_pairs < pairs and add_size > 0:
            j, gb, add_size = _lazy_top(add_keys, add_ids, add_size, add_versions, version, max_stale, cand, 1.0,
                                        max_reevals, data, spec, x, cells, vals, old, state, add_cache)
            pair_keys[n_pairs] = gb
            pair_ids[n_pairs] = j
            n_pairs += 1
        if in_parallel:
            _swap_gains_of(a, cand, pair_ids, n_pairs, data, spec, x_copies, copy_cells, copy_vals, copy_old,
                           pair_gains)
        else:
            for h in range(n_pairs):
                pair_gains[h] = swap_gain(a, cand[pair_ids[h]], data, spec, x, cells, vals, old)
        state[STATE_EVALUATIONS] += n_pairs
        n_held = 0
        best = eps
        best_held = -1
        for h in range(n_pairs):
            n_held, best, best_held = _hold(held_keys, held_ids, n_held, pair_keys[h], pair_ids[h], pair_gains[h], best,
                                            best_held)
        add_size = _push_held(add_keys, add_ids, add_size, held_keys, held_ids, n_held, best_held)
        if best_held >= 0:
            b = cand[held_ids[best_held]]
            apply_swap(a, b, data, spec, counts, target, x, x_copies)
            _record_swap(in_sub, sub, p, a, b, best, out_swaps, out_gain, n_accepted)
            n_accepted += 1
            fails = 0
            version += 1
        else:
            rem_last[p] = ga
            fails += 1
    _save_search(state, rem_size, add_size, fails, version)
    return n_accepted
