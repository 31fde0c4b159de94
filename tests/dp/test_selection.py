"""DP selection: training reaches the stages only as noisy tables."""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pytest

from synth_core.dp import NoisyTargets, PrivacyBudget
from synth_core.select._objective import cell_counts
from synth_core.select.flat import (
    DPSettings,
    SelectionProblem,
    SelectionSettings,
    dp_targets,
    prepare_dp,
    stage_ipf,
    stage_refine,
    stage_trim,
)


@pytest.fixture(scope="module")
def frames(census_paths):
    training = pd.read_csv(census_paths["training"]).sample(n=1500, random_state=0).reset_index(drop=True)
    pool = pd.read_csv(census_paths["holdout"]).sample(n=6000, random_state=2, replace=True).reset_index(drop=True)
    return training, pool


def _stages(problem: SelectionProblem, settings: SelectionSettings) -> np.ndarray:
    ipf = stage_ipf(problem, settings)
    return stage_refine(problem, stage_trim(problem, ipf.rows, settings), settings).rows


def _reachable(root, depth: int = 6):
    """Every object reachable from ``root`` through references (breadth first, ``depth`` levels)."""
    seen, frontier = {id(root): root}, [root]
    for _ in range(depth):
        nxt = []
        for obj in frontier:
            for ref in gc.get_referents(obj):
                if id(ref) not in seen and not isinstance(ref, type):
                    seen[id(ref)] = ref
                    nxt.append(ref)
        frontier = nxt
    return list(seen.values())


def test_dp_problem_holds_noisy_targets_and_no_training(frames):
    training, pool = frames
    settings = SelectionSettings(seed=0)
    dp = DPSettings(rho=PrivacyBudget(4.0, generator="engine").selection_rho, delta=5e-7)
    problem = prepare_dp(training, pool, 1000, dp, settings)
    assert problem.train_codes is None and isinstance(problem.noisy, NoisyTargets)
    assert not problem.guard.enabled
    reachable = _reachable(problem)
    assert not any(isinstance(o, pd.DataFrame) for o in reachable)
    assert not any(o is training for o in reachable)
    before = _stages(problem, settings)
    # wreck the training frame in place: the stages must not notice (they never see it)
    for col in training.columns:
        training[col] = training[col].sample(frac=1, random_state=9).to_numpy()
    assert np.array_equal(before, _stages(problem, settings))
    # ... while other noisy targets (another noise draw) do change the selection
    other = prepare_dp(frames[0], pool, 1000, dp, SelectionSettings(seed=1))
    assert not np.array_equal(before, _stages(other, settings))


def test_dp_targets_release_the_training_tables_plus_noise(census_paths):
    """With a huge ρ the release equals training's counts under the pool binning (teeth: counting
    the pool or the wrong rows fails); with a small ρ it deviates by about σ."""
    training = pd.read_csv(census_paths["training"]).iloc[:3000]
    pool = pd.read_csv(census_paths["holdout"]).iloc[:6000]
    problem = prepare_dp(training, pool, 1000, DPSettings(rho=1e9, delta=5e-7, shrink=False))
    fs, binner = problem.noisy.feature_set, problem.binner
    true = cell_counts(binner.transform(training[binner.names]), fs)
    assert np.abs(problem.noisy.noisy - true).max() < 0.01
    assert problem.noisy.n == pytest.approx(3000, abs=0.01)
    assert np.abs(cell_counts(problem.pool_codes, fs) - true).max() > 100
    loose = dp_targets(training, binner, fs, rho=0.05, seed=0)
    resid = loose.noisy - true
    assert abs(resid.std() / loose.sigma - 1) < 0.05
    assert loose.sigma == pytest.approx(np.sqrt(fs.n_features / 0.1))


def test_dp_problem_round_trips_through_save(frames, tmp_path):
    training, pool = frames
    settings = SelectionSettings(seed=0)
    problem = prepare_dp(training, pool, 800, DPSettings(rho=0.2, delta=5e-7), settings)
    loaded = SelectionProblem.load(problem.save(tmp_path / "problem"))
    assert loaded.train_codes is None and not (tmp_path / "problem" / "train_codes.npy").exists()
    assert np.array_equal(loaded.target, problem.target)
    assert np.array_equal(_stages(loaded, settings), _stages(problem, settings))
