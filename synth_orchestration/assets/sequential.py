"""The sequential graph: source → generator → pool → coherence subset → refined → report.

A unit of selection is a whole group (the rows sharing a group key). Every selection asset calls
the stage of :mod:`synth_core.select.sequential._pipeline` that ``synth select --group-key`` calls, with the
same settings (:func:`synth_orchestration.configs.sequential_settings`), so the published output
of a pool equals ``synth select``'s on that pool byte for byte. ``coherence_subset`` builds the
selection plan once (bins, features and targets fitted on training only, the privacy guard) and
stores it for ``refined_output``. The holdout is read only by the evaluation inside
``refined_output``. IPF is not part of this graph: it did not pay off for sequences.
"""

from pathlib import Path

import dagster as dg
import numpy as np

from synth_core.metrics import accuracy
from synth_core.ops import FINAL_ASSET
from synth_core.select.flat import save_rows
from synth_core.select.sequential import (
    SequentialPlan,
    groups_table,
    prepare_groups,
    random_stage,
    stage_coherence,
    stage_group_refine,
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
from synth_orchestration.configs import (
    CoherenceConfig,
    GateConfig,
    GroupPoolConfig,
    GroupRefineConfig,
    TrainingConfig,
    sequential_settings,
)
from synth_orchestration.deploy_tags import step_tags
from synth_orchestration.resources import ArtifactStore, MetricStoreResource

KIND = "sequential"
PARTITIONS, COMMON, CHECKS = graph_parts(KIND)
STAGE_EVAL_SEED = GateConfig().eval_seed  # the stages' accuracy figures; the gate uses its configured seed



def _stage_figures(training, subset, group_key: str, plan: SequentialPlan, groups: np.ndarray) -> dict:
    """The subset's accuracy against training (qa definition, coherence included) and the objective."""
    acc = accuracy(training, subset, group_key=group_key, seed=STAGE_EVAL_SEED).to_dict()
    return {"objective": plan.problem.objective(plan.problem.counts(groups)), "groups": len(groups),
            "rows": len(subset), **accuracy_metadata(acc)}


source_data = source_data_asset(
    KIND, COMMON,
    "The dataset's training part and its holdout (a file, or a seeded split by whole groups); "
    "the holdout is for evaluation only.",
)
trained_generator = trained_generator_asset(
    KIND, COMMON, TrainingConfig,
    "A MOSTLY AI sequential generator: a subject table of the keys (+ context columns) and the events linked to it "
    "(nothing trained when the dataset brings its own pool).",
)


def _assemble_pool(context, spec, settings: dict, source_data: dict, pool: dict, stage: Stage, out: Path):
    """The random sample of pool groups (the baseline every stage is compared with) and its accuracy."""
    from synth_core.select.sequential import GroupLayout, random_groups

    training = read_source(source_data, "training")
    table = read_pool_table(pool["shards"], training, spec.group_key)
    layout = GroupLayout.from_keys(table[spec.group_key], "pool")
    target = int(source_data["target_size"])
    start = random_groups(layout.n_groups, target, int(settings["seed"]))
    sample = groups_table(table, layout, start, training, spec.group_key)
    acc = accuracy(training, sample, group_key=spec.group_key, seed=STAGE_EVAL_SEED).to_dict()
    figures = stage.record({"pool_groups": layout.n_groups, "pool_rows": len(table), "groups": target,
                            "rows": len(sample), **accuracy_metadata(acc)})
    return {**pool, "n_groups": int(layout.n_groups)}, figures, {"pool_groups": dg.MetadataValue.int(layout.n_groups)}


candidate_pool = candidate_pool_asset(
    KIND, GroupPoolConfig, COMMON, _assemble_pool,
    "``pool_factor`` × target groups in shards generated as parallel steps (resumable), or the dataset's own pool; "
    "keys unique across shards, group and event order kept.",
)


@dg.asset(**COMMON, code_version="2", kinds={"numpy"}, op_tags=step_tags("coherence_subset"))
def coherence_subset(
    context: dg.AssetExecutionContext,
    config: CoherenceConfig,
    source_data: dict,
    candidate_pool: dict,
    artifacts: ArtifactStore,
    metrics: MetricStoreResource,
):
    """The selection plan, built once (bins, features, targets, the privacy guard's verdict), then target-many
    pool groups matching qa's three coherence parts, from a seeded random sample of the candidates."""
    spec, stage, out = begin(context, metrics, artifacts, KIND, "coherence_subset")
    with user_errors(cleanup=out):
        values = selection_settings(context, config, spec, KIND)
        settings = sequential_settings(values)
        training = read_source(source_data, "training")
        pool = read_pool_table(candidate_pool["shards"], training, spec.group_key)
        plan = prepare_groups(training, pool, spec.group_key, source_data["target_size"], settings)
        plan.save(out / "plan.pkl")
        groups, details = stage_coherence(plan, settings)
        save_rows(out / "groups.npy", groups)
        subset = groups_table(pool, plan.problem.pool.layout, groups, training, spec.group_key)
        figures = stage.record({
            **_stage_figures(training, subset, spec.group_key, plan, groups),
            **{k: v for k, v in details.items() if k != "stop_reason"}, **plan.guard.figures(),
        })
    options = {k: values[k] for k in ("seed", "max_triples", "pairs_per_removal", "privacy_guard", "near_copy_quantile",
                                      "closeness_weight")}
    return dg.MaterializeResult(
        value={"groups": str(out / "groups.npy"), "plan": str(out / "plan.pkl"), "n_groups": int(groups.shape[0]),
               "options": options},
        metadata={**figures, "stop_reason": dg.MetadataValue.text(details["stop_reason"]),
                  **guard_metadata(plan.guard)},
    )


@dg.asset(**COMMON, code_version="2", kinds={"parquet", "csv"}, check_specs=CHECKS, op_tags=step_tags(FINAL_ASSET))
def refined_output(
    context: dg.AssetExecutionContext,
    config: GroupRefineConfig,
    source_data: dict,
    candidate_pool: dict,
    coherence_subset: dict,
    trained_generator: dict,
    artifacts: ArtifactStore,
    metrics: MetricStoreResource,
):
    """Group swaps on uni/bi/tri (rows weighted as the metric samples them) with coherence kept in the objective."""
    spec, stage, out = begin(context, metrics, artifacts, KIND, FINAL_ASSET)
    with user_errors(cleanup=out):
        # the plan's own options win
        values = {**selection_settings(context, config, spec, KIND), **coherence_subset["options"]}
        settings = sequential_settings(values)
        plan = SequentialPlan.load(coherence_subset["plan"])
        groups, details = stage_group_refine(plan, np.load(coherence_subset["groups"]), settings)
        save_rows(out / "groups.npy", groups)
        gk = spec.group_key
        training = read_source(source_data, "training")
        layout = plan.problem.pool.layout
        shards = candidate_pool["shards"]
        selected = groups_table(shards, layout, groups, training, gk)
        final = (groups_table(shards, layout, groups, training, gk, renumber=True) if values["renumber_keys"]
                 else selected)
        baseline = groups_table(shards, layout, random_stage(plan, settings), training, gk)
        figures = {
            **_stage_figures(training, selected, gk, plan, groups),
            **{k: v for k, v in details.items() if k != "stop_reason"}, **plan.guard.figures(),
        }
        value, figures, metadata, checks = finish_output(
            context, KIND, spec, values, final=final, baseline=baseline, training=training,
            source_data=source_data, trained_generator=trained_generator, selected=groups,
            n_pool=plan.problem.n_pool, out=out, figures=figures, stop_reason=details["stop_reason"],
        )
        recorded = stage.record(figures)
        checks = explain_refusal(context, KIND, spec.name, checks, value, source_data, metrics, out)
    return dg.MaterializeResult(value={**value, "groups": str(out / "groups.npy")}, metadata={**recorded, **metadata},
                                check_results=checks)


quality_report = quality_report_asset(
    KIND, COMMON,
    "Random pool sample vs coherence subset vs refined, privacy beside it; publishes the gated output.",
)


ASSETS = [source_data, trained_generator, candidate_pool, coherence_subset, refined_output, quality_report]
