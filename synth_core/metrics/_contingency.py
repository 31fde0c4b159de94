"""Numba kernels: binned contingency tables and their L1 accuracy, many features at once.

A *feature* is a tuple of one to three columns of a code matrix; its cells are the joint bins.
qa's accuracy of a feature is ``1 − ½·Σ|p − q|`` over the cells, and its reference maximum uses
the expected L1 of two multinomial samples (half-normal approximation per cell), see
``qa-metrics.md`` section 3.
"""

from __future__ import annotations

import math

import numba
import numpy as np

TWO_OVER_PI = 2.0 / math.pi


@numba.njit(cache=True, inline="always")
def _cell(codes, i, a, b, c, nb, nc):
    # Row i's flattened cell of feature (a, b, c); b/c = -1 mean "absent".
    idx = np.int64(codes[i, a])
    if b >= 0:
        idx = idx * nb + codes[i, b]
    if c >= 0:
        idx = idx * nc + codes[i, c]
    return idx


@numba.njit(cache=True)
def _pairwise_block(a, lo, n):
    # numpy's leaf: plain loop below 8 terms, else 8 accumulators combined as a tree.
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = 8
    while i < n - (n % 8):
        k = lo + i
        r0 += a[k]
        r1 += a[k + 1]
        r2 += a[k + 2]
        r3 += a[k + 3]
        r4 += a[k + 4]
        r5 += a[k + 5]
        r6 += a[k + 6]
        r7 += a[k + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@numba.njit(cache=True)
def pairwise_sum(a):
    """``np.sum(a)`` for a 1-D float64 array, bit for bit. O(n) time, O(log n) memory.

    qa sums with numpy and rounds each item to 5 decimals, and accuracies often sit exactly on a
    half there: the last bit decides the rounding, so we replay numpy's pairwise summation
    (leaves of ≤ 128 terms, halves rounded down to multiples of 8). Iterative on purpose: numba's
    on-disk cache of self-recursive functions is not reliable.
    """
    n_total = a.shape[0]
    if n_total <= 128:
        return 0.0 + _pairwise_block(a, 0, n_total)
    seg_lo = np.empty(128, dtype=np.int64)
    seg_n = np.empty(128, dtype=np.int64)
    seg_split = np.zeros(128, dtype=np.bool_)
    values = np.empty(128)
    top = 1
    seg_lo[0] = 0
    seg_n[0] = n_total
    n_values = 0
    while top > 0:
        lo = seg_lo[top - 1]
        n = seg_n[top - 1]
        if n <= 128:
            top -= 1
            values[n_values] = _pairwise_block(a, lo, n)
            n_values += 1
        elif not seg_split[top - 1]:
            seg_split[top - 1] = True
            half = n // 2
            half -= half % 8
            # right half pushed first so the left one is summed first
            seg_lo[top] = lo + half
            seg_n[top] = n - half
            seg_split[top] = False
            seg_lo[top + 1] = lo
            seg_n[top + 1] = half
            seg_split[top + 1] = False
            top += 2
        else:
            top -= 1
            values[n_values - 2] = values[n_values - 2] + values[n_values - 1]
            n_values -= 1
    return 0.0 + values[0]


@numba.njit(cache=True)
def _l1_terms(co, cs, n1, n2, diff, expected):
    # Per-cell |p - q| and qa's expected-L1 term, in cell order (every cell, as qa's
    # observed=False value_counts lists them), then numpy-order sums.
    for k in range(co.shape[0]):
        p = co[k] / n1
        q = cs[k] / n2
        diff[k] = abs(p - q)
        variance = p * (1 - p) / n1 + p * (1 - p) / n2
        expected[k] = math.sqrt(variance * 2 / math.pi)
    return pairwise_sum(diff), pairwise_sum(expected)


@numba.njit(cache=True, parallel=True)
def feature_l1(ori, syn, n_codes, features):
    """Observed and expected L1 distance between ``ori`` and ``syn`` for every feature.

    ori, syn : (n1, d), (n2, d) integer code matrices (same binning)
    n_codes  : (d,) codes per column
    features : (F, 3) column indices, -1 padded for 1-D and 2-D features

    Returns ``(l1, expected_l1)``, each (F,). One pass over both matrices per feature:
    O(F · (n1 + n2 + cells)) time, O(cells) memory per thread; features run in parallel.
    """
    n_features = features.shape[0]
    n1 = ori.shape[0]
    n2 = syn.shape[0]
    l1 = np.zeros(n_features)
    expected = np.zeros(n_features)
    for f in numba.prange(n_features):
        a = features[f, 0]
        b = features[f, 1]
        c = features[f, 2]
        nb = n_codes[b] if b >= 0 else 1
        nc = n_codes[c] if c >= 0 else 1
        size = n_codes[a] * nb * nc
        co = np.zeros(size, dtype=np.int64)
        cs = np.zeros(size, dtype=np.int64)
        for i in range(n1):
            co[_cell(ori, i, a, b, c, nb, nc)] += 1
        for i in range(n2):
            cs[_cell(syn, i, a, b, c, nb, nc)] += 1
        l1[f], expected[f] = _l1_terms(co, cs, n1, n2, np.empty(size), np.empty(size))
    return l1, expected


def counts_l1(ori_counts: np.ndarray, syn_counts: np.ndarray) -> tuple[float, float]:
    """Observed and expected L1 for two aligned count vectors (qa's ``calculate_accuracy_cnts``)."""
    ori_counts = np.asarray(ori_counts, dtype=np.int64)
    syn_counts = np.asarray(syn_counts, dtype=np.int64)
    size = len(ori_counts)
    l1, expected = _l1_terms(ori_counts, syn_counts, ori_counts.sum(), syn_counts.sum(), np.empty(size), np.empty(size))
    return float(l1), float(expected)


def to_accuracy(l1: np.ndarray | float) -> np.ndarray:
    """mostlyai-qa's accuracy from an L1 distance, rounded to 5 decimals as qa does per item."""
    return np.round(1 - np.asarray(l1, dtype=np.float64) / 2, 5)


def as_feature_array(features) -> np.ndarray:
    """(F, 3) int64 array from a list of 1-3 column-index tuples (-1 padded)."""
    out = np.full((len(features), 3), -1, dtype=np.int64)
    for i, f in enumerate(features):
        out[i, : len(f)] = f
    return out
