"""``<kind>/candidate_pool``: the pool selection chooses from, as Parquet shards.

A graph asset: plan the shards, make each in its own step (``DynamicOut``: the multiprocess or
k8s executor generates shards concurrently, a failed shard is retried alone, shards already on
disk are skipped so a re-run resumes), then assemble. A dataset that brings its own pool
(``pool:`` in datasets.yaml, a table or a folder of shards from any generator) has one step
instead, which checks the pool against training (columns, types, converted where no value is
lost) and stores it as a shard keyed by its content.

Adaptive pools (``adaptive_pool``, :class:`synth_core.generate._pool.AdaptivePool`): the parallel
steps make the ``min_pool_factor`` part, then the assembling step adds shards one at a time until one
more shard no longer improves the selection's proxy objective by ``pool_tolerance`` (or
``pool_factor`` is reached); the curve (pool size → proxy objective) is in the metadata, as a table
and a plot, and in ``adaptive.json`` beside the shards.
"""

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import numpy as np

from synth_core.errors import InputError
from synth_core.io import read_table, write_table
from synth_core.ops import POOL_ASSET, asset_name
from synth_core.report import curve_png
from synth_core.schema import Schema
from synth_orchestration.assets.source import read_source
from synth_orchestration.common import Stage, explicit_keys, merged_settings, selection_keys, spec_for, user_errors
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


def _adaptive(settings: dict, spec, asked: bool = False):
    """The run's :class:`AdaptivePool` (``pool_factor`` is its maximum), None for a fixed pool.

    Differential privacy keeps the pool fixed: the adaptive rule sizes the pool from objectives on
    training, a use of training outside the stated budget; ``asked`` (the dataset or the run config
    names ``adaptive_pool``) turns that into a refusal."""
    from synth_core.generate import AdaptivePool

    if not settings.get("adaptive_pool"):
        return None
    if spec.privacy is not None:
        if asked:
            raise InputError(f"dataset {spec.name!r}: adaptive_pool reads training to size the pool, outside the "
                             "differential-privacy budget; set adaptive_pool: false")
        return None
    # a pool_factor below the starting size makes a fixed pool of that size (the rule has nothing to decide)
    top = float(settings["pool_factor"])
    return AdaptivePool(enabled=True, min_factor=min(float(settings["min_pool_factor"]), top), max_factor=top,
                        step_factor=float(settings["pool_step_factor"]), tolerance=float(settings["pool_tolerance"]),
                        min_shard_rows=int(settings["pool_min_shard_rows"]))


def _rows_per_unit(source_data: dict) -> float:
    """Training's table rows per pool unit as :func:`grow_pool` counts them, from the key column only."""
    import pandas as pd

    from synth_core.generate import rows_per_unit

    key = source_data.get("group_key")
    return rows_per_unit(pd.read_parquet(source_data["training"], columns=[key]), key) if key else 1.0


def _plan(artifacts: ArtifactStore, kind: str, spec, trained_generator: dict, n_total: int, settings: dict,
          adaptive=None, n_target: int | None = None) -> dict:
    """Where the pool goes and how it is cut; the folder is keyed by generator and settings so a re-run resumes.
    An adaptive pool's folder is keyed by its settings too: it then holds exactly the shards its rule kept."""
    from synth_core.generate import shard_sizes

    params = {"n": n_total, "shard": int(settings["shard_size"]), "seed": int(settings["seed"]),
              "t": float(settings["temperature"])}
    if adaptive is not None:
        params["adaptive"] = adaptive.to_dict()
    tag = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    pool_dir = artifacts.pools_dir(kind, spec.name) / f"{trained_generator['identity']}-{tag}"
    return {"dir": str(pool_dir), "generator": trained_generator["path"], "n_total": n_total,
            "shard_size": params["shard"], "seed": params["seed"], "temperature": params["t"],
            "n_shards": len(shard_sizes(n_total, params["shard"])),
            **({"adaptive": params["adaptive"], "n_target": n_target} if adaptive is not None else {})}


def _generate(context, plan: dict, only=None):
    from synth_core.generate import generate_pool, load_generator

    handle = load_generator(plan["generator"])
    try:
        return generate_pool(
            handle, plan["n_total"], plan["dir"], shard_size=plan["shard_size"], seed=plan["seed"],
            temperature=plan["temperature"], progress=_log_progress(context, "pool"), only=only,
        )
    finally:
        handle.close()


def _grow(context, plan: dict, source_data: dict):
    """Complete an adaptive pool: its first shards exist (the parallel steps); add shards while they pay."""
    from synth_core.generate import AdaptivePool, grow_pool, load_generator

    settings = AdaptivePool(**plan["adaptive"])
    training = read_source(source_data, "training")
    handle = load_generator(plan["generator"])
    try:
        return grow_pool(handle, training, plan["n_target"], plan["dir"], settings, shard_size=plan["shard_size"],
                         seed=plan["seed"], temperature=plan["temperature"], progress=_log_progress(context, "pool"))
    finally:
        handle.close()


