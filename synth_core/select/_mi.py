"""Mutual information between columns of the training codes, and feature choice.

MI is the plug-in estimator with natural logarithms on the (optionally weighted) joint
table of two columns: ``sum_ab p_ab * log(p_ab / (p_a * p_b))`` over cells with
``p_ab > 0``. The joint table is one ``np.bincount`` of the combined code ``a * n_b + b``.

Triples for the objective (:func:`top_triples`) are ranked by the *sum of the three
pairwise MIs* among their columns. It is cheap (no triple tables: every score comes from
the pair matrix already computed, so ranking all C(d, 3) triples of 80 columns takes
milliseconds), it favours triples whose columns are mutually dependent, which is where a
candidate subset's three-way tables are most likely to be off, and unlike total
correlation it needs no 3-D tables that would be sparse on the training data.

How many triples by default (:func:`default_triple_count`): every triple when C(d, 3) <= 2,000;
the top 2,000 while they still are at least a tenth of all triples (C(d, 3) <= 20,000, i.e. up to
50 columns); none for wider tables. The metric averages a random sample of all C(d, 3) triples,
so a fixed set of 2,000 among 82,160 (80 columns) covers 2.4 % of what it measures: measured on
the 80-column benchmark workload (``benchmarks/workload.py``; 20,000 rows selected from 50,000)
the top 2,000 left the metric's trivariate accuracy unchanged (0.9085 with, 0.9082 without)
while they made the cell vector 8x longer (3.0 M cells instead of 0.38 M) and trimming and
refinement 3-5x slower. The univariate and pair
features then carry the objective.

How many pairs by default (:func:`default_pair_count`): every pair up to 3,160 (80 columns), the
3,160 with the highest MI beyond. Every stage's cost grows with the number of features, and a
swap's exact gain reads one cell per feature at random: 44,850 pairs of 300 columns made
refinement take 389 s for 1,000 rows out of 10,000. Measured on that workload (2,000 training
rows, ``benchmarks/bench_wide.py``), the top 3,160 pairs cut refinement to about 10 s and moved
the metric's overall accuracy of the result from 0.8502 to 0.8497 (bivariate, averaged over all
44,850 pairs: 0.8900 to 0.8895); the top 6,000 gained 0.0001 of that back for three times the
time. Pairs of nearly independent columns (low MI) follow from the margins, which the
univariate features fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np

from synth_core.errors import InputError
from synth_core.select._features import _as_n_bins, check_codes, check_row_weights

DEFAULT_MAX_TRIPLES = 2000
WIDE_TABLE_TRIPLES = 20_000  # above this many column triples the default objective has none
DEFAULT_MAX_PAIRS = 3160  # every pair of 80 columns; wider tables keep this many, by MI


def default_pair_count(d: int, max_default: int = DEFAULT_MAX_PAIRS) -> int:
    """Pairs of the default objective for ``d`` columns (see the module docstring)."""
    return min(comb(d, 2), max_default)


def default_triple_count(d: int, max_default: int = DEFAULT_MAX_TRIPLES) -> int:
    """Triples of the default objective for ``d`` columns (see the module docstring)."""
    total = comb(d, 3)
    if total <= max_default:
        return total
    return max_default if total <= WIDE_TABLE_TRIPLES else 0


@dataclass(frozen=True)
class PairRanking:
    """Pairs ``(i, j)``, ``i < j``, sorted by MI descending, ties by ``(i, j)`` ascending."""

    pairs: np.ndarray  # (k, 2) int64
    mi: np.ndarray  # (k,) float64


@dataclass(frozen=True)
class TripleRanking:
    """Triples ``(i, j, l)``, ``i < j < l``, sorted by score descending, ties by index."""

    triples: np.ndarray  # (k, 3) int64
    score: np.ndarray  # (k,) float64: sum of the three pairwise MIs


def mi_from_table(table: np.ndarray) -> float:
    """Plug-in mutual information (nats) of a 2-D (possibly weighted) contingency table."""
    t = np.asarray(table, dtype=np.float64)
    total = t.sum()
    if not total > 0:
        return 0.0
    p = t / total
    pa = p.sum(axis=1, keepdims=True)
    pb = p.sum(axis=0, keepdims=True)
    nz = p > 0
    expected = (pa * pb)[nz]
    return float(max(0.0, np.sum(p[nz] * np.log(p[nz] / expected))))


def pairwise_mi(train_codes: np.ndarray, n_bins, weights=None) -> np.ndarray:
    """Symmetric ``(d, d)`` matrix of pairwise MI (zero diagonal) of the training codes."""
    nb = _as_n_bins(n_bins)
    codes = check_codes(train_codes, nb, "train_codes")
    n, d = codes.shape
    if n == 0:
        raise InputError("train_codes has no rows")
    w = check_row_weights(weights, n, "weights")
    wb = w if w.size else None
    columns = [np.ascontiguousarray(codes[:, j]).astype(np.intp) for j in range(d)]
    stride = int(nb.max())  # one stride for every pair: scale column i once, reuse it for all j
    out = np.zeros((d, d), dtype=np.float64)
    for i in range(d - 1):
        scaled = columns[i] * stride
        for j in range(i + 1, d):
            table = np.bincount(scaled + columns[j], weights=wb, minlength=int(nb[i]) * stride)
            mi = mi_from_table(table.reshape(int(nb[i]), stride)[:, : int(nb[j])])
            out[i, j] = out[j, i] = mi
    return out


def _rank(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Order by value descending, then lexicographically by the key columns."""
    order_keys = tuple(keys[:, c] for c in range(keys.shape[1] - 1, -1, -1)) + (-values,)
    return np.lexsort(order_keys)


