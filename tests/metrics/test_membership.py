"""The exact neighbour search and the audit's statistics, against brute force and by hand."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from synth_core.metrics._membership import Encoded, Fold, attack_scores, auc_delong, membership_audit
from synth_core.metrics._nn_kernels import k_nearest_distances


def brute_force(q_cat, q_num, r_cat, r_num, k):
    """The distance of the module docstring, pair by pair, sorted."""
    out = np.full((len(q_num), k), np.inf)
    for i in range(len(q_num)):
        mismatches = (q_cat[i] != r_cat).sum(axis=1)
        one_missing = (np.isnan(q_num[i]) ^ np.isnan(r_num)).sum(axis=1)
        diff = q_num[i] - r_num
        squares = np.where(np.isnan(diff), 0.0, diff * diff).sum(axis=1)
        d = np.sort(mismatches + one_missing + squares)[:k]
        out[i, : len(d)] = d
    return out


def random_rows(rng, n, n_cat, n_num, levels=3, missing=0.2, decimals=1):
    cat = rng.integers(-1, levels, (n, n_cat))
    num = rng.random((n, n_num)).round(decimals)  # rounding makes ties and exact matches
    num[rng.random(num.shape) < missing] = np.nan
    return cat, num


@pytest.mark.parametrize("method", ["blocked", "gemm"])
@pytest.mark.parametrize("seed", range(12))
def test_k_nearest_equals_brute_force(seed, method):
    rng = np.random.default_rng(seed)
    n_cat, n_num = int(rng.integers(0, 4)), int(rng.integers(1, 4))
    # up to 12 codes: the matrix-product bound lumps the rarer ones together
    levels = 3 if seed % 2 else 12
    r_cat, r_num = random_rows(rng, int(rng.integers(1, 400)), n_cat, n_num, levels=levels)
    q_cat, q_num = random_rows(rng, int(rng.integers(1, 150)), n_cat, n_num, levels=levels)
    if seed % 3 == 0:  # a numeric column wider than 2: its bound keeps only the missing-flag
        r_num[:, 0] *= 5.0
        q_num[:, 0] *= 5.0
    k = int(rng.integers(1, 6))
    got = k_nearest_distances(q_cat, q_num, r_cat, r_num, k, method=method)
    expected = brute_force(q_cat, q_num, r_cat, r_num, k)
    assert np.allclose(got, expected, rtol=0, atol=1e-12)


def test_both_searches_give_identical_bits_on_census_like_data():
    rng = np.random.default_rng(11)
    r_cat, r_num = random_rows(rng, 3_000, 4, 5, levels=9, missing=0.05, decimals=3)
    q_cat, q_num = random_rows(rng, 700, 4, 5, levels=9, missing=0.05, decimals=3)
    blocked = k_nearest_distances(q_cat, q_num, r_cat, r_num, 2, method="blocked")
    assert np.array_equal(blocked, k_nearest_distances(q_cat, q_num, r_cat, r_num, 2, method="gemm"))
    assert np.array_equal(blocked, k_nearest_distances(q_cat, q_num, r_cat, r_num, 2))


def test_auto_switches_search_after_the_pilot(monkeypatch):
    # the automatic choice with the switch forced: the pilot queries come from the blocked search,
    # the rest from the matrix products, and together they equal either search alone
    import synth_core.metrics._nn_kernels as nn

    rng = np.random.default_rng(12)
    r_cat, r_num = random_rows(rng, 2_000, 3, 4, levels=9, missing=0.1, decimals=3)
    q_cat, q_num = random_rows(rng, 500, 3, 4, levels=9, missing=0.1, decimals=3)
    expected = k_nearest_distances(q_cat, q_num, r_cat, r_num, 2, method="blocked")
    monkeypatch.setattr(nn, "BLOCKED_BUDGET_S", -1.0)
    monkeypatch.setattr(nn, "_prefer_gemm", lambda blocked_s, gemm_s: True)
    assert np.array_equal(k_nearest_distances(q_cat, q_num, r_cat, r_num, 2), expected)


def test_k_nearest_categorical_only_and_fewer_refs_than_k():
    r_cat = np.array([[0, 1], [1, 1]])
    q_cat = np.array([[0, 1], [2, 2]])
    empty = np.zeros((2, 0))
    got = k_nearest_distances(q_cat, empty, r_cat, np.zeros((2, 0)), 3)
    assert got.tolist() == [[0.0, 1.0, np.inf], [2.0, 2.0, np.inf]]


def test_k_nearest_is_the_same_for_any_thread_count():
    rng = np.random.default_rng(5)
    r_cat, r_num = random_rows(rng, 5_000, 2, 3, levels=4, decimals=3)
    q_cat, q_num = random_rows(rng, 3_000, 2, 3, levels=4, decimals=3)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = k_nearest_distances(q_cat, q_num, r_cat, r_num, 2)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = k_nearest_distances(q_cat, q_num, r_cat, r_num, 2)
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(one, two)
    # and for any order of the queries
    order = rng.permutation(len(q_num))
    assert np.array_equal(k_nearest_distances(q_cat[order], q_num[order], r_cat, r_num, 2), one[order])


def test_auc_delong_equals_its_definition():
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 6, 40).astype(float)  # many ties
    neg = rng.integers(0, 5, 30).astype(float)
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    expected_se = np.sqrt(v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg))
    auc, se = auc_delong(pos, neg)
    assert auc == pytest.approx(psi.mean(), abs=1e-12)
    assert se == pytest.approx(expected_se, abs=1e-12)
    assert auc_delong(np.array([1.0, 2.0]), np.array([0.0, 0.5]))[0] == 1.0
    assert auc_delong(np.zeros(5), np.zeros(7))[0] == 0.5


def test_attack_scores_rank_copies_first():
    # Candidates 0 and 1 have an exact and a near copy among the synthetic units; 2 has none.
    synthetic = Encoded(np.zeros((4, 0), np.int64), np.array([[0.10], [0.52], [0.90], [0.95]]))
    population = Encoded(np.zeros((3, 0), np.int64), np.array([[0.11], [0.50], [0.30]]))
    candidates = Encoded(np.zeros((3, 0), np.int64), np.array([[0.90], [0.51], [0.70]]))
    scores = attack_scores(candidates, synthetic, population)
    assert scores["distance"].tolist() == pytest.approx([0.0, -0.01, -0.18])
    # density ratio: log r_pop − log r_syn, a zero radius floored at half the smallest positive
    assert scores["density_ratio"].tolist() == pytest.approx(
        [np.log(0.4) - np.log(0.005), np.log(0.01) - np.log(0.01), np.log(0.2) - np.log(0.18)]
    )


def test_membership_audit_folds_and_interval():
    rng = np.random.default_rng(1)
    cat = lambda n: np.zeros((n, 1), np.int64)  # noqa: E731
    synthetic = Encoded(cat(400), rng.random((400, 2)))
    # members are the synthetic units themselves: both attacks separate them perfectly
    folds = [Fold(Encoded(cat(100), synthetic.num[i * 100 : (i + 1) * 100]), Encoded(cat(100), rng.random((100, 2))),
                  Encoded(cat(150), rng.random((150, 2)))) for i in range(2)]
    r = membership_audit(folds, synthetic)
    assert r.auc == 1.0 and r.attack_auc["distance"] == 1.0 and r.attack_auc["density_ratio"] > 0.99
    assert r.attack == "distance"
    assert r.n_members == r.n_non_members == 200 and r.n_population == 150 and r.n_synthetic == 400
    # unrelated members: about 0.5, with an interval of about ±1.96·√((2·100+1)/(12·100²))/√2
    folds = [Fold(Encoded(cat(100), rng.random((100, 2))), f.non_members, f.population) for f in folds]
    r = membership_audit(folds, synthetic)
    low, high = r.auc_ci
    assert low < 0.5 < high
    assert high - low == pytest.approx(2 * 1.96 * np.sqrt(201 / 120_000) / np.sqrt(2), rel=0.15)


def test_near_copies_move_one_numeric_value_of_training_rows():
    import pandas as pd

    from synth_core.metrics import near_copies

    rng = np.random.default_rng(0)
    training = pd.DataFrame({"a": rng.integers(0, 100, 500), "b": rng.normal(size=500),
                             "c": rng.choice(["x", "y"], 500)})
    table = training.iloc[:200].assign(a=lambda d: d["a"] + 1000)  # no row in common with training
    out = near_copies(table, training, 0.10, seed=3)
    assert len(out) == 200 and list(out.columns) == list(table.columns)
    copies = out.iloc[180:].reset_index(drop=True)
    assert len(out.iloc[:180].merge(table)) == 180  # the kept rows are the table's
    # every copy differs from some training row in exactly one numeric value, by exactly 1
    for row in copies.itertuples(index=False):
        same_c = training[training["c"] == row.c]
        diff = (same_c[["a", "b"]] - [row.a, row.b]).abs()
        assert ((diff.round(12) == 1).sum(axis=1).eq(1) & (diff.round(12) == 0).sum(axis=1).eq(1)).any()
    assert near_copies(table, training, 0.10, seed=3).equals(out)
