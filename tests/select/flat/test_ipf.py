"""synth_core.select.flat._ipf: raking the pool's weights and drawing integer rows from them."""

from __future__ import annotations

import numpy as np
import pytest

from synth_core.errors import InputError
from synth_core.select import _features as features
from synth_core.select import _objective as obj
from synth_core.select.flat import _ipf as ipf
from tests.select.codes import N_BINS, uniform_codes


def pair_l1(codes, rows, train, pairs, weights=None):
    """Mean over pairs of the L1 distance between the normalised pair tables."""
    fs = features.build_feature_set(N_BINS, pairs, include_uni=False)
    target = obj.target_counts(train, fs, 1.0)
    if weights is not None:
        counts = obj.cell_counts(codes, fs, weights=weights)
    else:
        counts = obj.subset_counts(codes, rows, fs)
    return obj.feature_errors(counts, target, fs)


def test_ipf_fits_pair_tables_when_pool_contains_a_perfect_subset(data):
    train, pool, pairs = data["train"], data["pool"], data["pairs"]
    n_train = train.shape[0]
    res = ipf.fit_weights(pool, train, N_BINS, pairs, total=n_train, tol=1e-3, max_sweeps=50)
    assert res.converged and res.stop_reason == "converged"
    assert res.weights.sum() == pytest.approx(n_train)
    assert res.errors[-1] < res.errors[0] / 20
    # weighted pair tables match the training tables: L1 per pair < 0.002 (mean) / 0.005 (max)
    # (a random pool subset is at ~0.6)
    l1_w = pair_l1(pool, None, train, pairs, weights=res.weights)
    assert l1_w.mean() < 0.002 and l1_w.max() < 0.005

    rows = ipf.integerise(res.weights, n_train, np.random.default_rng(3), oversize=1.0)
    assert rows.shape == (n_train,) and np.all(np.diff(rows) > 0)
    rand = np.sort(np.random.default_rng(4).choice(pool.shape[0], n_train, replace=False))
    l1_int = pair_l1(pool, rows, train, pairs).mean()
    l1_rand = pair_l1(pool, rand, train, pairs).mean()
    assert l1_int < 0.3 * l1_rand
    # training rows (a third of the pool) are strongly over-represented
    assert np.mean(rows < n_train) > 0.55


def test_ipf_patience_stops_when_the_draw_stops_improving(data):
    """With ``patience``, the fit stops once that many sweeps in a row scored no better than the
    best so far; the sweeps up to then are those of the fit without it, bit for bit."""
    train, pool, pairs = data["train"], data["pool"], data["pairs"]
    scores = iter([5.0, 3.0, 2.0, 2.5, 2.0, 1.0] + [0.5] * 50)
    res = ipf.fit_weights(pool, train, N_BINS, pairs, tol=0.0, max_sweeps=20, score=lambda w: next(scores),
                          patience=2)
    assert res.stop_reason == "no_gain" and res.n_sweeps == 4 and res.kept_sweep == 4
    np.testing.assert_array_equal(res.scores, [5.0, 3.0, 2.0, 2.5, 2.0])
    same = ipf.fit_weights(pool, train, N_BINS, pairs, tol=0.0, max_sweeps=4)
    np.testing.assert_array_equal(res.weights, same.weights)
    with pytest.raises(InputError):
        ipf.fit_weights(pool, train, N_BINS, pairs, score=lambda w: 0.0, patience=0)


def test_ipf_zero_target_cells_drive_weights_to_zero():
    rng = np.random.default_rng(2)
    train = uniform_codes(500, rng)
    train[:, 1] = np.where(train[:, 0] == 0, 0, train[:, 1])  # (0, b>0) never occurs
    pool = uniform_codes(2000, rng)
    res = ipf.fit_weights(pool, train, N_BINS, [(0, 1)], max_sweeps=5)
    impossible = (pool[:, 0] == 0) & (pool[:, 1] > 0)
    assert np.all(res.weights[impossible] == 0)
    assert res.weights[~impossible].min() > 0


def test_integerise_properties():
    rng = np.random.default_rng(0)
    w = rng.random(10_000) ** 3
    w[:50] = 1e3  # heavy rows: capped at one use, taken for certain
    w[50:2000] = 0.0
    rows = ipf.integerise(w, 2000, 11, oversize=1.25)
    assert rows.shape == (2500,) and np.unique(rows).size == 2500
    assert np.all(np.isin(np.arange(50), rows))
    assert not np.any((rows >= 50) & (rows < 2000))
    # expectation-preserving: inclusion frequency ~ min(1, c w)
    pi = ipf.inclusion_probabilities(w, 2500)
    assert pi.sum() == pytest.approx(2500) and pi.max() == 1.0
    hits = np.zeros(w.size)
    for s in range(200):
        hits[ipf.integerise(w, 2000, s, oversize=1.25)] += 1
    big = pi > 0.3
    np.testing.assert_allclose(hits[big] / 200, pi[big], atol=0.15)
    assert abs(hits.sum() / 200 - 2500) < 1e-9
    # fewer positive rows than needed: all positive rows plus a random fill
    w2 = np.zeros(100)
    w2[:10] = 1.0
    rows2 = ipf.integerise(w2, 20, 0, oversize=1.0)
    assert rows2.size == 20 and np.all(np.isin(np.arange(10), rows2))


def test_ipf_without_pairs_rakes_the_margins():
    from synth_core.select.flat._ipf import fit_weights

    rng = np.random.default_rng(0)
    train = rng.integers(0, 4, (400, 1)).astype(np.uint8)
    pool = np.minimum(rng.geometric(0.5, (4000, 1)) - 1, 3).astype(np.uint8)
    fit = fit_weights(pool, train, [4], np.zeros((0, 2), dtype=np.int64))
    weighted = np.bincount(pool[:, 0], weights=fit.weights, minlength=4) / fit.weights.sum()
    np.testing.assert_allclose(weighted, np.bincount(train[:, 0], minlength=4) / 400, atol=1e-9)
