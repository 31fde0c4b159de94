"""The flat graph: source → generator → pool → MI pairs → IPF → trimmed → refined → report.

Every asset is a thin wrapper around :mod:`synth_core`; large artifacts are files under the
``ArtifactStore`` and the assets hand each other small dicts of paths.
"""


import hashlib
import json
import pickle
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from synth_core.binning import Binner
from synth_core.datasets import load_dataset
from synth_core.errors import InputError
from synth_core.io import write_table
from synth_core.metrics import codes_accuracy
from synth_core.select import (
    SelectionProblem,
    SelectionSettings,
    random_subset,
    save_rows,
    stage_ipf,
    stage_mi_pairs,
    stage_refine,
    stage_trim,
)
from synth_orchestration.common import (
    DATASETS_BASE,
    Stage,
    accuracy_metadata,
    merged_settings,
    partitions_for,
    spec_for,
    user_errors,
    write_json,
)
from synth_orchestration.configs import IPFConfig, MIConfig, PoolConfig, RefineConfig, TrainingConfig
from synth_orchestration.resources import ArtifactStore, MetricStoreResource
from synth_orchestration.shared_assets import (
    evaluate_and_gate,
    frame_digest,
    generate_candidate_pool,
    publish,
    quality_markdown,
    read_source,
    take_pool_rows,
    train_or_reuse,
    write_final_output,
)

KIND = "flat"
PARTITIONS = partitions_for(KIND)
COMMON = dict(key_prefix=KIND, group_name=KIND, partitions_def=PARTITIONS)
CHECKS = [
    dg.AssetCheckSpec("accuracy_floor", asset=dg.AssetKey([KIND, "refined_output"]), blocking=True,
                      description="overall accuracy ≥ the configured floor and ≥ the random pool sample's"),
    dg.AssetCheckSpec("privacy_gate", asset=dg.AssetKey([KIND, "refined_output"]), blocking=True,
                      description="dcr_share ≤ 0.52, nndr_ratio ≥ 0.5, exact copies of training ≤ of holdout + tolerance"),
    dg.AssetCheckSpec("integrity", asset=dg.AssetKey([KIND, "refined_output"]), blocking=True,
                      description="row count equals the target, schema equals training's, rows inside the pool"),
]


@dg.asset(**COMMON, code_version="1", kinds={"pandas", "parquet"})
def source_data(context: dg.AssetExecutionContext, artifacts: ArtifactStore, metrics: MetricStoreResource):
    """The dataset's training part and its holdout (a file, or a seeded 20 % split).

    The holdout is for evaluation only: nothing downstream trains or selects on it.
    """
    spec = spec_for(context, KIND)
    out = artifacts.run_dir(KIND, spec.name, context.run.run_id, "source_data")
    stage = Stage(context, metrics, spec.name)
    with user_errors(cleanup=out):
        tables = load_dataset(spec, DATASETS_BASE)
        write_table(tables.training, out / "training.parquet")
        write_table(tables.holdout, out / "holdout.parquet")
        target = spec.target_size or len(tables.training)
        value = {
            "dataset": spec.name,
            "training": str(out / "training.parquet"),
            "holdout": str(out / "holdout.parquet"),
            "target_size": int(target),
            "columns": list(tables.training.columns),
            "source_hashes": tables.source_hashes,
            "training_digest": frame_digest(tables.training),
        }
        figures = stage.record({"training_rows": len(tables.training), "holdout_rows": len(tables.holdout)})
    kinds = tables.column_kinds()
    return dg.MaterializeResult(
        value=value,
        metadata={
            **figures,
            "rows": dg.MetadataValue.int(len(tables.training) + len(tables.holdout)),
            "columns": dg.MetadataValue.int(tables.training.shape[1]),
            "holdout_from_file": dg.MetadataValue.bool(tables.holdout_from_file),
            "target_size": dg.MetadataValue.int(int(target)),
            "column_kinds": dg.MetadataValue.json(kinds),
            "path": dg.MetadataValue.path(str(out)),
        },
    )


