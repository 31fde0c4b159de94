"""Binary max-heaps of (key, index) pairs in two parallel arrays, for numba kernels.

Order: larger key first, ties to the smaller index, so every pop sequence is deterministic.
The lazy greedy searches of trimming and refinement (flat and grouped) keep stale gains in
these heaps. Every operation is O(log size); no allocation.
"""

from __future__ import annotations

from numba import njit


@njit(inline="always")
def better(ka, ia, kb, ib):
    """True when (ka, ia) sorts before (kb, ib)."""
    return ka > kb or (ka == kb and ia < ib)


@njit(cache=True)
def sift_down(hk, hi, pos, size):
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
        hk[pos] = hk[child]
        hi[pos] = hi[child]
        pos = child
    hk[pos] = k
    hi[pos] = i


@njit(cache=True)
def sift_up(hk, hi, pos):
    k = hk[pos]
    i = hi[pos]
    while pos > 0:
        parent = (pos - 1) // 2
        if not better(k, i, hk[parent], hi[parent]):
            break
        hk[pos] = hk[parent]
        hi[pos] = hi[parent]
        pos = parent
    hk[pos] = k
    hi[pos] = i


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
        hk[0] = hk[size]
        hi[0] = hi[size]
        sift_down(hk, hi, 0, size)
    return size


@njit(cache=True)
def push(hk, hi, size, key, idx):
    """Insert (key, idx) at ``size``; returns the new size (the arrays must have room)."""
    hk[size] = key
    hi[size] = idx
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
