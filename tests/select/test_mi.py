"""synth_core.select._mi: mutual information, and the pairs and triples it ranks."""

from __future__ import annotations

from math import log

import numpy as np
import pytest

from synth_core.select import _mi as mi
from tests.select.codes import N_BINS


def test_mi_equals_hand_computation_and_ranking():
    # columns 0,1: table [[3,1],[1,3]]; column 2 independent of both by construction
    base = np.array([[0, 0]] * 3 + [[0, 1]] + [[1, 0]] + [[1, 1]] * 3)
    codes = np.concatenate([np.column_stack([base, np.zeros(8)]), np.column_stack([base, np.ones(8)])])
    codes = codes.astype(np.uint8)
    nb = np.array([2, 2, 2])
    expected = 2 * (3 / 8) * log((3 / 8) / 0.25) + 2 * (1 / 8) * log((1 / 8) / 0.25)
    m = mi.pairwise_mi(codes, nb)
    assert m[0, 1] == pytest.approx(expected, abs=1e-12)
    assert m[1, 0] == m[0, 1]
    assert m[0, 2] == pytest.approx(0.0, abs=1e-12) and m[1, 2] == pytest.approx(0.0, abs=1e-12)
    ranking = mi.top_pairs(codes, nb)
    np.testing.assert_array_equal(ranking.pairs, [[0, 1], [0, 2], [1, 2]])  # tie (0,2)/(1,2) by index
    assert ranking.mi[0] == pytest.approx(expected)
    assert mi.top_pairs(codes, nb, k=1).pairs.shape == (1, 2)
    # weights act like replicated rows
    w = np.arange(1, 17, dtype=float) % 3 + 1
    mw = mi.pairwise_mi(codes, nb, weights=w)
    mr = mi.pairwise_mi(np.repeat(codes, w.astype(int), axis=0), nb)
    np.testing.assert_allclose(mw, mr, atol=1e-12)


def test_mi_of_independent_columns_is_near_zero():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, (200_000, 3)).astype(np.uint8)
    m = mi.pairwise_mi(codes, np.array([4, 4, 4]))
    # plug-in bias ~ (4-1)^2 / (2 n) = 2.3e-5
    assert m[np.triu_indices(3, 1)].max() < 2e-4


def test_top_triples_all_when_few_else_top_k(data):
    train = data["train"]
    m = mi.pairwise_mi(train, N_BINS)
    tr = mi.top_triples(train, N_BINS)
    assert tr.triples.shape == (20, 3)  # C(6, 3) <= 2000 -> all
    a, b, c = tr.triples.T
    np.testing.assert_allclose(tr.score, m[a, b] + m[a, c] + m[b, c])
    assert np.all(np.diff(tr.score) <= 0)
    few = mi.top_triples(None, N_BINS, mi_matrix=m, max_default=5)
    np.testing.assert_array_equal(few.triples, tr.triples[:5])


def test_default_triple_count_by_width():
    assert mi.default_triple_count(6) == 20
    assert mi.default_triple_count(23) == 1771  # all while C(d, 3) <= 2,000
    assert mi.default_triple_count(24) == 2000
    assert mi.default_triple_count(50) == 2000  # C(50, 3) = 19,600
    assert mi.default_triple_count(51) == 0
    assert mi.default_triple_count(80) == 0
    m = np.random.default_rng(0).random((60, 60))
    m = m + m.T
    assert mi.top_triples(None, np.full(60, 4), mi_matrix=m).triples.shape == (0, 3)
    assert mi.top_triples(None, np.full(60, 4), k=7, mi_matrix=m).triples.shape == (7, 3)