@dg.asset(**COMMON, code_version="1", kinds={"pytorch"})
def trained_generator(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    source_data: dict,
    artifacts: ArtifactStore,
    metrics: MetricStoreResource,
):
    """A MOSTLY AI generator trained locally on the training part (reused when nothing changed)."""
    spec = spec_for(context, KIND)
    stage = Stage(context, metrics, spec.name)
    with user_errors():
        settings = merged_settings(config, spec.training, set(config.model_dump()))
        result = train_or_reuse(context, artifacts, KIND, spec, source_data, settings)
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
            "path": dg.MetadataValue.path(result["path"]),
        },
    )


@dg.asset(**COMMON, code_version="1", kinds={"parquet", "numpy"})
def candidate_pool(
    context: dg.AssetExecutionContext,
    config: PoolConfig,
    source_data: dict,
    trained_generator: dict,
    artifacts: ArtifactStore,
    metrics: MetricStoreResource,
):
    """``pool_factor`` × target rows in bounded shards (resumable), plus their code matrix."""
    spec = spec_for(context, KIND)
    stage = Stage(context, metrics, spec.name)
    out = artifacts.run_dir(KIND, spec.name, context.run.run_id, "candidate_pool")
    with user_errors(cleanup=out):
        settings = merged_settings(config, spec.selection, set(config.model_dump()) | _selection_keys())
        n_total = int(np.ceil(float(settings["pool_factor"]) * source_data["target_size"]))
        if n_total < source_data["target_size"]:
            raise InputError(
                f"pool_factor {settings['pool_factor']} gives a pool of {n_total:,} rows, smaller than the "
                f"target size {source_data['target_size']:,}"
            )
        pool = generate_candidate_pool(context, artifacts, KIND, spec, trained_generator, n_total, settings)
        training = read_source(source_data, "training")
        # selection's binning: the metric's, fitted on training only
        binner = Binner(n_bins=10).fit(training)
        codes = np.concatenate([binner.transform(pd.read_parquet(p)) for p in pool["shards"]], axis=0)
        np.save(out / "pool_codes.npy", np.ascontiguousarray(codes))
        np.save(out / "train_codes.npy", binner.transform(training))
        (out / "binner.pkl").write_bytes(pickle.dumps(binner))
        value = {**pool, "codes": str(out / "pool_codes.npy"), "train_codes": str(out / "train_codes.npy"),
                 "binner": str(out / "binner.pkl"), "n_pool": int(codes.shape[0])}
        random_rows = random_subset(codes.shape[0], source_data["target_size"], int(settings["seed"]))
        acc = codes_accuracy(binner.transform(training), codes[random_rows], binner.n_codes, binner.names).to_dict()
        figures = stage.record({"pool_rows": codes.shape[0], **accuracy_metadata(acc)})
    return dg.MaterializeResult(
        value=value,
        metadata={
            **figures,
            "pool_rows": dg.MetadataValue.int(int(codes.shape[0])),
            "shards": dg.MetadataValue.int(len(pool["shards"])),
            "shards_reused": dg.MetadataValue.int(pool["shards_skipped"]),
            "generation_s": dg.MetadataValue.float(pool["elapsed_s"]),
            "path": dg.MetadataValue.path(pool["dir"]),
        },
    )


def _selection_keys() -> set[str]:
    keys = set()
    for cls in (PoolConfig, MIConfig, IPFConfig, RefineConfig):
        keys |= set(cls.model_fields)
    return keys


def _load_problem(source_data: dict, candidate_pool: dict, mi: dict | None = None) -> SelectionProblem:
    binner = pickle.loads(Path(candidate_pool["binner"]).read_bytes())
    problem = SelectionProblem(
        binner=binner,
        train_codes=np.load(candidate_pool["train_codes"]),
        pool_codes=np.load(candidate_pool["codes"]),
        n_target=source_data["target_size"],
        columns=source_data["columns"],
    )
    if problem.n_target > problem.n_pool:
        raise InputError(f"target size {problem.n_target:,} is larger than the pool ({problem.n_pool:,} rows)")
    if mi is not None:
        settings = SelectionSettings(top_pairs=mi["top_pairs"], top_triples=mi["top_triples"])
        problem = stage_mi_pairs(problem, settings)
    return problem


def _stage_figures(problem: SelectionProblem, rows: np.ndarray) -> dict:
    """The subset's accuracy against training (qa definition) and the objective."""
    acc = codes_accuracy(problem.train_codes, problem.pool_codes[rows], problem.binner.n_codes, problem.binner.names)
    return {"objective": problem.objective_of(rows), "rows": len(rows), **accuracy_metadata(acc.to_dict())}


