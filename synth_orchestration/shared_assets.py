"""Steps shared by the flat and sequential graphs: training with reuse, pools, gating, publishing."""

import base64
import hashlib
import io
import json
import os
import shutil
import time
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Callable

import dagster as dg
import numpy as np
import pandas as pd

from synth_core.datasets import load_dataset
from synth_core.errors import InputError
from synth_core.gate import GateSettings
from synth_core.io import atomic_path, write_table
from synth_core.select import conform_to
from synth_orchestration.common import (
    DATASETS_BASE,
    Stage,
    merged_settings,
    selection_keys,
    spec_for,
    user_errors,
    write_json,
)
from synth_orchestration.deploy_tags import step_tags
from synth_orchestration.resources import ArtifactStore, MetricStoreResource

_GATE = GateSettings()  # the gate's default thresholds, for the check descriptions

GENERATOR_CODE_VERSION = "1"  # bump when training code changes in a way that invalidates reuse
STAGES = {
    "flat": [("random", "candidate_pool"), ("ipf", "ipf_subset"), ("trimmed", "trimmed_subset"), ("refined", "refined_output")],
    "sequential": [("random", "candidate_pool"), ("coherence", "coherence_subset"), ("refined", "refined_output")],
}


def frame_digest(frame: pd.DataFrame) -> str:
    """Content hash of a table (values, column names and dtypes): the data version of a source."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    header = json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode()
    return hashlib.sha256(hashed + header).hexdigest()


def read_source(source_data: dict, which: str) -> pd.DataFrame:
    return pd.read_parquet(source_data[which])


def source_data_result(context: dg.AssetExecutionContext, artifacts: ArtifactStore, metrics: MetricStoreResource,
                       kind: str) -> dg.MaterializeResult:
    """Load the partition's dataset, split off the holdout, write both parts (asset ``source_data``).

    The target size counts rows (flat) or groups (sequential); it defaults to training's.
    """
    spec = spec_for(context, kind)
    out = artifacts.run_dir(kind, spec.name, context.run.run_id, "source_data")
    stage = Stage(context, metrics, spec.name)
    with user_errors(cleanup=out):
        tables = load_dataset(spec, DATASETS_BASE)
        write_table(tables.training, out / "training.parquet")
        write_table(tables.holdout, out / "holdout.parquet")
        figures = {"training_rows": len(tables.training), "holdout_rows": len(tables.holdout)}
        extra = {}
        if spec.group_key is not None:
            lengths = tables.training.groupby(spec.group_key, sort=False).size()
            figures.update({"training_groups": len(lengths), "holdout_groups": int(tables.holdout[spec.group_key].nunique())})
            extra = {
                "group_key": dg.MetadataValue.text(spec.group_key),
                "context_columns": dg.MetadataValue.json(list(spec.context_columns)),
                "sequence_length_min": dg.MetadataValue.int(int(lengths.min())),
                "sequence_length_median": dg.MetadataValue.float(float(lengths.median())),
                "sequence_length_max": dg.MetadataValue.int(int(lengths.max())),
            }
            natural = len(lengths)
        else:
            natural = len(tables.training)
        target = int(spec.target_size or natural)
        value = {
            "dataset": spec.name,
            "training": str(out / "training.parquet"),
            "holdout": str(out / "holdout.parquet"),
            "target_size": target,
            "group_key": spec.group_key,
            "columns": list(tables.training.columns),
            "source_hashes": tables.source_hashes,
            "training_digest": frame_digest(tables.training),
        }
        figures = stage.record(figures)
    return dg.MaterializeResult(
        value=value,
        metadata={
            **figures,
            "rows": dg.MetadataValue.int(len(tables.training) + len(tables.holdout)),
            "columns": dg.MetadataValue.int(tables.training.shape[1]),
            "holdout_from_file": dg.MetadataValue.bool(tables.holdout_from_file),
            "target_size": dg.MetadataValue.int(target),
            "column_kinds": dg.MetadataValue.json(tables.column_kinds()),
            "artifact_dir": dg.MetadataValue.path(str(out)),
            **extra,
        },
    )


def generator_result(context: dg.AssetExecutionContext, config, source_data: dict, artifacts: ArtifactStore,
                     metrics: MetricStoreResource, kind: str) -> dg.MaterializeResult:
    """Train (or reuse) the partition's generator (asset ``trained_generator``)."""
    spec = spec_for(context, kind)
    stage = Stage(context, metrics, spec.name)
    with user_errors():
        settings = merged_settings(config, spec.training, set(config.model_dump()))
        result = train_or_reuse(context, artifacts, kind, spec, source_data, settings)
        figures = stage.record({"training_s": result["training_s"], "reused": float(result["reused"])})
    return dg.MaterializeResult(
        value=result,
        metadata={
            **figures,
            "generator_id": dg.MetadataValue.text(result["generator_id"]),
            "reused": dg.MetadataValue.bool(result["reused"]),
            "device": dg.MetadataValue.text(str(result.get("device"))),
            "epochs": dg.MetadataValue.float(float(result.get("epochs") or 0.0)),
            "settings": dg.MetadataValue.json(result["settings"]),
            "artifact_dir": dg.MetadataValue.path(result["path"]),
        },
    )


