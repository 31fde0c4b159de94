"""The privacy guard on census rows: replicas, near-copies, closeness strata, determinism."""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd
import pytest

from synth_core.errors import InputError
from synth_core.io import read_table
from synth_core.metrics import near_copies
from synth_core.select._guard import GuardSettings, PoolGuard, _closeness, _forest_size, guard_pool


@pytest.fixture(scope="module")
def census(census_paths):
    training = read_table(census_paths["training"])
    holdout = read_table(census_paths["holdout"])
    return training, holdout


def test_fair_pool_loses_nothing(census):
    training, holdout = census
    guard = guard_pool(training, holdout)  # rows the generator never saw: a perfectly fair pool
    assert guard.n_pool == len(holdout)
    f = guard.figures()
    # chance duplicates of real census rows exist (identical people), as often as Good-Turing expects
    assert 0 < f["pool_replicas_seen"] < 0.002 * len(holdout)
    assert abs(f["replica_share"] - f["replica_share_fair"]) < 0.001
    # 1 % of training rows sit this close to another training row; unseen rows do as often
    assert 0.004 < f["near_copy_share"] < 0.02
    assert abs(f["near_copy_share"] - f["near_copy_share_fair"]) < 0.003
    # so removing them would push the output away from training: the guard keeps every unit
    assert guard.replicas == guard.near_copies == 0 and len(guard.candidates) == len(holdout)
    shares = np.bincount(guard.strata, minlength=guard.n_strata) / len(guard.strata)
    assert shares[0] == pytest.approx(0.005, abs=0.002) and shares[-1] == pytest.approx(0.1, abs=0.01)


def test_leaky_pool_loses_every_replica_and_most_near_copies(census):
    training, holdout = census
    rng = np.random.default_rng(3)
    fair = holdout.iloc[:10_000]
    picked = training.iloc[rng.choice(len(training), 1_000, replace=False)]
    copies = picked.iloc[:500]
    nudged = near_copies(picked.iloc[500:], training, share=1.0, seed=4)  # 500 near-copies
    pool = pd.concat([fair, copies, nudged], ignore_index=True)
    guard = guard_pool(training, pool)
    kept = np.zeros(len(pool), bool)
    kept[guard.candidates] = True
    assert not kept[10_000:10_500].any()  # every copy removed
    assert guard.replicas >= 500
    # one value moved by 1 can be a large step in rank space (education 12 -> 13), so not every
    # nudged row is near; the closest ones are
    assert (~kept[10_500:]).mean() > 0.4
    assert (~kept[:10_000]).mean() < 0.03


def test_forest_ranks_distances_like_an_exact_search(census):
    from scipy.stats import spearmanr

    from synth_core.metrics import _units as pv
    from synth_core.metrics._nn_kernels import k_nearest_distances

    training, holdout = census
    training, pool = training.iloc[:8_000], holdout.iloc[:8_000]
    frames = {"training": training, "holdout": training.iloc[:0], "synthetic": pool}
    values, _, is_cat = pv.encode_columns(frames, list(training.columns))
    d_train, _, _ = _closeness(values["training"], values["synthetic"], is_cat, GuardSettings(), seed=0)
    fitted = pv.fit_ranks([values["training"]], is_cat)
    t, p = (pv.apply_ranks(values[k], fitted, is_cat) for k in ("training", "synthetic"))
    exact = k_nearest_distances(p[:, is_cat], p[:, ~is_cat], t[:, is_cat], t[:, ~is_cat], 1)[:, 0]
    assert np.all(d_train >= exact - 1e-12)  # a forest only ever misses closer units
    assert spearmanr(d_train, exact).correlation > 0.98
    assert np.mean(d_train == exact) > 0.6