@dg.asset(**COMMON, code_version="1", kinds={"numpy"})
def mi_pairs(
    context: dg.AssetExecutionContext,
    config: MIConfig,
    source_data: dict,
    candidate_pool: dict,
    artifacts: ArtifactStore,
    metrics: MetricStoreResource,
):
    """Mutual information of every column pair on the training codes; the objective's pairs and triples."""
    spec = spec_for(context, KIND)
    stage = Stage(context, metrics, spec.name)
    with user_errors():
        settings = merged_settings(config, spec.selection, set(config.model_dump()) | _selection_keys())
        problem = _load_problem(source_data, candidate_pool)
        problem = stage_mi_pairs(problem, SelectionSettings(top_pairs=settings["top_pairs"], top_triples=settings["top_triples"]))
        names = problem.binner.names
        ranked = [
            {"column_1": names[a], "column_2": names[b], "mi": round(float(m), 5)}
            for (a, b), m in zip(problem.pairs, problem.pair_mi)
        ]
        value = {"top_pairs": settings["top_pairs"], "top_triples": settings["top_triples"],
                 "n_pairs": len(problem.pairs), "n_triples": len(problem.triples)}
        figures = stage.record({"pairs": len(problem.pairs), "triples": len(problem.triples)})
    return dg.MaterializeResult(
        value=value,
        metadata={
            **figures,
            "pairs_ranked": dg.MetadataValue.md(pd.DataFrame(ranked[:20]).to_markdown(index=False)),
            "n_pairs": dg.MetadataValue.int(len(problem.pairs)),
            "n_triples": dg.MetadataValue.int(len(problem.triples)),
        },
    )


@dg.asset(**COMMON, code_version="1", kinds={"numpy"})
def ipf_subset(
    context: dg.AssetExecutionContext,
    config: IPFConfig,
    source_data: dict,
    candidate_pool: dict,
    mi_pairs: dict,
    artifacts: ArtifactStore,
    metrics: MetricStoreResource,
):
    """IPF weights matching the pair tables, rounded to an oversized subset (1.25 × target)."""
    spec = spec_for(context, KIND)
    stage = Stage(context, metrics, spec.name)
    out = artifacts.run_dir(KIND, spec.name, context.run.run_id, "ipf_subset")
    with user_errors(cleanup=out):
        settings = merged_settings(config, spec.selection, set(config.model_dump()) | _selection_keys())
        problem = _load_problem(source_data, candidate_pool, mi_pairs)
        sel = SelectionSettings(seed=settings["seed"], ipf_tol=settings["tol"], ipf_max_sweeps=settings["max_sweeps"],
                                oversize=settings["oversize"])
        ipf = stage_ipf(problem, sel)
        save_rows(out / "rows.npy", ipf.rows)
        figures = stage.record({**_stage_figures(problem, ipf.rows), "sweeps": ipf.sweeps, "converged": float(ipf.converged)})
    return dg.MaterializeResult(
        value={"rows": str(out / "rows.npy"), "n_rows": int(len(ipf.rows))},
        metadata={**figures, "stop_reason": dg.MetadataValue.text(ipf.stop_reason),
                  "tolerance": dg.MetadataValue.float(settings["tol"]),
                  "max_sweeps": dg.MetadataValue.int(settings["max_sweeps"])},
    )


@dg.asset(**COMMON, code_version="1", kinds={"numpy"})
def trimmed_subset(
    context: dg.AssetExecutionContext,
    source_data: dict,
    candidate_pool: dict,
    mi_pairs: dict,
    ipf_subset: dict,
    artifacts: ArtifactStore,
    metrics: MetricStoreResource,
):
    """Greedy trimming to exactly the target size, removing the rows that hurt the objective most."""
    spec = spec_for(context, KIND)
    stage = Stage(context, metrics, spec.name)
    out = artifacts.run_dir(KIND, spec.name, context.run.run_id, "trimmed_subset")
    with user_errors(cleanup=out):
        problem = _load_problem(source_data, candidate_pool, mi_pairs)
        rows = stage_trim(problem, np.load(ipf_subset["rows"]))
        save_rows(out / "rows.npy", rows)
        figures = stage.record(_stage_figures(problem, rows))
    return dg.MaterializeResult(value={"rows": str(out / "rows.npy"), "n_rows": int(len(rows))}, metadata=figures)