def curve_metadata(result, unit: str) -> dict:
    """An adaptive pool's curve as asset metadata: a markdown table and plot, the size reached and why."""
    lines = [f"| shards | {unit} | × target | proxy objective | gain | proxy s |",
             "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    prev = None
    for p in result.curve:
        gain = "" if prev is None else f"{(prev - p.objective) / prev:+.2%}"
        lines.append(f"| {p.shards} | {p.units:,} | {p.factor:g} | {p.objective:.6f} | {gain} | {p.proxy_s:.1f} |")
        prev = p.objective
    text = "\n".join(lines) + f"\n\nstopped by: {result.stop_reason}\n\n"
    png = curve_png([p.factor for p in result.curve], [p.objective for p in result.curve], "pool size / target",
                    "proxy objective")
    text += f"![proxy objective vs pool size](data:image/png;base64,{png})"
    return {
        "pool_curve": dg.MetadataValue.md(text),
        "pool_factor_reached": dg.MetadataValue.float(float(result.curve[-1].factor)),
        "pool_stop_reason": dg.MetadataValue.text(result.stop_reason),
        "pool_proxy_s": dg.MetadataValue.float(float(result.proxy_s)),
    }


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
        # typed as training was (date-like text in its format, left-out columns dropped)
        pool = Schema.from_records(plan["source"].get("schema", ())).apply(
            read_table(plan["given"], what="pool"), what=f"pool {plan['given']}")
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
            settings = merged_settings(context, config, spec.selection, selection_keys(kind))
            if trained_generator.get("pool"):  # the dataset's own pool: one step stores it
                folder = artifacts.pools_dir(kind, spec.name) / trained_generator["identity"]
                context.log.info(f"pool given: {trained_generator['pool']}")
                yield dg.DynamicOutput({"given": trained_generator["pool"], "dir": str(folder), "source": source_data,
                                        "k": 0, "settings": settings}, mapping_key="given")
                return
            target = int(source_data["target_size"])
            by_factor = int(np.ceil(float(settings["pool_factor"]) * target))
            if by_factor < target:
                raise InputError(f"pool_factor {settings['pool_factor']} gives a pool of {by_factor:,} {unit}, "
                                 f"smaller than the target size {target:,}")
            from synth_core.generate import adaptive_plan, pool_units

            asked = "adaptive_pool" in spec.selection or "adaptive_pool" in explicit_keys(context, config)
            adaptive, first = _adaptive(settings, spec, asked), None
            # the minimum in rows reads training's mean group length: not under differential privacy
            min_rows = 0 if spec.privacy is not None else int(settings.get("min_pool_rows", 0))
            per_unit = _rows_per_unit(source_data) if min_rows or adaptive is not None else 1.0
            n_total = pool_units(target, float(settings["pool_factor"]), min_rows, per_unit)
            if adaptive is not None:
                cut = adaptive_plan(target, adaptive, int(settings["shard_size"]), per_unit, min_rows)
                if cut.decides:
                    n_total, first = cut.n_max, cut.min_shards
                    settings = {**settings, "shard_size": cut.shard_size}
                else:
                    context.log.info(f"adaptive pool: the maximum of {n_total:,} {unit} is at most one shard of "
                                     f"{cut.shard_size:,} past the {cut.min_shards}-shard start, so the rule has "
                                     "nothing to decide: a fixed pool")
                    adaptive = None
            plan = _plan(artifacts, kind, spec, trained_generator, n_total, settings, adaptive, target)
            _generate(context, plan, only=[])  # writes the pool's manifest, or refuses a mismatching folder
        if first is None:
            context.log.info(f"pool of {n_total:,} {unit} in {plan['n_shards']} shards under {plan['dir']}")
        else:
            context.log.info(f"adaptive pool: {first} of at most {plan['n_shards']} shards of {plan['shard_size']:,} "
                             f"{unit} first, then one at a time while they pay, under {plan['dir']}")
        for k in range(plan["n_shards"] if first is None else first):
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
            elif "adaptive" in plan:
                grown = _grow(context, plan, source_data)
                pool = _pool_value(grown.pool)
                # the parallel steps' time plus this step's (which found their shards on disk)
                pool["elapsed_s"] = float(sum(s["elapsed_s"] for s in shards)) + grown.pool.elapsed_s
                pool["shards_skipped"] = int(sum(s["reused"] for s in shards)) + grown.pool.shards_skipped - len(shards)
                curve = curve_metadata(grown, unit)
                context.log.info(f"adaptive pool: {grown.pool.n_total:,} {unit} "
                                 f"({grown.curve[-1].factor:g} × target), stopped by {grown.stop_reason}")
            else:
                pool = _pool_value(_generate(context, plan))  # every shard exists: this only lists them
                pool["elapsed_s"] = float(sum(s["elapsed_s"] for s in shards))
                pool["shards_skipped"] = int(sum(s["reused"] for s in shards))
            value, figures, metadata = assemble(context, spec, plan["settings"], source_data, pool, stage, out)
        context.add_output_metadata({
            **figures, **metadata, **(curve if "adaptive" in plan else {}),
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
