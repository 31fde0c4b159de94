"""The flat graph's candidate pool in adaptive mode, materialised in-process with the real engine."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from synth_core.errors import InputError
from synth_core.generate import read_curve
from synth_core.ops import DatasetSpec
from synth_orchestration.assets import flat
from synth_orchestration.resources import ArtifactStore, MetricStoreResource

POOL_OP = {"ops": {"flat__candidate_pool": {"ops": {"flat_plan_pool": {"config": {
    "adaptive_pool": True, "min_pool_factor": 2.0, "pool_factor": 4.0, "pool_step_factor": 1.0, "pool_tolerance": 0.0,
    "pool_min_shard_rows": 0,
}}}}}}


def _materialize(root: Path, run_config: dict, instance=None):
    return dg.materialize(
        flat.ASSETS,
        selection=[flat.source_data, flat.trained_generator, flat.candidate_pool],
        partition_key="tiny_flat",
        resources={"artifacts": ArtifactStore(artifact_root=str(root / "artifacts")),
                   "metrics": MetricStoreResource(database=str(root / "metrics.duckdb"))},
        run_config=run_config,
        raise_on_error=False,
        instance=instance,
    )


def _pool_metadata(result) -> dict:
    return next({k: v.value for k, v in e.materialization.metadata.items()}
                for e in result.get_asset_materialization_events()
                if e.materialization.asset_key == dg.AssetKey(["flat", "candidate_pool"]))


@pytest.mark.slow
def test_adaptive_pool_grows_in_the_assembling_step_and_records_its_curve(tmp_path):
    # tiny_flat's datasets entry sets adaptive_pool: false; the run config's true still wins, as any
    # field a run config names does (even one equal to its default)
    result = _materialize(tmp_path, POOL_OP)
    assert result.success
    # the parallel steps make the 2 x part (target 400: shards of 400 rows), the rest grows one at a time
    steps = sorted({e.step_key for e in result.all_events if e.step_key and "pool_shard" in e.step_key})
    assert steps == [f"flat__candidate_pool.flat_pool_shard[shard_{k:05d}]" for k in range(2)]
    pool = result.output_for_node("flat__candidate_pool")
    curve = read_curve(pool["dir"])
    meta = _pool_metadata(result)
    kept = curve["curve"][-1]["shards"]
    assert len(pool["shards"]) == kept and pool["n_total"] == 400 * kept
    assert meta["pool_stop_reason"] == curve["stop_reason"]
    assert meta["pool_factor_reached"] == pytest.approx(kept)
    assert "proxy objective" in meta["pool_curve"] and "data:image/png;base64," in meta["pool_curve"]
    objectives = [p["objective"] for p in curve["curve"]]
    if curve["stop_reason"] == "tolerance":  # tolerance 0: it stopped because the last shard did not help
        assert objectives[-1] >= objectives[-2]
    else:
        assert kept == 4 and all(b < a for a, b in zip(objectives, objectives[1:]))
    assert len(pd.concat(pd.read_parquet(p) for p in pool["shards"])) == 400 * kept
    assert json.loads((Path(pool["dir"]) / "pool.json").read_text())["n_total"] == 1600

    # a re-run resumes: every shard is found on disk, the curve is read back, the same pool results
    again = _materialize(tmp_path, POOL_OP)
    assert again.success
    assert again.output_for_node("flat__candidate_pool")["shards"] == pool["shards"]
    assert _pool_metadata(again)["shards_reused"] == kept

    # the default shard floor (100,000 rows) meets the memory bound of shard_size 1000 here: a 4 x
    # maximum is then one shard past the 4 x start, which leaves the rule nothing to decide
    short = {"ops": {"flat__candidate_pool": {"ops": {"flat_plan_pool": {"config": {
        "adaptive_pool": True, "pool_factor": 4.0}}}}}}
    instance = dg.DagsterInstance.ephemeral()
    fixed = _materialize(tmp_path, short, instance)
    assert fixed.success
    value = fixed.output_for_node("flat__candidate_pool")
    assert read_curve(value["dir"]) is None and "pool_curve" not in _pool_metadata(fixed)
    assert [len(pd.read_parquet(p)) for p in value["shards"]] == [1000, 600]
    logs = [e.user_message for e in instance.all_logs(fixed.run_id) if "nothing to decide" in e.user_message]
    assert logs and "1,600 rows" in logs[0]


def _settings(config) -> dict:
    return {k: getattr(config, k) for k in ("adaptive_pool", "min_pool_factor", "pool_factor", "pool_step_factor",
                                            "pool_tolerance", "pool_min_shard_rows")}


def test_pools_are_adaptive_by_default_fixed_on_request_and_a_small_maximum_is_a_fixed_pool():
    from synth_core.generate import AdaptivePool
    from synth_orchestration.assets.pool import _adaptive
    from synth_orchestration.configs import GroupPoolConfig, PoolConfig

    flat_spec = DatasetSpec(name="t", kind="flat", source="t.csv")
    seq_spec = DatasetSpec(name="s", kind="sequential", source="s.csv", group_key="g")
    assert _adaptive(_settings(PoolConfig()), flat_spec) == AdaptivePool(max_factor=PoolConfig().pool_factor)
    assert _adaptive(_settings(GroupPoolConfig()), seq_spec) == AdaptivePool(max_factor=GroupPoolConfig().pool_factor)
    assert _adaptive({**_settings(PoolConfig()), "adaptive_pool": False}, flat_spec) is None
    on = _settings(PoolConfig())
    # a maximum below the starting size: the pool is that size, not a refusal
    small = _adaptive({**on, "pool_factor": 3.0}, flat_spec)
    assert (small.min_factor, small.max_factor) == (3.0, 3.0)
    assert _adaptive({**on, "pool_min_shard_rows": 0}, flat_spec).min_shard_rows == 0


def test_differential_privacy_keeps_the_pool_fixed_and_refuses_an_explicit_adaptive_pool():
    from synth_orchestration.assets.pool import _adaptive
    from synth_orchestration.configs import PoolConfig

    dp = DatasetSpec(name="d", kind="flat", source="t.csv", privacy={"epsilon": 8, "delta": 1e-6})
    on = _settings(PoolConfig())
    assert on["adaptive_pool"]
    assert _adaptive(on, dp) is None  # on by default, not asked for: training must not size the pool
    with pytest.raises(InputError, match=r"dataset 'd': adaptive_pool reads training .* set adaptive_pool: false"):
        _adaptive(on, dp, asked=True)
