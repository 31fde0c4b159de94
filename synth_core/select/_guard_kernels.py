"""Numba kernels of the privacy guard: approximate nearest neighbours in a randomized k-d forest.

The guard needs, for every pool unit, the distance to its nearest training unit and to its
nearest unit of a reference sample of the pool. Pools hold millions of rows, so an exact search
(pool × training pairs) would dominate selection; the guard only needs these distances well
ranked, exactly so for units sitting on a training unit, which any forest finds.

The forest
----------
Units are first *embedded* in a small Euclidean space (:func:`embed`, float32): numbers as they
are (NaN as 0.5 plus a 0/1 missing flag), each categorical value as a seeded Gaussian vector whose
differences have squared norm 1 on average, as a mismatch costs 1 in the true distance. A tree
splits its node at the median of one embedding coordinate, picked at random among the five
with the largest variance on a sample of the node (ties at the median go to the side that
keeps both children non-empty), down to leaves of at most ``leaf_size`` units. A query descends
every tree to one leaf and computes the **exact** mixed distance (:func:`sqdist`) to the
units there; the smallest per set wins. Each tree keeps a copy of the units in leaf order, so a
leaf is one contiguous block of memory.

Determinism: trees are built one after another from ``seed``; each query is answered on its own
(``prange`` over queries, no shared state), and a minimum does not depend on the order in
which candidates are met, so results do not depend on the thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np

CAT_DIMS = 4  # embedding dimensions per categorical column
TOP_DIMS = 5  # a node splits on one of its this many highest-variance coordinates
VARIANCE_SAMPLE = 128  # units per node that estimate the coordinates' variance
ROOT = 0  # node number of every tree's root
LEAF = -1  # split coordinate (``dims``) of a leaf node
TREE_SEED_STRIDE = 7919  # tree t of a forest seeded s is grown from seed s * TREE_SEED_STRIDE + t


def embed(cat: np.ndarray, num: np.ndarray, n_codes: np.ndarray, seed: int) -> np.ndarray:
    """Float32 embedding of units for the forest's splits (module docstring).

    Parameters
    ----------
    cat : ndarray of shape (n, n_cat), integer
        Categorical codes, −1 (missing) up to ``n_codes − 1``.
    num : ndarray of shape (n, n_num), float64
        Numbers (rank-transformed to [0, 1]), NaN for missing.
    n_codes : ndarray of shape (n_cat,)
        Codes per categorical column: the same for every call that must share the embedding.
    seed : int
        Seeds the categorical vectors.

    Returns
    -------
    ndarray of shape (n, n_dims), float32, C-contiguous
    """
    rng = np.random.default_rng(seed)
    n, d = len(cat), num.shape[1]
    missing = np.isnan(num)
    flagged = missing.any(axis=0)
    n_flagged = int(flagged.sum())
    n_dims = d + n_flagged + CAT_DIMS * cat.shape[1]
    if n_dims == 0:
        return np.zeros((n, 1), dtype=np.float32)
    # filled column block by column block, cast once per block: no float64 copy of the whole matrix
    out = np.empty((n, n_dims), dtype=np.float32)
    out[:, :d] = np.where(missing, 0.5, num)
    out[:, d:d + n_flagged] = missing[:, flagged]
    d += n_flagged
    for j in range(cat.shape[1]):
        # var 1/(2·CAT_DIMS) per dimension: E|g(a) − g(b)|² = 1, a mismatch's true cost
        table = rng.normal(0.0, math.sqrt(0.5 / CAT_DIMS), size=(int(n_codes[j]) + 1, CAT_DIMS))
        out[:, d:d + CAT_DIMS] = table[cat[:, j] + 1]  # row 0 is "missing" (code −1)
        d += CAT_DIMS
    return out


@numba.njit(cache=True)
def _split(emb, idx, lo, hi):
    """Partition ``idx[lo:hi]`` at a median of one high-variance coordinate; returns (dim, value,
    mid) with ``idx[lo:mid]`` below ``value``, or ``mid = -1`` when no coordinate separates them."""
    n_dims = emb.shape[1]
    n_sample = min(hi - lo, VARIANCE_SAMPLE)
    mean = np.zeros(n_dims)
    var = np.zeros(n_dims)
    for t in range(n_sample):
        r = idx[lo + (t * (hi - lo)) // n_sample]
        for k in range(n_dims):
            mean[k] += emb[r, k]
    for k in range(n_dims):
        mean[k] /= n_sample
    for t in range(n_sample):
        r = idx[lo + (t * (hi - lo)) // n_sample]
        for k in range(n_dims):
            d = emb[r, k] - mean[k]
            var[k] += d * d
    order = np.argsort(-var)
    n_var = 0
    for k in range(n_dims):
        if var[k] > 0:
            n_var += 1
    if n_var == 0:  # the sampled units are equal: the whole node is one leaf
        return -1, np.float32(0.0), -1
    first = np.random.randint(min(TOP_DIMS, n_var))
    vals = np.empty(hi - lo, np.float32)
    for attempt in range(n_var):
        dim = order[(first + attempt) % n_var]
        for t in range(lo, hi):
            vals[t - lo] = emb[idx[t], dim]
        cut = np.float32(np.median(vals))
        below = 0
        for t in range(hi - lo):
            if vals[t] < cut:
                below += 1
        if below == 0:  # ties fill the lower half: cut just above the median value instead
            above = np.inf
            for t in range(hi - lo):
                if cut < vals[t] < above:
                    above = vals[t]
            if above == np.inf:
                continue
            cut = np.float32(above)
        i, j = lo, hi - 1
        while i <= j:
            if emb[idx[i], dim] < cut:
                i += 1
            else:
                idx[i], idx[j] = idx[j], idx[i]
                j -= 1
        if lo < i < hi:
            return dim, cut, i
    return -1, np.float32(0.0), -1


@numba.njit(cache=True)
def _build_tree(emb, leaf_size, seed, idx, dims, cuts, left, right, start, end):
    """Grow one tree over ``idx`` (permuted in place into leaf order); returns its node count."""
    np.random.seed(seed)
    stack = np.empty(dims.shape[0], np.int64)
    start[ROOT], end[ROOT] = 0, idx.shape[0]
    n_nodes, top = 1, 1
    stack[0] = ROOT
    while top > 0:
        top -= 1
        node = stack[top]
        lo, hi = start[node], end[node]
        dims[node] = LEAF
        if hi - lo <= leaf_size:
            continue
        dim, cut, mid = _split(emb, idx, lo, hi)
        if mid < 0:
            continue
        dims[node], cuts[node] = dim, cut
        left[node], right[node] = n_nodes, n_nodes + 1
        start[n_nodes], end[n_nodes] = lo, mid
        start[n_nodes + 1], end[n_nodes + 1] = mid, hi
        stack[top], stack[top + 1] = n_nodes, n_nodes + 1
        top += 2
        n_nodes += 2
    return n_nodes


def build_forest(emb: np.ndarray, n_trees: int, leaf_size: int, seed: int) -> tuple[np.ndarray, ...]:
    """Randomized k-d trees over the embedded units ``emb``.

    Returns
    -------
    order : ndarray of shape (n_trees, n), int64
        Each tree's units in leaf order (a leaf is ``order[t, start:end]``).
    dims, cuts, left, right, start, end : ndarrays of shape (n_trees, n_nodes)
        Split coordinate (−1 for a leaf), split value, children and unit range per node.
    """
    n = emb.shape[0]
    max_nodes = 2 * (n // max(1, leaf_size // 2)) + 3  # a split halves a node, never below leaf_size / 2
    order = np.empty((n_trees, n), np.int64)
    dims = np.full((n_trees, max_nodes), LEAF, np.int64)
    cuts = np.zeros((n_trees, max_nodes), np.float32)
    left = np.zeros((n_trees, max_nodes), np.int64)
    right = np.zeros((n_trees, max_nodes), np.int64)
    start = np.zeros((n_trees, max_nodes), np.int64)
    end = np.zeros((n_trees, max_nodes), np.int64)
    for t in range(n_trees):
        order[t] = np.arange(n)
        _build_tree(emb, int(leaf_size), int(seed) * TREE_SEED_STRIDE + t, order[t], dims[t], cuts[t], left[t],
                    right[t], start[t], end[t])
    return order, dims, cuts, left, right, start, end


@numba.njit(cache=True, inline="always")
def sqdist(cat_a, num_a, cat_b, num_b, bound):
    """Squared mixed distance of two units, abandoned (returned early) once it reaches ``bound``.

    A categorical mismatch adds 1; numbers add ``(a − b)²``; NaN vs NaN adds 0 and NaN vs a
    number adds 1 (the distance of :mod:`synth_core.metrics._privacy`).
    """
    s = 0.0
    for f in range(cat_a.shape[0]):
        if cat_a[f] != cat_b[f]:
            s += 1.0
            if s >= bound:
                return s
    for f in range(num_a.shape[0]):
        d = num_a[f] - num_b[f]
        if d == d:
            s += d * d
        elif not (num_a[f] != num_a[f] and num_b[f] != num_b[f]):
            s += 1.0
        if s >= bound:
            return s
    return s


@numba.njit(cache=True, parallel=True)
def nearest_by_set(q_emb, q_cat, q_num, own, order, dims, cuts, left, right, start, end,
                   tree_cat, tree_num, tree_set, out):
    """Per query, the squared distance to the nearest unit of each set found in its leaves.

    Parameters
    ----------
    q_emb, q_cat, q_num : query embedding, categorical codes and numbers.
    own : ndarray of shape (n_queries,), int64
        Unit index (in the forest) that a query must skip: itself, or −1.
    order, dims, cuts, left, right, start, end : the forest (:func:`build_forest`).
    tree_cat, tree_num : ndarrays of shape (n_trees, n, ·)
        Each tree's copy of the forest units' codes and numbers, in leaf order.
    tree_set : ndarray of shape (n_trees, n), int64
        Set (0 … n_sets−1) of each leaf-order position.
    out : ndarray of shape (n_queries, n_sets), float64
        Filled with the distances (``inf`` where a set was not met).
    """
    n_sets = out.shape[1]
    n_trees = order.shape[0]
    for q in numba.prange(q_emb.shape[0]):
        best = np.full(n_sets, np.inf)
        for t in range(n_trees):
            node = ROOT
            while dims[t, node] != LEAF:
                node = left[t, node] if q_emb[q, dims[t, node]] < cuts[t, node] else right[t, node]
            for p in range(start[t, node], end[t, node]):
                if order[t, p] == own[q]:
                    continue
                set_id = tree_set[t, p]
                d = sqdist(q_cat[q], q_num[q], tree_cat[t, p], tree_num[t, p], best[set_id])
                if d < best[set_id]:
                    best[set_id] = d
        for set_id in range(n_sets):
            out[q, set_id] = best[set_id]
