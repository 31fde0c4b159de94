"""``<kind>/candidate_pool``: the pool selection chooses from, as Parquet shards.

A graph asset: plan the shards, make each in its own step (``DynamicOut``: the multiprocess or
k8s executor generates shards concurrently, a failed shard is retried alone, shards already on
disk are skipped so a re-run resumes), then assemble. A dataset that brings its own pool
(``pool:`` in datasets.yaml, a table or a folder of shards from any generator) has one step
instead, which checks the pool against training (columns, types, converted where no value is
lost) and stores it as a shard keyed by its content.
"""

import hashlib
import json
from pathlib import Path
from typing import Callable

import dagster as dg
import numpy as np

from synth_core.errors import InputError
from synth_core.io import read_table, write_table
from synth_core.ops import POOL_ASSET, asset_name
from synth_orchestration.assets.source import read_source
from synth_orchestration.common import Stage, merged_settings, selection_keys, spec_for, user_errors
from synth_orchestration.deploy_tags import step_tags
from synth_orchestration.resources import ArtifactStore, MetricStoreResource

GIVEN_SHARD = "shard-00000.parquet"


def _log_progress(context, what: str):
    last = [0.0]

    def report(done, total, units, rate, eta) -> None:
        import time

        now = time.monotonic()
        if done == total or now - last[0] >= 5.0:
            last[0] = now
            eta_text = f"{eta:.0f} s" if eta is not None else "?"
            context.log.info(f"{what}: shard {done}/{total}, {units:,} done, {rate:,.0f}/s, ETA {eta_text}")

    return report


def _plan(artifacts: ArtifactStore, kind: str, spec, trained_generator: dict, n_total: int, settings: dict) -> dict:
    """Where the pool goes and how it is cut; the folder is keyed by generator and settings so a re-run resumes."""
    from synth_core.generate import shard_sizes

    params = {"n": n_total, "shard": int(settings["shard_size"]), "seed": int(settings["seed"]),
              "t": float(settings["temperature"])}
    tag = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    pool_dir = artifacts.pools_dir(kind, spec.name) / f"{trained_generator['identity']}-{tag}"
    return {"dir": str(pool_dir), "generator": trained_generator["path"], "n_total": n_total,
            "shard_size": params["shard"], "seed": params["seed"], "temperature": params["t"],
            "n_shards": len(shard_sizes(n_total, params["shard"]))}


def _generate(context, plan: dict, only=None):
    from synth_core.generate import GeneratorHandle, generate_pool

    handle = GeneratorHandle.load(plan["generator"])
    try:
        return generate_pool(
            handle, plan["n_total"], plan["dir"], shard_size=plan["shard_size"], seed=plan["seed"],
            temperature=plan["temperature"], progress=_log_progress(context, "pool"), only=only,
        )
    finally:
        handle.close()


def import_given_pool(plan: dict) -> dict:
    """Store a dataset's own pool as one Parquet shard of training's columns and dtypes (once per
    content); returns the pool's shards and sizes."""
    from synth_core.conform import conform_table
    from synth_core.metrics import check_inputs

    folder = Path(plan["dir"])
    shard = folder / GIVEN_SHARD
    training = read_source(plan["source"], "training")
    key = plan["source"]["group_key"]
    if not shard.is_file():
        pool = read_table(plan["given"], what="pool")
        names = {"training": "training", "synthetic": f"pool {plan['given']}"}
        check_inputs(training, pool, group_key=key, names=names)
        pool = conform_table(pool[list(training.columns)], training, name=f"pool {plan['given']}",
                             identifiers=(key,) if key else ())
        write_table(pool, shard)
    table = read_table(shard, what="pool")
    n_units = int(table[key].nunique()) if key else len(table)
    return {"dir": str(folder), "shards": [str(shard)], "n_total": n_units, "n_rows": len(table), "elapsed_s": 0.0,
            "shards_skipped": 1}


def read_pool_table(shards: list[str], training, group_key: str | None = None):
    """The whole pool as one table with training's columns and dtypes, shards in order: the form in
    which ``synth select`` reads a pool (the group key is an identifier, kept as it is)."""
    import pandas as pd

    from synth_core.conform import conform_table

    pool = pd.concat([pd.read_parquet(p, columns=list(training.columns)) for p in shards], ignore_index=True)
    return conform_table(pool, training, identifiers=(group_key,) if group_key else ())


def _pool_value(result) -> dict:
    return {
        "dir": str(result.out_dir),
        "shards": [str(p) for p in result.shard_paths],
        "n_total": int(result.n_total),
        "n_rows": int(result.n_rows),
        "elapsed_s": float(result.elapsed_s),
        "shards_skipped": int(result.shards_skipped),
    }


