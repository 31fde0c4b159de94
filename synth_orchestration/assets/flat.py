"""The flat graph: source → generator → pool → MI pairs → IPF → trimmed → refined → report.

Every asset is a thin wrapper around :mod:`synth_core`; large artifacts are files under the
``ArtifactStore`` and the assets hand each other small dicts of paths.
"""


import pickle
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from synth_core.binning import Binner
from synth_core.errors import InputError
from synth_core.guard import GuardSettings, PoolGuard, guard_pool
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
    Stage,
    accuracy_metadata,
    guard_metadata,
    merged_settings,
    partitions_for,
    selection_keys,
    spec_for,
    user_errors,
)
from synth_orchestration.configs import IPFConfig, MIConfig, PoolConfig, RefineConfig, TrainingConfig, guard_settings
from synth_orchestration.deploy_tags import step_tags
from synth_orchestration.resources import ArtifactStore, MetricStoreResource
from synth_orchestration.shared_assets import (
    finish_output,
    gate_check_specs,
    candidate_pool_asset,
    quality_report_asset,
    read_source,
    source_data_asset,
    trained_generator_asset,
    take_pool_rows,
)

KIND = "flat"
PARTITIONS = partitions_for(KIND)
COMMON = dict(key_prefix=KIND, group_name=KIND, partitions_def=PARTITIONS)
CHECKS = gate_check_specs(KIND)


source_data = source_data_asset(
    KIND, COMMON,
    "The dataset's training part and its holdout (a file, or a seeded 20 % split); the holdout is for evaluation only.",
)
trained_generator = trained_generator_asset(
    KIND, COMMON, TrainingConfig,
    "A MOSTLY AI generator trained locally on the training part (reused when data and settings are unchanged).",
)


def _assemble_pool(context, spec, settings: dict, source_data: dict, pool: dict, stage: Stage, out: Path):
    """The pool's code matrix under the metric's binning, fitted on training only; the privacy guard's
    verdict on the pool; the random sample's accuracy."""
    training = read_source(source_data, "training")
    binner = Binner(n_bins=10).fit(training)
    table = pd.concat([pd.read_parquet(p, columns=list(training.columns)) for p in pool["shards"]], ignore_index=True)
    codes = binner.transform(table)
    guard = guard_pool(training, table, settings=guard_settings(settings), seed=int(settings["seed"]))
    del table
    np.save(out / "pool_codes.npy", np.ascontiguousarray(codes))
    np.save(out / "train_codes.npy", binner.transform(training))
    (out / "binner.pkl").write_bytes(pickle.dumps(binner))
    guard.save(out / "guard.npz")
    value = {**pool, "codes": str(out / "pool_codes.npy"), "train_codes": str(out / "train_codes.npy"),
             "binner": str(out / "binner.pkl"), "n_pool": int(codes.shape[0]), "guard": str(out / "guard.npz"),
             "closeness_weight": float(settings["closeness_weight"])}
    random_rows = random_subset(codes.shape[0], source_data["target_size"], int(settings["seed"]))
    acc = codes_accuracy(binner.transform(training), codes[random_rows], binner.n_codes, binner.names).to_dict()
    figures = stage.record({"pool_rows": codes.shape[0], **guard.figures(), **accuracy_metadata(acc)})
    return value, figures, {"pool_rows": dg.MetadataValue.int(int(codes.shape[0])), **guard_metadata(guard)}


candidate_pool = candidate_pool_asset(
    KIND, PoolConfig, COMMON, _assemble_pool,
    "``pool_factor`` × target rows in shards generated as parallel steps (resumable), plus their code matrix.",
)


def _load_problem(source_data: dict, candidate_pool: dict, mi: dict | None = None) -> SelectionProblem:
    binner = pickle.loads(Path(candidate_pool["binner"]).read_bytes())
    problem = SelectionProblem(
        binner=binner,
        train_codes=np.load(candidate_pool["train_codes"]),
        pool_codes=np.load(candidate_pool["codes"]),
        n_target=source_data["target_size"],
        columns=source_data["columns"],
        guard=PoolGuard.load(candidate_pool["guard"]),
    )
    if problem.n_target > len(problem.guard.candidates):
        raise InputError(f"target size {problem.n_target:,} is larger than the pool's {len(problem.guard.candidates):,} "
                         "rows left by the privacy guard")
    if mi is not None:
        settings = SelectionSettings(top_pairs=mi["top_pairs"], top_triples=mi["top_triples"],
                                     guard=GuardSettings(closeness_weight=candidate_pool["closeness_weight"]))
        problem = stage_mi_pairs(problem, settings)
    return problem


def _stage_figures(problem: SelectionProblem, rows: np.ndarray) -> dict:
    """The subset's accuracy against training (qa definition), the objective and, under the privacy guard,
    how far the subset's closeness strata are from the pool's."""
    acc = codes_accuracy(problem.train_codes, problem.pool_codes[rows], problem.binner.n_codes, problem.binner.names)
    figures = {"objective": problem.objective_of(rows), "rows": len(rows), **accuracy_metadata(acc.to_dict())}
    if problem.guard.enabled:
        figures["closeness_error"] = problem.guard.closeness_error(problem.guard.positions(rows))
    return figures


@dg.asset(**COMMON, code_version="1", kinds={"numpy"}, op_tags=step_tags("mi_pairs"))
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
        settings = merged_settings(config, spec.selection, selection_keys(KIND))
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


@dg.asset(**COMMON, code_version="1", kinds={"numpy"}, op_tags=step_tags("ipf_subset"))
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
        settings = merged_settings(config, spec.selection, selection_keys(KIND))
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


@dg.asset(**COMMON, code_version="1", kinds={"numpy"}, op_tags=step_tags("trimmed_subset"))
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


@dg.asset(**COMMON, code_version="1", kinds={"parquet", "csv"}, check_specs=CHECKS, op_tags=step_tags("refined_output"))
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
        settings = merged_settings(config, spec.selection, selection_keys(KIND))
        problem = _load_problem(source_data, candidate_pool, mi_pairs)
        sel = SelectionSettings(seed=settings["seed"], max_swaps=settings["max_swaps"], max_rounds=settings["max_rounds"])
        refined = stage_refine(problem, np.load(trimmed_subset["rows"]), sel)
        save_rows(out / "rows.npy", refined.rows)
        training = read_source(source_data, "training")
        final = take_pool_rows(candidate_pool["shards"], refined.rows, training)
        random_rows = random_subset(problem.n_pool, problem.n_target, settings["seed"])
        baseline = take_pool_rows(candidate_pool["shards"], random_rows, training)
        figures = {**_stage_figures(problem, refined.rows), "swaps": refined.swaps, "rounds": refined.rounds,
                   **problem.guard.figures()}
        value, figures, metadata, checks = finish_output(
            context, KIND, spec, settings, final=final, baseline=baseline, training=training, source_data=source_data,
            trained_generator=trained_generator, selected=refined.rows, n_pool=problem.n_pool, out=out,
            figures=figures, stop_reason=refined.stop_reason,
        )
        recorded = stage.record(figures)
    return dg.MaterializeResult(value={**value, "rows": str(out / "rows.npy")}, metadata={**recorded, **metadata},
                                check_results=checks)


quality_report = quality_report_asset(
    KIND, COMMON,
    "Random pool sample vs IPF vs trimmed vs refined, privacy beside it; publishes the gated output.",
)


ASSETS = [source_data, trained_generator, candidate_pool, mi_pairs, ipf_subset, trimmed_subset, refined_output, quality_report]