def top_pairs(train_codes: np.ndarray, n_bins, k: int | None = None, weights=None, mi_matrix=None) -> PairRanking:
    """All column pairs ranked by MI (descending; ties by index), the first ``k`` of them
    (``None`` = all; :func:`default_pair_count` gives the objective's default). Pass
    ``mi_matrix`` to reuse a :func:`pairwise_mi` result."""
    nb = _as_n_bins(n_bins)
    m = pairwise_mi(train_codes, nb, weights) if mi_matrix is None else np.asarray(mi_matrix, dtype=np.float64)
    d = nb.shape[0]
    if m.shape != (d, d):
        raise InputError(f"mi_matrix has shape {m.shape}, expected ({d}, {d})")
    iu, ju = np.triu_indices(d, k=1)
    pairs = np.stack([iu, ju], axis=1).astype(np.int64)
    vals = m[iu, ju]
    order = _rank(vals, pairs)
    if k is not None:
        if k < 0:
            raise InputError(f"k must be >= 0, got {k}")
        order = order[:k]
    return PairRanking(pairs=np.ascontiguousarray(pairs[order]), mi=vals[order])


def _all_triples(d: int) -> np.ndarray:
    """All ``C(d, 3)`` triples, lexicographic."""
    if d < 3:
        return np.zeros((0, 3), dtype=np.int64)
    i, j = np.triu_indices(d, k=1)
    n_l = d - 1 - j  # third columns j+1 .. d-1
    total = int(n_l.sum())
    starts = np.concatenate([[0], np.cumsum(n_l)[:-1]])
    ii = np.repeat(i, n_l)
    jj = np.repeat(j, n_l)
    ll = jj + 1 + (np.arange(total) - np.repeat(starts, n_l))
    return np.stack([ii, jj, ll], axis=1).astype(np.int64)


def top_triples(
    train_codes: np.ndarray | None,
    n_bins,
    k: int | None = None,
    weights=None,
    mi_matrix=None,
    max_default: int = DEFAULT_MAX_TRIPLES,
) -> TripleRanking:
    """Triples for the objective, ranked by the sum of their three pairwise MIs.

    ``k=None``: :func:`default_triple_count` (all when ``C(d, 3) <= max_default``, the top
    ``max_default`` up to 20,000 triples, none beyond). ``train_codes`` may be ``None`` when
    ``mi_matrix`` is given.
    """
    nb = _as_n_bins(n_bins)
    d = nb.shape[0]
    if mi_matrix is None:
        if train_codes is None:
            raise InputError("top_triples needs train_codes or mi_matrix")
        m = pairwise_mi(train_codes, nb, weights)
    else:
        m = np.asarray(mi_matrix, dtype=np.float64)
    if m.shape != (d, d):
        raise InputError(f"mi_matrix has shape {m.shape}, expected ({d}, {d})")
    if k is None:
        k = default_triple_count(d, max_default)
    if k < 0:
        raise InputError(f"k must be >= 0, got {k}")
    triples = _all_triples(d)
    if triples.shape[0] == 0 or k == 0:
        return TripleRanking(triples=triples[:0], score=np.zeros(0))
    a, b, c = triples[:, 0], triples[:, 1], triples[:, 2]
    score = m[a, b] + m[a, c] + m[b, c]
    order = _rank(score, triples)[:k]
    return TripleRanking(triples=np.ascontiguousarray(triples[order]), score=score[order])
