"""synth_core.select.flat._trim: greedy trimming of an oversized draw to the target size."""

from __future__ import annotations

import numpy as np
import pytest

from synth_core.select import _features as features
from synth_core.select import _objective as obj
from synth_core.select.flat import _ipf as ipf
from synth_core.select.flat import _trim as trim
from tests.select.codes import N_BINS, latent_codes, uniform_codes


def test_trim_reaches_target_and_beats_random(data):
    pool, fs, train = data["pool"], data["fs"], data["train"]
    n_target = 1200
    res_ipf = ipf.fit_weights(pool, train, N_BINS, data["pairs"], total=1500)
    over = ipf.integerise(res_ipf.weights, n_target, 5, oversize=1.25)
    assert over.size == 1500
    target = obj.target_counts(train, fs, n_target)
    res = trim.trim_to_size(pool, over, fs, target, n_target)
    assert res.rows.shape == (n_target,)
    assert np.all(np.isin(res.rows, over)) and np.all(np.diff(res.rows) > 0)
    assert res.removed.size == 300 and np.intersect1d(res.removed, res.rows).size == 0
    # reported counts / objective / incremental error agree with a recomputation
    fresh = obj.subset_counts(pool, res.rows, fs)
    np.testing.assert_array_equal(res.counts, fresh)
    assert res.objective == pytest.approx(obj.objective(fresh, target, fs))
    assert res.count_error == pytest.approx(obj.count_error(fresh, target, fs), rel=1e-9)
    assert res.count_error / n_target == pytest.approx(res.objective, rel=1e-9)
    rand_objs = [
        obj.objective(obj.subset_counts(pool, np.random.default_rng(s).choice(over, n_target, replace=False), fs),
                      target, fs)
        for s in range(5)
    ]
    assert res.objective < 0.5 * min(rand_objs)
    assert np.all(np.diff(res.trace) < 0)  # every batch lowers the count error


def test_trim_batch_mode_reaches_target_and_keeps_exact_books(data):
    pool, fs, train = data["pool"], data["fs"], data["train"]
    # 1,200 training rows + 300 rows of the other distribution
    over = np.concatenate([np.arange(1200), 1500 + np.arange(300)])
    target = obj.target_counts(train, fs, 1000)
    exact = trim.trim_to_size(pool, over, fs, target, 1000)
    batch = trim.trim_to_size(pool, over, fs, target, 1000, exact=False, batch_fraction=0.3)
    assert batch.rows.shape == (1000,) and batch.n_reevaluations == 500
    fresh = obj.subset_counts(pool, batch.rows, fs)
    np.testing.assert_array_equal(batch.counts, fresh)
    assert batch.count_error == pytest.approx(obj.count_error(fresh, target, fs), rel=1e-9)
    rand = obj.objective(obj.subset_counts(pool, np.random.default_rng(6).choice(over, 1000, replace=False), fs),
                         target, fs)
    assert exact.objective <= batch.objective < 0.5 * rand


def test_trim_lazy_greedy_equals_naive_greedy():
    """Batches + lazy evaluation give exactly the one-row-at-a-time greedy sequence."""
    rng = np.random.default_rng(9)
    fs = features.build_feature_set(N_BINS, [(0, 1), (2, 3), (1, 4)], [(0, 1, 2)])
    train = latent_codes(300, rng)
    pool = np.concatenate([latent_codes(60, rng, noise=0.5), uniform_codes(60, rng)])
    target = obj.target_counts(train, fs, 70)
    subset = np.arange(pool.shape[0])
    res = trim.trim_to_size(pool, subset, fs, target, 70, batch_fraction=0.5)
    alive = list(subset)
    order = []
    while len(alive) > 70:
        counts = obj.subset_counts(pool, np.array(alive), fs)
        g = obj.removal_gains(pool, np.array(alive), fs, counts, target)
        k = int(np.argmax(g))  # first maximum = smallest row (alive is sorted)
        order.append(alive.pop(k))
    np.testing.assert_array_equal(res.removed, order)
