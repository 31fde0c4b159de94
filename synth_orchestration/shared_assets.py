"""Steps shared by the flat and sequential graphs: training with reuse, pools, gating, publishing."""

from __future__ import annotations

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

import dagster as dg
import numpy as np
import pandas as pd

from synth_core.errors import InputError
from synth_core.io import atomic_path, write_table
from synth_core.select import conform_to
from synth_orchestration.common import write_json
from synth_orchestration.resources import ArtifactStore

DEFAULT_FLOOR_MARGIN = 0.03  # default accuracy floor: this much below qa's overall_max
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
        try:
            if kind == "flat":
                handle = train_flat(training, scratch, ts, name=f"{spec.name}-{key}")
            else:
                handle = train_sequential(
                    training, spec.group_key, scratch, ts, context_columns=list(spec.context_columns),
                    name=f"{spec.name}-{key}",
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


def generate_candidate_pool(context, artifacts: ArtifactStore, kind: str, spec, trained_generator: dict,
                            n_total: int, settings: dict) -> dict:
    """Generate (or finish) the pool; its folder is keyed by generator and settings so a re-run resumes."""
    from synth_core.generator import GeneratorHandle
    from synth_core.pool import generate_pool

    params = {"n": n_total, "shard": int(settings["shard_size"]), "seed": int(settings["seed"]),
              "t": float(settings["temperature"])}
    tag = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    pool_dir = artifacts.dataset_dir(kind, spec.name) / "pools" / f"{trained_generator['identity']}-{tag}"
    handle = GeneratorHandle.load(trained_generator["path"])
    try:
        result = generate_pool(
            handle, n_total, pool_dir, shard_size=params["shard"], seed=params["seed"],
            temperature=params["t"], progress=_log_progress(context, "pool"),
        )
    finally:
        handle.close()
    return {
        "dir": str(pool_dir),
        "shards": [str(p) for p in result.shard_paths],
        "n_total": int(result.n_total),
        "n_rows": int(result.n_rows),
        "elapsed_s": float(result.elapsed_s),
        "shards_skipped": int(result.shards_skipped),
    }


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
    problems = []
    if group_key is None and len(final) != target:
        problems.append(f"row count {len(final):,} differs from the target {target:,}")
    if list(final.columns) != list(training.columns):
        problems.append("columns differ from training's")
    else:
        wrong = [c for c in training.columns if final[c].dtype != training[c].dtype]
        if wrong:
            problems.append(f"column {wrong[0]!r} has dtype {final[wrong[0]].dtype}, training has {training[wrong[0]].dtype}")
    rows = np.asarray(rows)
    if rows.size and (rows.min() < 0 or rows.max() >= n_pool):
        problems.append("a selected index lies outside the pool")
    if np.unique(rows).size != rows.size:
        problems.append("a pool row was selected twice")
    if group_key is not None:
        lengths = final.groupby(group_key, sort=False).size()
        train_lengths = training.groupby(group_key, sort=False).size()
        if len(lengths) != target:
            problems.append(f"group count {len(lengths):,} differs from the target {target:,}")
        if (lengths == 0).any():
            problems.append("an empty group")
        if lengths.min() < train_lengths.min() or lengths.max() > train_lengths.max():
            problems.append(
                f"sequence lengths {lengths.min()}-{lengths.max()} outside the training range "
                f"{train_lengths.min()}-{train_lengths.max()}"
            )
    return problems


def evaluate_and_gate(final, baseline, training, holdout, settings: dict, *, group_key, target, rows, n_pool, out: Path) -> dict:
    """Evaluate the output and a random pool sample against training ∪ holdout; judge the three checks."""
    from synth_core.evaluate import evaluate
    from synth_core.privacy import privacy_passes

    seed = int(settings["eval_seed"])
    ev = evaluate(training, final, holdout, group_key=group_key, seed=seed)
    base = evaluate(training, baseline, holdout, group_key=group_key, seed=seed)
    acc, base_acc = ev.accuracy.to_dict(), base.accuracy.to_dict()
    priv, base_priv = ev.privacy.to_dict(), base.privacy.to_dict()

    floor = settings["accuracy_floor"]
    floor = float(acc["overall_max"] - DEFAULT_FLOOR_MARGIN if floor is None else floor)
    acc_ok = acc["overall"] >= floor and acc["overall"] >= base_acc["overall"]
    acc_text = (f"overall {acc['overall']:.5f} vs floor {floor:.5f} and random pool sample {base_acc['overall']:.5f}")
    priv_ok, reasons = privacy_passes(
        ev.privacy, max_dcr_share=settings["max_dcr_share"], min_nndr_ratio=settings["min_nndr_ratio"],
        exact_copy_tolerance=settings["exact_copy_tolerance"],
    )
    seq_train = priv.get("exact_copy_training_sequences")
    if seq_train is not None and seq_train > priv["exact_copy_holdout_sequences"] + settings["exact_copy_tolerance"]:
        priv_ok = False
        reasons.append(f"exact_copy_training_sequences {seq_train:.4f} > exact_copy_holdout_sequences "
                       f"{priv['exact_copy_holdout_sequences']:.4f} + {settings['exact_copy_tolerance']}")
    problems = integrity_problems(final, training, target, rows, n_pool, group_key)
    checks = [
        _check("accuracy_floor", acc_ok, acc_text,
               {"overall": acc["overall"], "floor": floor, "random_pool_sample": base_acc["overall"],
                "overall_max": acc["overall_max"]}),
        _check("privacy_gate", priv_ok, "; ".join(reasons) if reasons else "dcr_share, nndr_ratio and exact copies within thresholds",
               {"dcr_share": priv["dcr_share"], "max_dcr_share": settings["max_dcr_share"],
                "nndr_ratio": priv["nndr_ratio"], "min_nndr_ratio": settings["min_nndr_ratio"],
                "exact_copy_training": priv["exact_copy_training"], "exact_copy_holdout": priv["exact_copy_holdout"],
                "exact_copy_tolerance": settings["exact_copy_tolerance"]}),
        _check("integrity", not problems, "; ".join(problems) if problems else "size, schema and row indices as expected",
               {"rows": len(final), "target": target, "pool_rows": n_pool}),
    ]
    evaluation = {
        "final": {"accuracy": acc, "privacy": priv},
        "random": {"accuracy": base_acc, "privacy": base_priv},
        "checks": {c.check_name: {"passed": c.passed, "description": c.description} for c in checks},
        "worst_columns": ev.accuracy.worst_columns(5).to_dict("records"),
        "worst_pairs": ev.accuracy.worst_pairs(5).to_dict("records"),
    }
    write_json(out / "evaluation.json", evaluation)
    figures = {f"eval_{k}": v for k, v in acc.items() if v is not None and not k.endswith("_max")}
    figures.update({f"eval_random_{k}": v for k, v in base_acc.items() if v is not None and not k.endswith("_max")})
    figures["eval_overall_max"] = acc["overall_max"]
    figures.update({k: v for k, v in priv.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
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
    priv_keys = ["dcr_share", "nndr_ratio", "exact_copy_training", "exact_copy_holdout", "dcr_training", "dcr_holdout"]
    priv = pd.DataFrame({
        "metric": priv_keys,
        "random pool sample": [rnd["privacy"].get(k) for k in priv_keys],
        "output": [fin["privacy"].get(k) for k in priv_keys],
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
    payload = {"stages": table.to_dict("records"), "evaluation": side.to_dict("records"), "privacy": priv.to_dict("records")}
    return "\n".join(md), payload


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