@dg.asset(**COMMON, code_version="1", kinds={"parquet", "csv"}, check_specs=CHECKS)
def refined_output(
    context: dg.AssetExecutionContext,
    config: RefineConfig,
    source_data: dict,
    candidate_pool: dict,
    mi_pairs: dict,
    trimmed_subset: dict,
    trained_generator: dict,
    artifacts: ArtifactStore,
    metrics: MetricStoreResource,
):
    """Swap refinement against the unused pool; the final table with its manifest, gated by checks."""
    spec = spec_for(context, KIND)
    stage = Stage(context, metrics, spec.name)
    out = artifacts.run_dir(KIND, spec.name, context.run.run_id, "refined_output")
    with user_errors(cleanup=out):
        settings = merged_settings(config, spec.selection, set(config.model_dump()) | _selection_keys())
        problem = _load_problem(source_data, candidate_pool, mi_pairs)
        sel = SelectionSettings(seed=settings["seed"], max_swaps=settings["max_swaps"], max_rounds=settings["max_rounds"])
        refined = stage_refine(problem, np.load(trimmed_subset["rows"]), sel)
        save_rows(out / "rows.npy", refined.rows)
        training = read_source(source_data, "training")
        holdout = read_source(source_data, "holdout")
        final = take_pool_rows(candidate_pool["shards"], refined.rows, training)
        random_rows = random_subset(problem.n_pool, problem.n_target, settings["seed"])
        baseline = take_pool_rows(candidate_pool["shards"], random_rows, training)
        paths = write_final_output(out, final, {
            "dataset": spec.name, "kind": KIND, "run_id": context.run.run_id, "seed": settings["seed"],
            "config": {"selection": settings, "gate": {k: settings[k] for k in ("accuracy_floor", "max_dcr_share", "min_nndr_ratio", "exact_copy_tolerance")}, "training": trained_generator["settings"]},
            "generator_id": trained_generator["generator_id"], "source_hashes": source_data["source_hashes"],
            "target_size": problem.n_target, "pool_rows": problem.n_pool,
        })
        figures = _stage_figures(problem, refined.rows)
        figures.update({"swaps": refined.swaps, "rounds": refined.rounds})
        gate_result = evaluate_and_gate(
            final, baseline, training, holdout, settings, group_key=None, target=problem.n_target,
            rows=refined.rows, n_pool=problem.n_pool, out=out,
        )
        figures.update(gate_result["figures"])
        recorded = stage.record(figures)
    return dg.MaterializeResult(
        value={**paths, "rows": str(out / "rows.npy"), "evaluation": str(out / "evaluation.json")},
        metadata={**recorded, "stop_reason": dg.MetadataValue.text(refined.stop_reason),
                  "output": dg.MetadataValue.path(paths["parquet"]),
                  "preview": dg.MetadataValue.md(final.head(10).to_markdown(index=False)),
                  "worst_columns": dg.MetadataValue.md(gate_result["worst_columns_md"]),
                  "worst_pairs": dg.MetadataValue.md(gate_result["worst_pairs_md"])},
        check_results=gate_result["checks"],
    )


@dg.asset(**COMMON, code_version="1", kinds={"duckdb"})
def quality_report(
    context: dg.AssetExecutionContext,
    source_data: dict,
    refined_output: dict,
    artifacts: ArtifactStore,
    metrics: MetricStoreResource,
):
    """Random pool sample vs IPF vs trimmed vs refined, privacy beside it; publishes the output."""
    spec = spec_for(context, KIND)
    stage = Stage(context, metrics, spec.name)
    with user_errors():
        evaluation = json.loads(Path(refined_output["evaluation"]).read_text())
        store = metrics.store()
        markdown, table = quality_markdown(store, context.run.run_id, spec.name, KIND, evaluation)
        published = publish(artifacts, KIND, spec.name, refined_output, evaluation, table)
        figures = stage.record({"published": 1.0})
    return dg.MaterializeResult(
        value={"published": published, "table": table},
        metadata={**figures, "report": dg.MetadataValue.md(markdown),
                  "published": dg.MetadataValue.path(published["dir"])},
    )


ASSETS = [source_data, trained_generator, candidate_pool, mi_pairs, ipf_subset, trimmed_subset, refined_output, quality_report]
