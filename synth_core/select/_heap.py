"""Binary max-heaps of (key, index) pairs in two parallel arrays, for numba kernels.

Order: larger key first, ties to the smaller index, so every pop sequence is deterministic.
The lazy greedy searches of trimming and refinement (flat and grouped) keep stale gains in
these heaps. Every operation is O(log size); no allocation.

The swap searches (flat and grouped) share more than the heaps, and it lives here too: they
carry the same four counters between kernel calls (:func:`load_search`, :func:`save_search`),
hold the addition candidates popped for a removal candidate while their swaps are evaluated
(:func:`hold`), return the unused ones (:func:`push_held`) and book an accepted swap in the
subset and the output buffers (:func:`record_swap`); :func:`stale_top` finds the entries whose
gains a lazy pick would recompute next, so that both searches can compute them ahead, in parallel.
"""

from __future__ import annotations

from numba import njit


@njit(inline="always")
def better(ka, ia, kb, ib):
    """True when (ka, ia) sorts before (kb, ib)."""
    return ka > kb or (ka == kb and ia < ib)


@njit(inline="always")
def _put(hk, hi, pos, key, idx):
    """Write the entry (key, idx) at ``pos``."""
    hk[pos] = key
    hi[pos] = idx


@njit(cache=True)
def sift_down(hk, hi, pos, size):
    """Move the entry at ``pos`` down until both children sort after it."""
    k = hk[pos]
    i = hi[pos]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and better(hk[child + 1], hi[child + 1], hk[child], hi[child]):
            child += 1
        if not better(hk[child], hi[child], k, i):
            break
        _put(hk, hi, pos, hk[child], hi[child])
        pos = child
    _put(hk, hi, pos, k, i)


@njit(cache=True)
def sift_up(hk, hi, pos):
    """Move the entry at ``pos`` up until its parent sorts before it."""
    k = hk[pos]
    i = hi[pos]
    while pos > 0:
        parent = (pos - 1) // 2
        if not better(k, i, hk[parent], hi[parent]):
            break
        _put(hk, hi, pos, hk[parent], hi[parent])
        pos = parent
    _put(hk, hi, pos, k, i)


@njit(cache=True)
def heapify(hk, hi, size):
    """Max-heap over ``hk[:size]`` / ``hi[:size]``, in place (O(size))."""
    for pos in range(size // 2 - 1, -1, -1):
        sift_down(hk, hi, pos, size)


@njit(cache=True)
def pop(hk, hi, size):
    """Remove the root; returns the new size."""
    size -= 1
    if size > 0:
        _put(hk, hi, 0, hk[size], hi[size])
        sift_down(hk, hi, 0, size)
    return size


@njit(cache=True)
def push(hk, hi, size, key, idx):
    """Insert (key, idx) at ``size``; returns the new size (the arrays must have room)."""
    _put(hk, hi, size, key, idx)
    sift_up(hk, hi, size)
    return size + 1


@njit(cache=True)
def second_best(hk, hi, size):
    """Position of the best entry below the root (-1 if none)."""
    if size < 2:
        return -1
    if size > 2 and better(hk[2], hi[2], hk[1], hi[1]):
        return 2
    return 1


@njit(cache=True)
def stale_top(hk, hi, size, ver, cver, version, max_stale, limit, fk, fp, out):
    """Heap indices of up to ``limit`` entries of the max-heap ``hk``/``hi`` that a lazy pick would
    recompute at ``version`` (key computed ``max_stale`` or more versions ago, ``ver``; no gain
    cached at ``version``, ``cver``),
    best key first: a best-first walk down the heap, which visits at most ``4 * limit`` entries
    (``fk``/``fp``: scratch for the walk's frontier, room for ``4 * limit + 2``). The root comes
    first when it qualifies. Returns how many were written to ``out``."""
    n_out = 0
    if size == 0:
        return 0
    fsize = push(fk, fp, 0, hk[0], 0)
    visited = 0
    while fsize > 0 and n_out < limit and visited < 4 * limit:
        pos = fp[0]
        fsize = pop(fk, fp, fsize)
        visited += 1
        j = hi[pos]
        if version - ver[j] >= max_stale and cver[j] != version:
            out[n_out] = j
            n_out += 1
        for child in (2 * pos + 1, 2 * pos + 2):
            if child < size:
                fsize = push(fk, fp, fsize, hk[child], child)
    return n_out


@njit(inline="always")
def cache_gains(cval, cver, js, gains, n, version, tally):
    """Cache the ``n`` gains computed ahead for heap entries ``js`` (:func:`stale_top`'s pick) as
    valid at ``version``, and count the parallel call and its gains in ``tally``."""
    tally[0] += 1
    tally[1] += n
    for t in range(n):
        cval[js[t]] = gains[t]
        cver[js[t]] = version


@njit(inline="always")
def hold(held_k, held_j, n_held, key, idx, gain, best, best_h):
    """Hold the addition candidate (``key``, ``idx``) popped for the current removal candidate,
    whose swap gain is ``gain``; returns (held count, best gain, position of the best held
    candidate), the best changing only on a strictly larger gain (ties keep the earlier)."""
    held_k[n_held] = key
    held_j[n_held] = idx
    if gain > best:
        best = gain
        best_h = n_held
    return n_held + 1, best, best_h


@njit(inline="always")
def push_held(hk, hi, size, held_k, held_j, n_held, used):
    """Return the ``n_held`` held entries except the one at ``used`` (-1: none used) to the
    heap, with the keys they were refreshed to; returns the new size."""
    for h in range(n_held):
        if h != used:
            size = push(hk, hi, size, held_k[h], held_j[h])
    return size


@njit(inline="always")
def record_swap(in_subset, members, p, a, b, gain, out_swaps, out_gain, acc):
    """Book an accepted swap: ``a`` (at position ``p`` of ``members``) leaves, ``b`` takes
    its place; ``(a, b)`` and ``gain`` become output ``acc``."""
    in_subset[a] = 0
    in_subset[b] = 1
    members[p] = b
    out_swaps[acc, 0] = a
    out_swaps[acc, 1] = b
    out_gain[acc] = gain


@njit(inline="always")
def load_search(state):
    """(removal heap size, addition heap size, consecutive failures, counts version): the part
    of a swap search's state that both searches carry between kernel calls in ``state[:4]``."""
    return state[0], state[1], state[2], state[3]


@njit(inline="always")
def save_search(state, rem_size, add_size, fails, version):
    """Store what :func:`load_search` loads, for the next kernel call."""
    state[0] = rem_size
    state[1] = add_size
    state[2] = fails
    state[3] = version
