"""synth_core.select._objective: targets, counts, the objective, and exact row gains."""

from __future__ import annotations

import numpy as np
import pytest

from synth_core.select import _features as features
from synth_core.select import _objective as obj
from tests.select.codes import N_BINS, uniform_codes


def test_objective_matches_hand_computation():
    fs = features.build_feature_set(np.array([2, 2]), [(0, 1)])
    train = np.array([[0, 0], [0, 1], [1, 1], [1, 1]], dtype=np.uint8)
    subset = np.array([[0, 0], [1, 1]], dtype=np.uint8)
    target = obj.target_counts(train, fs, 2)
    np.testing.assert_allclose(target, [1, 1, 0.5, 1.5, 0.5, 0.5, 0, 1])
    counts = obj.cell_counts(subset, fs)
    # uni0: |.5-.5|+|.5-.5| = 0; uni1: |.5-.25|+|.5-.75| = .5; pair: .25+.25+0+.5... per cell
    # pair q = [.5, 0, 0, .5], p = [.25, .25, 0, .5] -> .25 + .25 = .5
    errs = obj.feature_errors(counts, target, fs)
    np.testing.assert_allclose(errs, [0.0, 0.5, 0.5])
    assert obj.objective(counts, target, fs) == pytest.approx(0.5 * (0 + 0.5) / 2 + 0.5 * 0.5)
    np.testing.assert_allclose(obj.feature_accuracies(counts, target, fs), [1.0, 0.75, 0.75])
    assert obj.phase_accuracies(counts, target, fs) == {"uni": pytest.approx(0.875), "bi": pytest.approx(0.75)}
    # equal sizes: objective == count_error / N_target
    assert obj.count_error(counts, target, fs) / 2 == pytest.approx(obj.objective(counts, target, fs))


def test_weighted_target_equals_replicated_rows():
    rng = np.random.default_rng(5)
    fs = features.build_feature_set(N_BINS, [(0, 1), (2, 3)], [(0, 1, 2)])
    train = uniform_codes(40, rng)
    reps = rng.integers(1, 4, 40)
    weighted = obj.target_counts(train, fs, 100, weights=reps.astype(float))
    replicated = obj.target_counts(np.repeat(train, reps, axis=0), fs, 100)
    np.testing.assert_allclose(weighted, replicated)


def test_removal_and_addition_gains_are_exact_objective_changes(data):
    pool, fs = data["pool"], data["fs"]
    rng = np.random.default_rng(8)
    subset = np.sort(rng.choice(pool.shape[0], 800, replace=False))
    target = obj.target_counts(data["train"], fs, 700)
    counts = obj.subset_counts(pool, subset, fs)
    base = obj.count_error(counts, target, fs)
    gains = obj.removal_gains(pool, subset, fs, counts, target)
    for i in (0, 17, 400, 799):
        after = obj.subset_counts(pool, np.delete(subset, i), fs)
        assert gains[i] == pytest.approx(base - obj.count_error(after, target, fs), abs=1e-12)
    outside = np.setdiff1d(np.arange(pool.shape[0]), subset)[[0, 5, 900]]
    add = obj.addition_gains(pool, outside, fs, counts, target)
    for g, r in zip(add, outside):
        after = obj.subset_counts(pool, np.append(subset, r), fs)
        assert g == pytest.approx(base - obj.count_error(after, target, fs), abs=1e-12)
    # weighted rows: the row's weight replaces 1
    rw = rng.random(pool.shape[0]) + 0.5
    wcounts = obj.subset_counts(pool, subset, fs, weights=rw)
    wbase = obj.count_error(wcounts, target, fs)
    wg = obj.removal_gains(pool, subset, fs, wcounts, target, row_weights=rw)
    after = obj.subset_counts(pool, subset[1:], fs, weights=rw)
    assert wg[0] == pytest.approx(wbase - obj.count_error(after, target, fs), abs=1e-12)


def test_partial_gains_sum_to_the_full_gains(data):
    pool, fs = data["pool"], data["fs"]
    subset = np.arange(900)
    target = obj.target_counts(data["train"], fs, 900)
    resid = obj.subset_counts(pool, subset, fs) - target
    full = np.empty(pool.shape[0])
    obj.gains_from_resid(pool, fs, resid, np.zeros(0), +1, full)
    parts = np.zeros(pool.shape[0])
    for arity in (1, 2, 3):
        out = np.empty(pool.shape[0])
        obj.partial_gains(pool, fs, resid, np.zeros(0), +1, np.flatnonzero(fs.arity == arity), out)
        parts += out
    np.testing.assert_allclose(parts, full, atol=1e-12)