def test_same_result_for_any_thread_count(census):
    training, holdout = census
    pool = holdout.iloc[:6_000]
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = guard_pool(training, pool, seed=5)
        numba.set_num_threads(max(2, before))
        many = guard_pool(training, pool, seed=5)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one.candidates, many.candidates)
    assert np.array_equal(one.strata, many.strata)
    assert one.threshold == many.threshold


def test_guard_off_keeps_every_unit_but_reports_replicas(census):
    training, holdout = census
    pool = pd.concat([holdout.iloc[:2_000], training.iloc[:100]], ignore_index=True)
    guard = guard_pool(training, pool, settings=GuardSettings(enabled=False))
    assert not guard.enabled and len(guard.candidates) == len(pool)
    assert guard.replicas >= 100
    assert guard.figures()["pool_replicas_removed"] == 0.0 and guard.figures()["pool_replicas_seen"] >= 100


def test_identifier_column_does_not_hide_copies(census):
    training, _ = census
    training = training.iloc[:3_000].assign(customer_id=np.arange(3_000))
    pool = training.iloc[:500].assign(customer_id=np.arange(10_000, 10_500))  # copies with new ids
    pool = pd.concat([pool, training.iloc[:0]], ignore_index=True)
    guard = guard_pool(training, pd.concat([pool, near_copies(training.iloc[500:1_500], training, share=1.0, seed=1)],
                                           ignore_index=True))
    assert "customer_id" in guard.excluded_columns
    assert guard.replicas >= 500


def test_sequential_copies_are_whole_sequence_replicas():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 6, size=400)
    key = np.repeat(np.arange(400), lengths)
    training = pd.DataFrame({"g": key, "x": rng.normal(size=len(key)).round(6),
                             "c": rng.choice(list("abc"), size=len(key))})
    fresh = training.assign(g=training["g"] + 1_000, x=rng.normal(size=len(key)).round(6))
    copied = training[training["g"] < 50].assign(g=lambda f: f["g"] + 5_000)
    pool = pd.concat([fresh, copied], ignore_index=True)
    guard = guard_pool(training, pool, group_key="g")
    assert guard.n_pool == 450 and guard.replicas == 50
    assert np.all(guard.candidates < 400)  # the copies (the last 50 groups) are gone


def test_copies_of_a_profile_five_records_share_are_kept():
    # 5 identical training records: a copy of them identifies none, and in a low-cardinality
    # table nearly every generated row is such a copy; 3 identical records are still exposed
    rng = np.random.default_rng(1)
    training = pd.DataFrame({"a": rng.normal(size=400).round(6), "b": rng.choice(list("xyz"), 400)})
    training.iloc[:5] = [[0.5, "x"]] * 5
    training.iloc[5:8] = [[0.25, "y"]] * 3
    pool = pd.concat([training.iloc[[0, 1]], training.iloc[[5, 100, 101]],
                      pd.DataFrame({"a": rng.normal(size=300).round(6), "b": "y"})], ignore_index=True)
    guard = guard_pool(training, pool)
    kept = set(guard.candidates.tolist())
    assert {0, 1} <= kept and not {2, 3, 4} & kept  # the shared profile kept, the others removed
    assert guard.replicas == 3


def test_a_saved_verdict_loads_unchanged(census, tmp_path):
    from synth_core.select import PoolGuard

    training, holdout = census
    for settings in (GuardSettings(), GuardSettings(enabled=False)):
        guard = guard_pool(training.iloc[:3_000], holdout.iloc[:3_000], settings=settings)
        guard.save(tmp_path / "guard.npz")
        back = PoolGuard.load(tmp_path / "guard.npz")
        assert back.enabled == guard.enabled and back.figures() == guard.figures()
        assert np.array_equal(back.candidates, guard.candidates)
        assert (back.strata is None) if not guard.enabled else np.array_equal(back.strata, guard.strata)


def test_a_pool_of_nothing_but_copies_is_refused(census):
    training, _ = census
    with pytest.raises(InputError, match="replica or near-copy"):
        guard_pool(training.iloc[:2_000], training.iloc[:300])


