"""The flat graph: source → generator → pool → MI pairs → IPF → trimmed → refined → report.

Every selection asset calls the stage of :mod:`synth_core.select.flat._pipeline` that ``synth select`` calls, with
the same settings (:func:`synth_orchestration.configs.flat_settings`), so the published output of
a pool equals ``synth select``'s on that pool byte for byte. ``mi_pairs`` builds the selection
problem once (binning, the privacy guard, MI pairs, targets) and stores it; the stages after it
load it. Large artifacts are files under the ``ArtifactStore``; assets hand each other paths.

A dataset with ``privacy:`` builds the differentially private problem instead
(:func:`synth_core.select.flat.prepare_dp`: bins and pairs from the pool, training only as noisy
tables, no privacy guard); the stages after ``mi_pairs`` then never see training, and the final
output's manifest and metadata carry the composed (ε, δ). Its target size is the dataset's
``target_size``, else the training row count (then treated as public).
"""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from synth_core.metrics import Binner, codes_accuracy
from synth_core.ops import FINAL_ASSET
from synth_core.select.flat import (
    DPSettings,
    SelectionProblem,
    output_table,
    prepare,
    prepare_dp,
    random_subset,
    save_rows,
    stage_ipf,
    stage_refine,
    stage_trim,
)
from synth_orchestration.assets.generator import trained_generator_asset
from synth_orchestration.assets.pool import candidate_pool_asset, read_pool_table
from synth_orchestration.assets.report import quality_report_asset
from synth_orchestration.assets.source import read_source, source_data_asset
from synth_orchestration.checks import explain_refusal, finish_output
from synth_orchestration.common import (
    Stage,
    accuracy_metadata,
    begin,
    graph_parts,
    guard_metadata,
    selection_settings,
    user_errors,
)
from synth_orchestration.configs import IPFConfig, MIConfig, PoolConfig, RefineConfig, TrainingConfig, flat_settings
from synth_orchestration.deploy_tags import step_tags
from synth_orchestration.resources import ArtifactStore, MetricStoreResource

KIND = "flat"
PARTITIONS, COMMON, CHECKS = graph_parts(KIND)


source_data = source_data_asset(
    KIND, COMMON,
    "The dataset's training part and its holdout (a file, or a seeded 20 % split); the holdout is for evaluation only.",
)
trained_generator = trained_generator_asset(
    KIND, COMMON, TrainingConfig,
    "A MOSTLY AI generator trained locally on the training part (reused when data and settings are unchanged; "
    "nothing trained when the dataset brings its own pool).",
)


def _assemble_pool(context, spec, settings: dict, source_data: dict, pool: dict, stage: Stage, out: Path):
    """The random pool sample's accuracy against training (the baseline every stage is compared with)."""
    training = read_source(source_data, "training")
    binner = Binner(n_bins=10).fit(training)
    rows = random_subset(pool["n_total"], source_data["target_size"], int(settings["seed"]))
    sample = output_table(training, pool["shards"], rows)
    acc = codes_accuracy(binner.transform(training), binner.transform(sample), binner.n_codes, binner.names).to_dict()
    figures = stage.record({"pool_rows": pool["n_total"], **accuracy_metadata(acc)})
    return {**pool, "n_pool": int(pool["n_total"])}, figures, {"pool_rows": dg.MetadataValue.int(int(pool["n_total"]))}


candidate_pool = candidate_pool_asset(
    KIND, PoolConfig, COMMON, _assemble_pool,
    "``pool_factor`` × target rows in shards generated as parallel steps (resumable), or the dataset's own pool.",
)



def _stage_figures(problem: SelectionProblem, rows: np.ndarray) -> dict:
    """The subset's accuracy against training (qa definition), the objective and, under the privacy guard,
    how far the subset's closeness strata are from the pool's."""
    if problem.train_codes is None:  # DP: the stages hold no training codes; the final evaluation scores the output
        return {"objective": problem.objective_of(rows), "rows": len(rows)}
    acc = codes_accuracy(problem.train_codes, problem.pool_codes[rows], problem.binner.n_codes, problem.binner.names)
    figures = {"objective": problem.objective_of(rows), "rows": len(rows), **accuracy_metadata(acc.to_dict())}
    if problem.guard.enabled:
        figures["closeness_error"] = problem.guard.closeness_error(problem.guard.positions(rows))
    return figures


