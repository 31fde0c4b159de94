"""Binary max-heaps of (key, id) pairs in two parallel arrays (``keys``, ``ids``), for numba kernels.

Order: larger key first, ties to the smaller id, so every pop sequence is deterministic.
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
def _put(keys, ids, pos, key, idx):
    """Write the entry (key, idx) at ``pos``."""
    keys[pos] = key
    ids[pos] = idx


@njit(cache=True)
def sift_down(keys, ids, pos, size):
    """Move the entry at ``pos`` down until both children sort after it."""
    key = keys[pos]
    idx = ids[pos]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and better(keys[child + 1], ids[child + 1], keys[child], ids[child]):
            child += 1
        if not better(keys[child], ids[child], key, idx):
            break
        _put(keys, ids, pos, keys[child], ids[child])
        pos = child
    _put(keys, ids, pos, key, idx)


@njit(cache=True)
def sift_up(keys, ids, pos):
    """Move the entry at ``pos`` up until its parent sorts before it."""
    key = keys[pos]
    idx = ids[pos]
    while pos > 0:
        parent = (pos - 1) // 2
        if not better(key, idx, keys[parent], ids[parent]):
            break
        _put(keys, ids, pos, keys[parent], ids[parent])
        pos = parent
    _put(keys, ids, pos, key, idx)


@njit(cache=True)
def heapify(keys, ids, size):
    """Max-heap over ``keys[:size]`` / ``ids[:size]``, in place (O(size))."""
    for pos in range(size // 2 - 1, -1, -1):
        sift_down(keys, ids, pos, size)


@njit(cache=True)
def pop(keys, ids, size):
    """Remove the root; returns the new size."""
    size -= 1
    if size > 0:
        _put(keys, ids, 0, keys[size], ids[size])
        sift_down(keys, ids, 0, size)
    return size


@njit(cache=True)
def push(keys, ids, size, key, idx):
    """Insert (key, idx) at ``size``; returns the new size (the arrays must have room)."""
    _put(keys, ids, size, key, idx)
    sift_up(keys, ids, size)
    return size + 1


@njit(cache=True)
def second_best(keys, ids, size):
    """Position of the best entry below the root (-1 if none)."""
    if size < 2:
        return -1
    if size > 2 and better(keys[2], ids[2], keys[1], ids[1]):  # positions 1 and 2: the root's children
        return 2
    return 1


@njit(cache=True)
def stale_top(keys, ids, size, key_versions, cached_versions, version, max_stale, limit, frontier_keys,
              frontier_pos, out):
    """Ids of up to ``limit`` entries of the max-heap ``keys``/``ids`` that a lazy pick would
    recompute at ``version`` (key computed ``max_stale`` or more versions ago, ``key_versions``;
    no gain cached at ``version``, ``cached_versions``; both indexed by id),
    best key first: a best-first walk down the heap, which visits at most ``4 * limit`` entries
    (``frontier_keys``/``frontier_pos``: scratch for the walk's frontier, a heap of (key, heap
    position), room for ``4 * limit + 2``). The root comes first when it qualifies. Returns how
    many were written to ``out``."""
    n_out = 0
    if size == 0:
        return 0
    frontier_size = push(frontier_keys, frontier_pos, 0, keys[0], 0)
    visited = 0
    while frontier_size > 0 and n_out < limit and visited < 4 * limit:
        pos = frontier_pos[0]
        frontier_size = pop(frontier_keys, frontier_pos, frontier_size)
        visited += 1
        j = ids[pos]
        if version - key_versions[j] >= max_stale and cached_versions[j] != version:
            out[n_out] = j
            n_out += 1
        for child in (2 * pos + 1, 2 * pos + 2):
            if child < size:
                frontier_size = push(frontier_keys, frontier_pos, frontier_size, keys[child], child)
    return n_out


# slots of a speculation cache's tally (an int64 array of 2)
TALLY_CALLS = 0  # parallel calls that computed gains ahead
TALLY_GAINS = 1  # gains computed in them


@njit(inline="always")
def cache_gains(cached_gains, cached_versions, picked, gains, n, version, tally):
    """Cache the ``n`` gains computed ahead for heap entries ``picked`` (:func:`stale_top`'s pick) as
    valid at ``version``, and count the parallel call and its gains in ``tally``."""
    tally[TALLY_CALLS] += 1
    tally[TALLY_GAINS] += n
    for t in range(n):
        cached_gains[picked[t]] = gains[t]
        cached_versions[picked[t]] = version


@njit(inline="always")
def hold(held_keys, held_ids, n_held, key, idx, gain, best, best_held):
    """Hold the addition candidate (``key``, ``idx``) popped for the current removal candidate,
    whose swap gain is ``gain``; returns (held count, best gain, position of the best held
    candidate), the best changing only on a strictly larger gain (ties keep the earlier)."""
    held_keys[n_held] = key
    held_ids[n_held] = idx
    if gain > best:
        best = gain
        best_held = n_held
    return n_held + 1, best, best_held


@njit(inline="always")
def push_held(keys, ids, size, held_keys, held_ids, n_held, used):
    """Return the ``n_held`` held entries except the one at ``used`` (-1: none used) to the
    heap, with the keys they were refreshed to; returns the new size."""
    for h in range(n_held):
        if h != used:
            size = push(keys, ids, size, held_keys[h], held_ids[h])
    return size


# columns of a search's output buffer of swaps, (capacity, 2) int64
SWAP_REMOVED = 0
SWAP_ADDED = 1


@njit(inline="always")
def record_swap(in_subset, members, p, a, b, gain, out_swaps, out_gain, slot):
    """Book an accepted swap: ``a`` (at position ``p`` of ``members``) leaves, ``b`` takes
    its place; ``(a, b)`` and ``gain`` become output ``slot``."""
    in_subset[a] = 0
    in_subset[b] = 1
    members[p] = b
    out_swaps[slot, SWAP_REMOVED] = a
    out_swaps[slot, SWAP_ADDED] = b
    out_gain[slot] = gain


# slots of a swap search's carried state (an int64 array) that both searches share; the flat and
# the grouped search put their counters after them (``STATE_*`` of :mod:`synth_core.select._kernels`
# and :mod:`synth_core.select.sequential._group_kernels`)
STATE_REM_SIZE = 0  # entries left in the removal heap
STATE_ADD_SIZE = 1  # entries left in the addition heap
STATE_FAILS = 2  # consecutive removal candidates without an improving partner
STATE_VERSION = 3  # counts version: grows by one with every accepted swap


@njit(inline="always")
def load_search(state):
    """(removal heap size, addition heap size, consecutive failures, counts version): the part
    of a swap search's state that both searches carry between kernel calls."""
    return state[STATE_REM_SIZE], state[STATE_ADD_SIZE], state[STATE_FAILS], state[STATE_VERSION]


@njit(inline="always")
def save_search(state, rem_size, add_size, fails, version):
    """Store what :func:`load_search` loads, for the next kernel call."""
    state[STATE_REM_SIZE] = rem_size
    state[STATE_ADD_SIZE] = add_size
    state[STATE_FAILS] = fails
    state[STATE_VERSION] = version


def start_search(state, rem_size: int, add_size: int) -> None:
    """Reset what :func:`load_search` loads for a round's fresh heaps (from Python, between
    rounds): full heaps, no failures, counts version 0 (the version of the heaps' fresh keys)."""
    state[STATE_REM_SIZE] = rem_size
    state[STATE_ADD_SIZE] = add_size
    state[STATE_FAILS] = 0
    state[STATE_VERSION] = 0