def test_forest_shrinks_to_the_work_budget():
    settings = GuardSettings(work_budget=1e9)
    assert _forest_size(1_000, 10, settings) == (settings.n_trees, settings.leaf_size)
    trees, leaf = _forest_size(2_600_000, 80, settings)
    assert trees == 2 and 16 <= leaf < settings.leaf_size


def test_near_copy_helper_matches_the_audit_definition(census):
    # the audit's near-copy maker and the guard agree on what a near-copy is: most of them go
    training, holdout = census
    table = near_copies(holdout.iloc[:4_000], training, share=0.25, seed=2)
    guard = guard_pool(training, table)
    assert guard.near_copies + guard.replicas > 0.1 * len(table)


def test_selection_ends_on_the_pools_strata_even_when_the_term_is_too_light(census):
    from synth_core.select.flat import SelectionSettings, run_selection

    training, holdout = census
    training, pool = training.iloc[:4_000], holdout.iloc[:12_000]
    light = dict(closeness_weight=1e-4)  # far too light to hold the strata on its own
    results = {}
    for name, tolerance in (("balanced", GuardSettings().balance_tolerance), ("unbalanced", 10.0)):
        settings = SelectionSettings(seed=0, max_rounds=6, guard=GuardSettings(**light, balance_tolerance=tolerance))
        problem, records = run_selection(training, pool, 1_500, settings)
        results[name] = (records[-1].details["closeness_error"], problem.guard.closeness_floor(1_500))
    (balanced, floor), (unbalanced, _) = results["balanced"], results["unbalanced"]
    assert unbalanced > 0.01  # the accuracy term alone pulls the subset off the pool's strata
    assert balanced <= GuardSettings().balance_tolerance + floor


def _profiles(rng, n: int, levels=(10, 10, 15)) -> pd.DataFrame:
    """Rows of a discrete table whose 1,500 profiles are equally likely: most are seen about four
    times in 6,000 rows, so copies of profiles seen five or more times are common and no replica."""
    return pd.DataFrame({f"c{j}": [f"v{x}" for x in rng.integers(0, m, n)] for j, m in enumerate(levels)})


@pytest.mark.parametrize("seed", [0, 1])
def test_a_replaying_generator_is_held_at_a_fair_copy_rate(seed):
    rng = np.random.default_rng(seed)
    training = _profiles(rng, 6_000)
    fair = guard_pool(training, _profiles(rng, 24_000), seed=seed)  # draws from the population
    replay = guard_pool(training, training.iloc[rng.integers(0, 6_000, 24_000)].reset_index(drop=True), seed=seed)
    assert fair.remedy["copy_remedy_removed"] == 0
    assert abs(fair.remedy["copy_share"] - fair.remedy["copy_share_fair"]) < 2 * fair.remedy["copy_share_se"]
    r = replay.remedy
    assert r["copy_share"] - r["copy_share_fair"] > 5 * r["copy_share_se"] and r["copy_remedy_removed"] > 2_000
    assert replay.figures()["copy_remedy_removed"] == r["copy_remedy_removed"]
    assert len(replay.candidates) == 24_000 - replay.replicas - replay.near_copies - r["copy_remedy_removed"]


def test_copy_remedy_is_recorded_and_survives_save_and_load(tmp_path):
    rng = np.random.default_rng(5)
    training = _profiles(rng, 6_000)
    guard = guard_pool(training, training.iloc[rng.integers(0, 6_000, 24_000)].reset_index(drop=True))
    guard.save(tmp_path / "guard.npz")
    assert PoolGuard.load(tmp_path / "guard.npz").remedy == guard.remedy
    off = guard_pool(training, training.iloc[rng.integers(0, 6_000, 24_000)].reset_index(drop=True),
                     settings=GuardSettings(copy_remedy=False))
    assert "copy_share" not in off.remedy and len(off.candidates) > len(guard.candidates)