@dg.asset(**COMMON, code_version="2", kinds={"numpy"}, op_tags=step_tags("mi_pairs"))
def mi_pairs(
    context: dg.AssetExecutionContext,
    config: MIConfig,
    source_data: dict,
    candidate_pool: dict,
    artifacts: ArtifactStore,
    metrics: MetricStoreResource,
):
    """The selection problem, built once: the metric's binning fitted on training, the pool's codes, the
    privacy guard's verdict, pairs and triples ranked by mutual information, targets."""
    spec, stage, out = begin(context, metrics, artifacts, KIND, "mi_pairs")
    with user_errors(cleanup=out):
        settings = selection_settings(context, config, spec, KIND)
        training = read_source(source_data, "training")
        pool = read_pool_table(candidate_pool["shards"], training)
        budget = spec.privacy_budget
        if budget is None:
            problem = prepare(training, pool, source_data["target_size"], flat_settings(settings))
        elif not budget.selection_spends:
            problem = prepare_dp(training, pool, source_data["target_size"], DPSettings.pool_targets(),
                                 flat_settings(settings))
            context.log.info("differential privacy: selection reads only the DP marginal model's pool and targets "
                             "its own tables (no budget); the privacy guard is off")
        else:
            dp = DPSettings(rho=budget.selection_rho, delta=budget.selection_delta)
            problem = prepare_dp(training, pool, source_data["target_size"], dp, flat_settings(settings))
            context.log.info(f"differential privacy: selection spends rho {dp.rho:.4g} (sigma "
                             f"{problem.noisy.sigma:.4g} per cell); the privacy guard is off")
        del pool
        problem.save(out / "problem")
        names = problem.binner.names
        ranked = [
            {"column_1": names[a], "column_2": names[b], "mi": round(float(m), 5)}
            for (a, b), m in zip(problem.pairs, problem.pair_mi)
        ]
        dp_figures = {f"dp_{k}": v for k, v in problem.noisy.figures().items() if v is not None} if problem.dp else {}
        figures = stage.record({"pairs": len(problem.pairs), "triples": len(problem.triples), **problem.guard.figures(),
                                **dp_figures})
    return dg.MaterializeResult(
        value={"problem": str(out / "problem"), "n_pairs": len(problem.pairs), "n_triples": len(problem.triples)},
        metadata={
            **figures,
            "pairs_ranked": dg.MetadataValue.md(pd.DataFrame(ranked[:20]).to_markdown(index=False)),
            "n_pairs": dg.MetadataValue.int(len(problem.pairs)),
            "n_triples": dg.MetadataValue.int(len(problem.triples)),
            **guard_metadata(problem.guard),
        },
    )


@dg.asset(**COMMON, code_version="2", kinds={"numpy"}, op_tags=step_tags("ipf_subset"))
def ipf_subset(
    context: dg.AssetExecutionContext,
    config: IPFConfig,
    mi_pairs: dict,
    artifacts: ArtifactStore,
    metrics: MetricStoreResource,
):
    """IPF weights matching the pair tables, rounded to an oversized subset (1.25 × target)."""
    spec, stage, out = begin(context, metrics, artifacts, KIND, "ipf_subset")
    with user_errors(cleanup=out):
        settings = selection_settings(context, config, spec, KIND)
        problem = SelectionProblem.load(mi_pairs["problem"])
        ipf = stage_ipf(problem, flat_settings(settings))
        save_rows(out / "rows.npy", ipf.rows)
        figures = stage.record({**_stage_figures(problem, ipf.rows), "sweeps": ipf.sweeps, "kept_sweep": ipf.kept_sweep,
                                "converged": float(ipf.converged)})
    return dg.MaterializeResult(
        value={"rows": str(out / "rows.npy"), "n_rows": int(len(ipf.rows))},
        metadata={**figures, "stop_reason": dg.MetadataValue.text(ipf.stop_reason),
                  "tolerance": dg.MetadataValue.float(settings["tol"]),
                  "max_sweeps": dg.MetadataValue.int(settings["max_sweeps"])},
    )