def candidate_pool_asset(kind: str, config_cls: type, common: dict, assemble: Callable, description: str):
    """``<kind>/candidate_pool`` (module docstring). ``assemble(context, spec, settings, source_data, pool,
    stage, out)`` turns the finished pool into the asset's (value, figures, metadata); ``out`` is the
    run's folder for derived files."""
    unit = "rows" if kind == "flat" else "groups"

    @dg.op(name=f"{kind}_plan_pool", out=dg.DynamicOut(dict), tags=step_tags("plan_pool"))
    def plan_pool(context: dg.OpExecutionContext, config: config_cls, source_data: dict, trained_generator: dict,
                  artifacts: ArtifactStore):
        spec = spec_for(context, kind)
        with user_errors():
            settings = merged_settings(config, spec.selection, selection_keys(kind))
            if trained_generator.get("pool"):  # the dataset's own pool: one step stores it
                folder = artifacts.pools_dir(kind, spec.name) / trained_generator["identity"]
                context.log.info(f"pool given: {trained_generator['pool']}")
                yield dg.DynamicOutput({"given": trained_generator["pool"], "dir": str(folder), "source": source_data,
                                        "k": 0, "settings": settings}, mapping_key="given")
                return
            target = int(source_data["target_size"])
            n_total = int(np.ceil(float(settings["pool_factor"]) * target))
            if n_total < target:
                raise InputError(f"pool_factor {settings['pool_factor']} gives a pool of {n_total:,} {unit}, "
                                 f"smaller than the target size {target:,}")
            plan = _plan(artifacts, kind, spec, trained_generator, n_total, settings)
            _generate(context, plan, only=[])  # writes the pool's manifest, or refuses a mismatching folder
        context.log.info(f"pool of {n_total:,} {unit} in {plan['n_shards']} shards under {plan['dir']}")
        for k in range(plan["n_shards"]):
            yield dg.DynamicOutput({**plan, "k": k, "settings": settings}, mapping_key=f"shard_{k:05d}")

    @dg.op(name=f"{kind}_pool_shard", tags=step_tags(POOL_ASSET))
    def pool_shard(context: dg.OpExecutionContext, shard: dict) -> dict:
        with user_errors():
            if "given" in shard:
                pool = import_given_pool(shard)
                context.log.info(f"pool stored: {pool['n_total']:,} {unit} in {pool['shards'][0]}")
                return {**shard, "elapsed_s": 0.0, "reused": True}
            result = _generate(context, shard, only=[shard["k"]])
        context.log.info(f"shard {shard['k']}: {result.n_total:,} {unit}, "
                         f"{'reused' if result.shards_skipped else f'generated in {result.elapsed_s:.1f} s'}")
        return {**shard, "elapsed_s": result.elapsed_s, "reused": bool(result.shards_skipped)}

    @dg.op(name=f"{kind}_assemble_pool", tags=step_tags("assemble_pool"))
    def assemble_pool(context: dg.OpExecutionContext, source_data: dict, shards: list[dict],
                      artifacts: ArtifactStore, metrics: MetricStoreResource):
        plan = shards[0]
        spec = spec_for(context, kind)
        stage = Stage(context, metrics, spec.name, asset=asset_name(kind, POOL_ASSET))
        out = artifacts.run_dir(kind, spec.name, context.run.run_id, POOL_ASSET)
        with user_errors(cleanup=out):
            if "given" in plan:
                pool = import_given_pool(plan)
            else:
                pool = _pool_value(_generate(context, plan))  # every shard exists: this only lists them
                pool["elapsed_s"] = float(sum(s["elapsed_s"] for s in shards))
                pool["shards_skipped"] = int(sum(s["reused"] for s in shards))
            value, figures, metadata = assemble(context, spec, plan["settings"], source_data, pool, stage, out)
        context.add_output_metadata({
            **figures, **metadata,
            "shards": dg.MetadataValue.int(len(pool["shards"])),
            "shards_reused": dg.MetadataValue.int(pool["shards_skipped"]),
            "generation_s": dg.MetadataValue.float(pool["elapsed_s"]),
            "artifact_dir": dg.MetadataValue.path(pool["dir"]),
        })
        return value

    @dg.graph_asset(name=POOL_ASSET, **common, kinds={"parquet"}, description=description)
    def candidate_pool(source_data: dict, trained_generator: dict):
        shards = plan_pool(source_data, trained_generator).map(pool_shard).collect()
        return assemble_pool(source_data, shards)

    return candidate_pool
