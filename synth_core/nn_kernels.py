"""Numba kernel: exact two nearest neighbours under a mixed categorical / numeric distance.

A row is a vector of categorical codes plus a vector of numbers. A categorical feature adds
``1`` on mismatch (codes are only compared for equality); a numeric feature adds ``(a − b)²``,
where NaN is a value of its own: NaN vs NaN adds 0 and NaN vs a number adds 1. The distance is
the square root of the sum.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, parallel=True)
def two_nearest(q_cat, r_cat, q_num, r_num):
    """Squared distances from each query row to its closest and second-closest reference row.

    Brute force: O(n_queries · n_refs · n_features) in the worst case, far less in practice. A
    candidate is dropped as soon as its partial sum reaches the current second best (it can no
    longer change either result), and a query stops once it has two exact matches. So
    categoricals go first (each mismatch adds a whole 1) and callers should order features by
    decreasing expected contribution. Queries run in parallel and independently, so results
    do not depend on the thread count.

    Parameters
    ----------
    q_cat : ndarray of shape (n_queries, n_cat), int32
    r_cat : ndarray of shape (n_refs, n_cat), int32
        Categorical codes, shared between queries and references.
    q_num : ndarray of shape (n_queries, n_num), float64
    r_num : ndarray of shape (n_refs, n_num), float64
        Numeric features, NaN for missing.

    Returns
    -------
    d1, d2 : ndarray of shape (n_queries,)
        Squared distance to the nearest and to the second-nearest reference row
        (``inf`` for ``d2`` when there is a single reference row).
    """
    n_q, n_c = q_cat.shape
    n_n = q_num.shape[1]
    n_r = r_cat.shape[0]
    d1 = np.empty(n_q)
    d2 = np.empty(n_q)
    for i in numba.prange(n_q):
        best1 = math.inf
        best2 = math.inf
        for j in range(n_r):
            s = 0.0
            abandoned = False
            for f in range(n_c):
                if q_cat[i, f] != r_cat[j, f]:
                    s += 1.0
                    if s >= best2:  # cannot improve either best any more
                        abandoned = True
                        break
            if abandoned:
                continue
            for f in range(n_n):
                a = q_num[i, f]
                b = r_num[j, f]
                d = a - b
                if d == d:
                    s += d * d
                elif not (a != a and b != b):  # exactly one side is NaN
                    s += 1.0
                if s >= best2:
                    abandoned = True
                    break
            if abandoned:
                continue
            if s < best1:
                best2 = best1
                best1 = s
            else:
                best2 = s
            if best2 == 0.0:  # two exact matches: nothing can beat them
                break
        d1[i] = best1
        d2[i] = best2
    return d1, d2