@dg.asset(**COMMON, code_version="2", kinds={"numpy"}, op_tags=step_tags("trimmed_subset"))
def trimmed_subset(
    context: dg.AssetExecutionContext,
    mi_pairs: dict,
    ipf_subset: dict,
    artifacts: ArtifactStore,
    metrics: MetricStoreResource,
):
    """Greedy trimming to exactly the target size, removing the rows that hurt the objective most."""
    spec, stage, out = begin(context, metrics, artifacts, KIND, "trimmed_subset")
    with user_errors(cleanup=out):
        problem = SelectionProblem.load(mi_pairs["problem"])
        rows = stage_trim(problem, np.load(ipf_subset["rows"]))
        save_rows(out / "rows.npy", rows)
        figures = stage.record(_stage_figures(problem, rows))
    return dg.MaterializeResult(value={"rows": str(out / "rows.npy"), "n_rows": int(len(rows))}, metadata=figures)


@dg.asset(**COMMON, code_version="2", kinds={"parquet", "csv"}, check_specs=CHECKS, op_tags=step_tags(FINAL_ASSET))
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
    spec, stage, out = begin(context, metrics, artifacts, KIND, FINAL_ASSET)
    with user_errors(cleanup=out):
        settings = selection_settings(context, config, spec, KIND)
        selection = flat_settings(settings)
        problem = SelectionProblem.load(mi_pairs["problem"])
        refined = stage_refine(problem, np.load(trimmed_subset["rows"]), selection)
        save_rows(out / "rows.npy", refined.rows)
        training = read_source(source_data, "training")
        final = output_table(training, candidate_pool["shards"], refined.rows)
        baseline = output_table(training, candidate_pool["shards"],
                                random_subset(problem.n_pool, problem.n_target, selection.seed))
        figures = {**_stage_figures(problem, refined.rows), "swaps": refined.swaps, "rounds": refined.rounds,
                   **problem.guard.figures()}
        privacy = privacy_statement(spec, problem, trained_generator)
        value, figures, metadata, checks = finish_output(
            context, KIND, spec, settings, final=final, baseline=baseline, training=training, source_data=source_data,
            trained_generator=trained_generator, selected=refined.rows, n_pool=problem.n_pool, out=out,
            figures=figures, stop_reason=refined.stop_reason, privacy=privacy,
        )
        if privacy is not None:
            metadata["differential_privacy"] = dg.MetadataValue.json(privacy)
            figures.update({f"dp_{k}": float(privacy[k]) for k in ("epsilon", "delta", "selection_epsilon",
                                                                     "selection_rho", "selection_sigma")
                            if privacy[k] is not None})
        recorded = stage.record(figures)
        checks = explain_refusal(context, KIND, spec.name, checks, value, source_data, metrics, out)
    return dg.MaterializeResult(value={**value, "rows": str(out / "rows.npy")}, metadata={**recorded, **metadata},
                                check_results=checks)


def privacy_statement(spec, problem: SelectionProblem, trained_generator: dict) -> dict | None:
    """The composed guarantee of a DP run (None without ``privacy:``): the generator's (ε, δ) as the
    engine reported it (unknown for a given pool: then only selection's part is stated) plus selection's."""
    budget = spec.privacy_budget
    if budget is None or problem.noisy is None:
        return None
    from synth_core.dp import PrivacyStatement

    gen = trained_generator.get("privacy") or {}
    known = gen.get("generator_epsilon") is not None
    source = ("marginal model" if gen.get("generator") == "marginal" else "engine") if known else None
    statement = PrivacyStatement(problem.noisy.rho, budget.selection_delta, problem.noisy.sigma,
                                 gen.get("generator_epsilon"), gen.get("generator_delta"),
                                 generator_source=source,
                                 generator_budget=(budget.generator_epsilon, budget.generator_delta))
    return {**statement.to_dict(), "budget": budget.to_dict(), "privacy_guard": "off"}


quality_report = quality_report_asset(
    KIND, COMMON,
    "Random pool sample vs IPF vs trimmed vs refined, privacy beside it; publishes the gated output.",
)


ASSETS = [source_data, trained_generator, candidate_pool, mi_pairs, ipf_subset, trimmed_subset, refined_output,
          quality_report]