def _log_progress(context: dg.AssetExecutionContext, what: str):
    last = [0.0]

    def report(done, total, units, rate, eta) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= 5.0:
            last[0] = now
            eta_text = f"{eta:.0f} s" if eta is not None else "?"
            context.log.info(f"{what}: shard {done}/{total}, {units:,} done, {rate:,.0f}/s, ETA {eta_text}")

    return report


def train_or_reuse(context, artifacts: ArtifactStore, kind: str, spec, source_data: dict, settings: dict) -> dict:
    """Train, or reuse the stored generator when data version and training settings are unchanged."""
    from synth_core.generator import GeneratorHandle, TrainingSettings, train_flat, train_sequential

    identity = {
        "data": source_data["training_digest"],
        "settings": settings,
        "kind": kind,
        "group_key": spec.group_key,
        "context_columns": list(spec.context_columns),
        "code_version": GENERATOR_CODE_VERSION,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    gen_dir = artifacts.dataset_dir(kind, spec.name) / "generators" / key
    reused = (gen_dir / "generator.json").is_file()
    if not reused:
        training = read_source(source_data, "training")
        ts = TrainingSettings(
            model_size=settings["model_size"],
            max_training_time_min=settings["max_training_time_min"],
            max_epochs=settings["max_epochs"],
            value_protection=settings["value_protection"],
            seed=settings["seed"],
            device=settings["device"],
        )
        # train into a scratch folder and rename: a killed run never leaves a generator that looks complete
        scratch = gen_dir.with_name(f".{key}.{context.run.run_id[:8]}.tmp")
        shutil.rmtree(scratch, ignore_errors=True)
        context.log.info(f"training a {kind} generator on {len(training):,} rows ({ts})")
        def progress(epochs, elapsed, eta) -> None:
            done = f"{epochs:.1f} epochs" if epochs is not None else "starting"
            rate = f", {elapsed / epochs:.1f} s/epoch" if epochs else ""
            left = f", ETA {eta:.0f} s" if eta is not None else ""
            context.log.info(f"training: {done} in {elapsed:.0f} s{rate}{left}")

        try:
            if kind == "flat":
                handle = train_flat(training, scratch, ts, name=f"{spec.name}-{key}", progress=progress)
            else:
                handle = train_sequential(
                    training, spec.group_key, scratch, ts, context_columns=list(spec.context_columns),
                    name=f"{spec.name}-{key}", progress=progress,
                )
            handle.close()
            os.replace(scratch, gen_dir)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        context.log.info(f"trained in {handle.training_seconds:.1f} s")
    handle = GeneratorHandle.load(gen_dir)
    return {
        "generator_id": handle.generator_id,
        "path": str(gen_dir),
        "training_s": float(handle.training_seconds),
        "epochs": handle.epochs,
        "device": handle.device,
        "reused": bool(reused),
        "settings": settings,
        "identity": key,
    }


def _pool_plan(context, artifacts: ArtifactStore, kind: str, spec, trained_generator: dict, n_total: int,
               settings: dict) -> dict:
    """Where the pool goes and how it is cut; the folder is keyed by generator and settings so a re-run resumes."""
    from synth_core.pool import shard_sizes

    params = {"n": n_total, "shard": int(settings["shard_size"]), "seed": int(settings["seed"]),
              "t": float(settings["temperature"])}
    tag = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    pool_dir = artifacts.dataset_dir(kind, spec.name) / "pools" / f"{trained_generator['identity']}-{tag}"
    return {"dir": str(pool_dir), "generator": trained_generator["path"], "n_total": n_total,
            "shard_size": params["shard"], "seed": params["seed"], "temperature": params["t"],
            "n_shards": len(shard_sizes(n_total, params["shard"]))}


def _run_pool(context, plan: dict, only=None):
    from synth_core.generator import GeneratorHandle
    from synth_core.pool import generate_pool

    handle = GeneratorHandle.load(plan["generator"])
    try:
        return generate_pool(
            handle, plan["n_total"], plan["dir"], shard_size=plan["shard_size"], seed=plan["seed"],
            temperature=plan["temperature"], progress=_log_progress(context, "pool"), only=only,
        )
    finally:
        handle.close()


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
    """``<kind>/candidate_pool`` as a graph: plan the shards, generate each as its own step, assemble.

    Each shard is a mapped step (``DynamicOut``), so the multiprocess (or k8s) executor generates
    shards concurrently and a failed shard is retried alone; shards already on disk are skipped,
    which makes a re-run resume. ``assemble(context, spec, settings, source_data, pool, stage, out)``
    turns the finished pool into the asset's (value, figures, metadata); ``out`` is the run's folder
    for derived files.
    """
    unit = "rows" if kind == "flat" else "groups"

    @dg.op(name=f"{kind}_plan_pool", out=dg.DynamicOut(dict), tags=step_tags("plan_pool"))
    def plan_pool(context: dg.OpExecutionContext, config: config_cls, source_data: dict, trained_generator: dict,
                  artifacts: ArtifactStore):
        spec = spec_for(context, kind)
        with user_errors():
            settings = merged_settings(config, spec.selection, selection_keys(kind))
            target = int(source_data["target_size"])
            n_total = int(np.ceil(float(settings["pool_factor"]) * target))
            if n_total < target:
                raise InputError(f"pool_factor {settings['pool_factor']} gives a pool of {n_total:,} {unit}, "
                                 f"smaller than the target size {target:,}")
            plan = _pool_plan(context, artifacts, kind, spec, trained_generator, n_total, settings)
            _run_pool(context, plan, only=[])  # writes the pool's manifest, or refuses a mismatching folder
        context.log.info(f"pool of {n_total:,} {unit} in {plan['n_shards']} shards under {plan['dir']}")
        for k in range(plan["n_shards"]):
            yield dg.DynamicOutput({**plan, "k": k, "settings": settings}, mapping_key=f"shard_{k:05d}")

    @dg.op(name=f"{kind}_pool_shard", tags=step_tags("candidate_pool"))
    def pool_shard(context: dg.OpExecutionContext, shard: dict) -> dict:
        with user_errors():
            result = _run_pool(context, shard, only=[shard["k"]])
        context.log.info(f"shard {shard['k']}: {result.n_total:,} {unit}, "
                         f"{'reused' if result.shards_skipped else f'generated in {result.elapsed_s:.1f} s'}")
        return {**shard, "elapsed_s": result.elapsed_s, "reused": bool(result.shards_skipped)}

    @dg.op(name=f"{kind}_assemble_pool", tags=step_tags("assemble_pool"))
    def assemble_pool(context: dg.OpExecutionContext, source_data: dict, shards: list[dict],
                      artifacts: ArtifactStore, metrics: MetricStoreResource):
        plan = shards[0]
        spec = spec_for(context, kind)
        stage = Stage(context, metrics, spec.name, asset=f"{kind}/candidate_pool")
        out = artifacts.run_dir(kind, spec.name, context.run.run_id, "candidate_pool")
        with user_errors(cleanup=out):
            pool = _pool_value(_run_pool(context, plan))  # every shard exists: this only lists them
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

    @dg.graph_asset(name="candidate_pool", **common, kinds={"parquet"}, description=description)
    def candidate_pool(source_data: dict, trained_generator: dict):
        shards = plan_pool(source_data, trained_generator).map(pool_shard).collect()
        return assemble_pool(source_data, shards)

    return candidate_pool


def take_pool_rows(shards: list[str], rows: np.ndarray, training: pd.DataFrame) -> pd.DataFrame:
    """Rows of a sharded pool by global index, reading one shard at a time (memory: one shard)."""
    import pyarrow.parquet as pq

    rows = np.sort(np.asarray(rows, dtype=np.int64))
    parts, start = [], 0
    for path in shards:
        n = pq.ParquetFile(path).metadata.num_rows
        lo, hi = np.searchsorted(rows, [start, start + n])
        if hi > lo:
            shard = pd.read_parquet(path, columns=list(training.columns))
            parts.append(shard.iloc[rows[lo:hi] - start])
        start += n
    if rows.size and rows[-1] >= start:
        raise InputError(f"selected row {rows[-1]} is outside the pool ({start:,} rows)")
    return conform_to(pd.concat(parts, ignore_index=True), training)


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("synth-twin", "numpy", "pandas", "numba", "duckdb", "dagster", "mostlyai", "mostlyai-engine", "torch"):
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_final_output(out: Path, final: pd.DataFrame, manifest: dict) -> dict:
    """The final table as Parquet and CSV (atomic writes) with a run manifest beside it."""
    parquet = write_table(final, out / "output.parquet")
    csv = write_table(final, out / "output.csv")
    manifest = {
        **manifest,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "rows": len(final),
        "columns": {c: str(t) for c, t in final.dtypes.items()},
        "packages": package_versions(),
        "outputs": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (parquet, csv)},
    }
    path = write_json(out / "manifest.json", manifest)
    return {"parquet": str(parquet), "csv": str(csv), "manifest": str(path)}


def _check(name: str, passed: bool, description: str, metadata: dict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        passed=bool(passed),
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={k: (dg.MetadataValue.float(float(v)) if isinstance(v, (int, float, np.floating)) and not isinstance(v, bool)
                      else dg.MetadataValue.text(str(v))) for k, v in metadata.items()},
    )


def integrity_problems(final: pd.DataFrame, training: pd.DataFrame, target: int, rows: np.ndarray, n_pool: int,
                       group_key: str | None) -> list[str]:
    """The integrity check's failed conditions (:func:`synth_core.gate.integrity`); empty when it passes."""
    from synth_core.gate import integrity

    return list(integrity(final, training, target=target, rows=rows, n_pool=n_pool, group_key=group_key).reasons)


def evaluate_and_gate(final, baseline, training, holdout, settings: dict, *, group_key, target, rows, n_pool, out: Path) -> dict:
    """Evaluate the output and a random pool sample against training ∪ holdout; judge the three checks.

    The rules and their defaults live in :mod:`synth_core.gate`; ``settings`` (the run's merged config)
    overrides the thresholds it names.
    """
    from synth_core.evaluate import evaluate
    from synth_core.gate import GateSettings, accuracy_floor, integrity, privacy_gate

    gate = GateSettings.from_mapping(settings)
    ev = evaluate(training, final, holdout, group_key=group_key, seed=gate.eval_seed, gate=gate)
    base = evaluate(training, baseline, holdout, group_key=group_key, seed=gate.eval_seed, gate=gate)
    acc, base_acc = ev.accuracy.to_dict(), base.accuracy.to_dict()
    priv, base_priv = ev.privacy.to_dict(), base.privacy.to_dict()
    verdicts = [
        accuracy_floor(acc, base_acc, gate),
        privacy_gate(ev.privacy, gate),
        integrity(final, training, target=target, rows=rows, n_pool=n_pool, group_key=group_key),
    ]
    checks = [_check(v.name, v.passed, v.description, {k: x for k, x in v.figures.items() if x is not None})
              for v in verdicts]
    evaluation = {
        "final": {"accuracy": acc, "privacy": priv},
        "random": {"accuracy": base_acc, "privacy": base_priv, "privacy_gate": base.privacy_gate.to_dict()},
        "checks": {c.check_name: {"passed": c.passed, "description": c.description} for c in checks},
        "worst_columns": ev.accuracy.worst_columns(5).to_dict("records"),
        "worst_pairs": ev.accuracy.worst_pairs(5).to_dict("records"),
    }
    write_json(out / "evaluation.json", evaluation)
    figures = {f"eval_{k}": v for k, v in acc.items() if v is not None and not k.endswith("_max")}
    figures.update({f"eval_random_{k}": v for k, v in base_acc.items() if v is not None and not k.endswith("_max")})
    figures["eval_overall_max"] = acc["overall_max"]
    figures.update({k: v for k, v in priv.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    for name in ("dcr_share_ci", "membership_auc_ci"):  # intervals as two plottable figures
        if priv.get(name):
            figures[f"{name}_low"], figures[f"{name}_high"] = priv[name]
    for attack, value in (priv.get("membership_auc_by_attack") or {}).items():
        figures[f"membership_auc_{attack}"] = value
    if base_priv.get("membership_auc") is not None:
        figures["eval_random_membership_auc"] = base_priv["membership_auc"]
    figures["eval_random_dcr_share"] = base_priv["dcr_share"]
    return {
        "figures": figures,
        "checks": checks,
        "worst_columns_md": ev.accuracy.worst_columns(5).to_markdown(index=False),
        "worst_pairs_md": ev.accuracy.worst_pairs(5).to_markdown(index=False),
    }


def stage_table(store, run_id: str, dataset: str, kind: str) -> pd.DataFrame:
    """Per-stage accuracy against training (recorded by each stage in this run)."""
    frame = store.frame(dataset=dataset, run_id=run_id)
    rows = []
    for label, asset in STAGES[kind]:
        sub = frame[frame["asset"] == f"{kind}/{asset}"]
        values = dict(zip(sub["metric"], sub["value"]))
        rows.append({
            "stage": label,
            "univariate": values.get("accuracy_univariate"),
            "bivariate": values.get("accuracy_bivariate"),
            "trivariate": values.get("accuracy_trivariate"),
            "coherence": values.get("accuracy_coherence"),
            "overall": values.get("accuracy_overall"),
            "elapsed_s": values.get("elapsed_s"),
        })
    return pd.DataFrame(rows)


def _plot_png(table: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 2.6), dpi=90)
    for col in ("univariate", "bivariate", "trivariate", "overall"):
        if table[col].notna().any():
            ax.plot(table["stage"], table[col], marker="o", label=col)
    ax.set_ylabel("accuracy vs training")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def quality_markdown(store, run_id: str, dataset: str, kind: str, evaluation: dict) -> tuple[str, dict]:
    table = stage_table(store, run_id, dataset, kind)
    fin, rnd = evaluation["final"], evaluation["random"]
    fields = ["univariate", "bivariate", "trivariate", "coherence", "overall", "overall_max"]
    side = pd.DataFrame({
        "metric": fields,
        "random pool sample": [rnd["accuracy"].get(f) for f in fields],
        "output": [fin["accuracy"].get(f) for f in fields],
    })
    priv_keys = ["dcr_share", "dcr_share_ci", "nndr_ratio", "exact_copy_training", "exact_copy_holdout",
                 "exact_copy_training_sequences", "exact_copy_holdout_sequences", "membership_auc", "membership_auc_ci",
                 "membership_attack", "dcr_training", "dcr_holdout"]
    priv_keys = [k for k in priv_keys if fin["privacy"].get(k) is not None]

    def shown(value):  # intervals as "low–high", so that the table stays one value per cell
        return "–".join(f"{v:.5f}" for v in value) if isinstance(value, list) else value

    priv = pd.DataFrame({
        "metric": priv_keys,
        "random pool sample": [shown(rnd["privacy"].get(k)) for k in priv_keys],
        "output": [shown(fin["privacy"].get(k)) for k in priv_keys],
    })
    md = [
        f"### {kind}/{dataset}: accuracy by stage (against training)",
        table.to_markdown(index=False, floatfmt=".5f"),
        "",
        f"![accuracy by stage](data:image/png;base64,{_plot_png(table)})",
        "",
        "### Against training ∪ holdout (mostlyai-qa definitions)",
        side.to_markdown(index=False, floatfmt=".5f"),
        "",
        "### Privacy",
        priv.to_markdown(index=False, floatfmt=".5f"),
    ]
    guard = guard_table(store, run_id, dataset, kind)
    if len(guard):
        md += ["", "### What selection left out (privacy guard)", guard.to_markdown(index=False, floatfmt=".4g")]
    payload = {"stages": table.to_dict("records"), "evaluation": side.to_dict("records"), "privacy": priv.to_dict("records"),
               "guard": guard.to_dict("records")}
    return "\n".join(md), payload


GUARD_FIGURES = ("pool_replicas_seen", "pool_replicas_removed", "near_copies_avoided", "near_copy_threshold",
                 "guard_candidates", "closeness_error")


def guard_table(store, run_id: str, dataset: str, kind: str) -> pd.DataFrame:
    """The privacy guard's figures recorded by ``refined_output`` in this run (empty when none)."""
    frame = store.frame(dataset=dataset, run_id=run_id)
    sub = frame[(frame["asset"] == f"{kind}/refined_output") & frame["metric"].isin(GUARD_FIGURES)]
    values = dict(zip(sub["metric"], sub["value"]))
    return pd.DataFrame({"figure": [k for k in GUARD_FIGURES if k in values],
                         "value": [values[k] for k in GUARD_FIGURES if k in values]})


def publish(artifacts: ArtifactStore, kind: str, dataset: str, refined_output: dict, evaluation: dict, table: dict) -> dict:
    """Copy the gated output into ``published/`` (file by file, each replaced atomically)."""
    dest = artifacts.dataset_dir(kind, dataset) / "published"
    dest.mkdir(parents=True, exist_ok=True)
    for key in ("parquet", "csv", "manifest"):
        src = Path(refined_output[key])
        with atomic_path(dest / src.name) as tmp:
            shutil.copyfile(src, tmp)
    write_json(dest / "report.json", {"evaluation": evaluation, "table": table})
    return {"dir": str(dest), "parquet": str(dest / "output.parquet"), "csv": str(dest / "output.csv")}


GATE_KEYS = ("accuracy_floor", "max_dcr_share", "min_nndr_ratio", "exact_copy_tolerance", "max_membership_auc", "eval_seed")


def gate_check_specs(kind: str) -> list[dg.AssetCheckSpec]:
    """The three blocking checks of ``<kind>/refined_output`` (names fixed, thresholds in run config)."""
    asset = dg.AssetKey([kind, "refined_output"])
    integrity = "row count equals the target, schema equals training's, rows inside the pool"
    if kind == "sequential":
        integrity = ("group count equals the target, no empty groups, sequence lengths within training's range, "
                     "schema equals training's, groups inside the pool")
    return [
        dg.AssetCheckSpec("accuracy_floor", asset=asset, blocking=True,
                          description="overall accuracy ≥ the configured floor and ≥ the random pool sample's"),
        dg.AssetCheckSpec("privacy_gate", asset=asset, blocking=True,
                          description=f"dcr_share ≤ {_GATE.max_dcr_share}, nndr_ratio ≥ {_GATE.min_nndr_ratio}, exact "
                          "copies of training (rows and, for sequences, whole sequences) ≤ of holdout + tolerance, "
                          f"membership-inference AUC not above {_GATE.max_membership_auc} with 95% confidence "
                          "(defaults; thresholds in run config)"),
        dg.AssetCheckSpec("integrity", asset=asset, blocking=True, description=integrity),
    ]


def finish_output(context: dg.AssetExecutionContext, kind: str, spec, settings: dict, *, final: pd.DataFrame,
                  baseline: pd.DataFrame, training: pd.DataFrame, source_data: dict, trained_generator: dict,
                  selected: np.ndarray, n_pool: int, out: Path, figures: dict,
                  stop_reason: str) -> tuple[dict, dict, dict, list]:
    """Write the final table with its manifest, evaluate it beside the random sample and judge the checks.

    ``training``: the caller's copy of the training part (already read). ``selected``: pool row
    (flat) or group (sequential) indices. Returns the asset's value, its figures (for the store),
    extra metadata, and the check results. The holdout is read here, for the evaluation only.
    """
    holdout = read_source(source_data, "holdout")
    target = int(source_data["target_size"])
    paths = write_final_output(out, final, {
        "dataset": spec.name, "kind": kind, "run_id": context.run.run_id, "seed": settings["seed"],
        "config": {"selection": settings, "gate": {k: settings[k] for k in GATE_KEYS},
                   "training": trained_generator["settings"]},
        "generator_id": trained_generator["generator_id"], "source_hashes": source_data["source_hashes"],
        "target_size": target, "pool_size": n_pool, "group_key": spec.group_key,
    })
    gate = evaluate_and_gate(final, baseline, training, holdout, settings, group_key=spec.group_key, target=target,
                             rows=selected, n_pool=n_pool, out=out)
    figures = {**figures, **gate["figures"]}
    value = {**paths, "evaluation": str(out / "evaluation.json")}
    metadata = {
        "stop_reason": dg.MetadataValue.text(stop_reason),
        "output": dg.MetadataValue.path(paths["parquet"]),
        "preview": dg.MetadataValue.md(final.head(10).to_markdown(index=False)),
        "worst_columns": dg.MetadataValue.md(gate["worst_columns_md"]),
        "worst_pairs": dg.MetadataValue.md(gate["worst_pairs_md"]),
    }
    return value, figures, metadata, gate["checks"]


def quality_report_result(context: dg.AssetExecutionContext, refined_output: dict, artifacts: ArtifactStore,
                          metrics: MetricStoreResource, kind: str) -> dg.MaterializeResult:
    """Stage table, random sample vs output, privacy; publishes the gated output (asset ``quality_report``)."""
    spec = spec_for(context, kind)
    stage = Stage(context, metrics, spec.name)
    with user_errors():
        evaluation = json.loads(Path(refined_output["evaluation"]).read_text())
        markdown, table = quality_markdown(metrics.store(), context.run.run_id, spec.name, kind, evaluation)
        published = publish(artifacts, kind, spec.name, refined_output, evaluation, table)
        figures = stage.record({"published": 1.0})
    return dg.MaterializeResult(
        value={"published": published, "table": table},
        metadata={**figures, "report": dg.MetadataValue.md(markdown),
                  "published": dg.MetadataValue.path(published["dir"])},
    )


# ---------------------------------------------------------------------------------------------
# the assets both graphs share, built per graph (key prefix, group, partitions)


def source_data_asset(kind: str, common: dict, description: str) -> dg.AssetsDefinition:
    @dg.asset(name="source_data", **common, code_version="1", kinds={"pandas", "parquet"},
              op_tags=step_tags("source_data"), description=description)
    def source_data(context: dg.AssetExecutionContext, artifacts: ArtifactStore, metrics: MetricStoreResource):
        return source_data_result(context, artifacts, metrics, kind)

    return source_data


def trained_generator_asset(kind: str, common: dict, config_cls: type, description: str) -> dg.AssetsDefinition:
    @dg.asset(name="trained_generator", **common, code_version="1", kinds={"pytorch"},
              op_tags=step_tags("trained_generator"), description=description)
    def trained_generator(context: dg.AssetExecutionContext, config: config_cls, source_data: dict,
                          artifacts: ArtifactStore, metrics: MetricStoreResource):
        return generator_result(context, config, source_data, artifacts, metrics, kind)

    return trained_generator


def quality_report_asset(kind: str, common: dict, description: str) -> dg.AssetsDefinition:
    @dg.asset(name="quality_report", **common, code_version="1", kinds={"duckdb"},
              op_tags=step_tags("quality_report"), description=description)
    def quality_report(context: dg.AssetExecutionContext, refined_output: dict, artifacts: ArtifactStore,
                       metrics: MetricStoreResource):
        return quality_report_result(context, refined_output, artifacts, metrics, kind)

    return quality_report
