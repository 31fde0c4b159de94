"""The sequential graph: source → generator → pool → coherence subset → refined → report.

A unit of selection is a whole group (the rows sharing a group key). Bins, features and targets
are fitted on training only (:mod:`synth_core.sequences`); the holdout is read only by the
evaluation inside ``refined_output``. IPF is not part of this graph: it did not pay off for
sequences (see docs/method.md in the shared brief).
"""


from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from synth_core.errors import InputError
from synth_core.guard import GuardSettings, PoolGuard, guard_pool
from synth_core.metrics import accuracy
from synth_core.select import conform_to, save_rows
from synth_core.sequences import GroupLayout, SequentialProblem, build_problem, random_groups
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
from synth_orchestration.configs import (
    CoherenceConfig,
    GateConfig,
    GroupPoolConfig,
    GroupRefineConfig,
    TrainingConfig,
    guard_settings,
)
from synth_orchestration.deploy_tags import step_tags
from synth_orchestration.resources import ArtifactStore, MetricStoreResource
from synth_orchestration.shared_assets import (
    finish_output,
    gate_check_specs,
    candidate_pool_asset,
    trained_generator_asset,
    quality_report_asset,
    read_source,
    source_data_asset,
)

KIND = "sequential"
PARTITIONS = partitions_for(KIND)
COMMON = dict(key_prefix=KIND, group_name=KIND, partitions_def=PARTITIONS)
CHECKS = gate_check_specs(KIND)
STAGE_EVAL_SEED = GateConfig().eval_seed  # the stages' accuracy figures; the gate uses its configured seed


def _settings(config: dg.Config, spec) -> dict:
    return merged_settings(config, spec.selection, selection_keys(KIND))


def _read_pool(candidate_pool: dict, columns: list[str]) -> pd.DataFrame:
    """The whole pool as one table (shards in order: group order and event order are kept)."""
    return pd.concat([pd.read_parquet(p, columns=columns) for p in candidate_pool["shards"]], ignore_index=True)


def _groups_table(pool: pd.DataFrame, layout: GroupLayout, groups: np.ndarray, training: pd.DataFrame) -> pd.DataFrame:
    """The rows of the pool ``groups`` (pool order, events in order), training's columns and dtypes."""
    groups = np.sort(np.asarray(groups, dtype=np.int64))
    return conform_to(pool.iloc[layout.rows_of(groups)], training)


def _renumbered(table: pd.DataFrame, problem: SequentialProblem, groups: np.ndarray, training: pd.DataFrame,
                group_key: str) -> pd.DataFrame:
    """``table`` (the groups' rows, as :func:`_groups_table` gives them) with keys 0 … n−1 in output order."""
    groups = np.sort(np.asarray(groups, dtype=np.int64))
    new = np.repeat(np.arange(groups.shape[0], dtype=np.int64), problem.pool.layout.lengths[groups])
    numeric = pd.api.types.is_numeric_dtype(training[group_key].dtype)
    out = table.copy()
    out[group_key] = pd.Series(new if numeric else new.astype(str), dtype=training[group_key].dtype)
    return out


def _problem(source_data: dict, candidate_pool: dict, options: dict) -> tuple[pd.DataFrame, pd.DataFrame, SequentialProblem]:
    training = read_source(source_data, "training")
    pool = _read_pool(candidate_pool, list(training.columns))
    problem = build_problem(training, pool, source_data["group_key"], source_data["target_size"],
                            seed=int(options["seed"]), max_triples=int(options["max_triples"]))
    return training, pool, problem


def _stage_figures(training: pd.DataFrame, subset: pd.DataFrame, group_key: str, problem: SequentialProblem,
                   groups: np.ndarray, seed: int, guard: PoolGuard) -> dict:
    """The subset's accuracy against training (qa definition, coherence included), the objective and, under
    the privacy guard, how far the subset's closeness strata are from the pool's."""
    acc = accuracy(training, subset, group_key=group_key, seed=seed).to_dict()
    figures = {"objective": problem.objective(problem.counts(groups)), "groups": len(groups), "rows": len(subset),
               **accuracy_metadata(acc)}
    if guard.enabled:
        figures["closeness_error"] = guard.closeness_error(guard.positions(groups))
    return figures


def _search(problem: SequentialProblem, candidate_pool: dict) -> tuple[PoolGuard, SequentialProblem]:
    """The privacy guard's verdict and the problem the stages search (:meth:`SequentialProblem.guarded`)."""
    guard = PoolGuard.load(candidate_pool["guard"])
    if problem.n_target > len(guard.candidates):
        raise InputError(f"target size {problem.n_target:,} is larger than the pool's {len(guard.candidates):,} "
                         "groups left by the privacy guard")
    return guard, problem.guarded(guard, candidate_pool["closeness_weight"])


source_data = source_data_asset(
    KIND, COMMON,
    "The dataset's training part and its holdout (a file, or a seeded split by whole groups); the holdout is for evaluation only.",
)
trained_generator = trained_generator_asset(
    KIND, COMMON, TrainingConfig,
    "A MOSTLY AI sequential generator: a subject table of the keys (+ context columns) and the events linked to it.",
)


def _assemble_pool(context, spec, settings: dict, source_data: dict, pool: dict, stage: Stage, out: Path):
    """The privacy guard's verdict on the pool; the random sample of pool groups (the baseline every stage is
    compared with) and its accuracy."""
    training = read_source(source_data, "training")
    table = _read_pool(pool, list(training.columns))
    layout = GroupLayout.from_keys(table[spec.group_key], "pool")
    guard = guard_pool(training, table, group_key=spec.group_key, settings=guard_settings(settings),
                       seed=int(settings["seed"]))
    guard.save(out / "guard.npz")
    target = int(source_data["target_size"])
    start = random_groups(layout.n_groups, target, int(settings["seed"]))
    sample = _groups_table(table, layout, start, training)
    acc = accuracy(training, sample, group_key=spec.group_key, seed=STAGE_EVAL_SEED).to_dict()
    figures = stage.record({"pool_groups": layout.n_groups, "pool_rows": len(table), "groups": target,
                            "rows": len(sample), **guard.figures(), **accuracy_metadata(acc)})
    value = {**pool, "n_groups": int(layout.n_groups), "guard": str(out / "guard.npz"),
             "closeness_weight": float(settings["closeness_weight"])}
    return value, figures, {"pool_groups": dg.MetadataValue.int(layout.n_groups), **guard_metadata(guard)}


candidate_pool = candidate_pool_asset(
    KIND, GroupPoolConfig, COMMON, _assemble_pool,
    "``pool_factor`` × target groups in shards generated as parallel steps (resumable); keys unique across "
    "shards, group and event order kept.",
)


@dg.asset(**COMMON, code_version="1", kinds={"numpy"}, op_tags=step_tags("coherence_subset"))
def coherence_subset(
    context: dg.AssetExecutionContext,
    config: CoherenceConfig,
    source_data: dict,
    candidate_pool: dict,
    artifacts: ArtifactStore,
    metrics: MetricStoreResource,
):
    """Target-many pool groups matching qa's three coherence parts, from the seeded random sample."""
    from synth_core.coherence import coherence_subset as select_coherent

    spec = spec_for(context, KIND)
    stage = Stage(context, metrics, spec.name)
    out = artifacts.run_dir(KIND, spec.name, context.run.run_id, "coherence_subset")
    with user_errors(cleanup=out):
        settings = _settings(config, spec)
        training, pool, problem = _problem(source_data, candidate_pool, settings)
        guard, search = _search(problem, candidate_pool)
        seed = int(settings["seed"])
        start = random_groups(search.n_pool, problem.n_target, seed)  # in the search's numbering
        result = select_coherent(
            search, problem.n_target, seed, start=start, max_swaps=int(settings["coherence_max_swaps"]),
            max_rounds=int(settings["coherence_max_rounds"]), pairs_per_removal=int(settings["pairs_per_removal"]),
        )
        groups = guard.units(result.groups)
        save_rows(out / "groups.npy", groups)
        subset = _groups_table(pool, problem.pool.layout, groups, training)
        figures = stage.record({
            **_stage_figures(training, subset, spec.group_key, problem, groups, STAGE_EVAL_SEED, guard),
            "coherence_objective_start": result.objective_start, "coherence_objective": result.objective,
            "swaps": result.refine.n_swaps, "rounds": result.refine.n_rounds,
        })
    options = {k: settings[k] for k in ("seed", "max_triples", "pairs_per_removal")}
    return dg.MaterializeResult(
        value={"groups": str(out / "groups.npy"), "n_groups": int(groups.shape[0]), "options": options},
        metadata={**figures, "stop_reason": dg.MetadataValue.text(result.refine.stop_reason)},
    )


@dg.asset(**COMMON, code_version="1", kinds={"parquet", "csv"}, check_specs=CHECKS, op_tags=step_tags("refined_output"))
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
    from synth_core.sequential_select import refine_guarded

    spec = spec_for(context, KIND)
    stage = Stage(context, metrics, spec.name)
    out = artifacts.run_dir(KIND, spec.name, context.run.run_id, "refined_output")
    with user_errors(cleanup=out):
        settings = _settings(config, spec)
        options = coherence_subset["options"]  # the problem the coherence stage solved
        training, pool, problem = _problem(source_data, candidate_pool, options)
        guard, search = _search(problem, candidate_pool)
        refined = refine_guarded(search, guard, GuardSettings(), guard.positions(np.load(coherence_subset["groups"])),
                                 max_swaps=int(settings["max_swaps"]), max_rounds=int(settings["max_rounds"]),
                                 pairs_per_removal=int(options["pairs_per_removal"]))
        groups = guard.units(refined.groups)
        save_rows(out / "groups.npy", groups)
        gk = spec.group_key
        selected = _groups_table(pool, problem.pool.layout, groups, training)
        final = _renumbered(selected, problem, groups, training, gk) if settings["renumber_keys"] else selected
        random_start = random_groups(problem.n_pool, problem.n_target, int(options["seed"]))
        baseline = _groups_table(pool, problem.pool.layout, random_start, training)
        figures = {
            **_stage_figures(training, selected, gk, problem, groups, STAGE_EVAL_SEED, guard),
            "swaps": refined.n_swaps, "rounds": refined.n_rounds, **guard.figures(),
        }
        value, figures, metadata, checks = finish_output(
            context, KIND, spec, {**settings, **options}, final=final, baseline=baseline, training=training,
            source_data=source_data, trained_generator=trained_generator, selected=groups,
            n_pool=problem.n_pool, out=out,
            figures=figures, stop_reason=refined.stop_reason,
        )
        recorded = stage.record(figures)
    return dg.MaterializeResult(value={**value, "groups": str(out / "groups.npy")}, metadata={**recorded, **metadata},
                                check_results=checks)


quality_report = quality_report_asset(
    KIND, COMMON,
    "Random pool sample vs coherence subset vs refined, privacy beside it; publishes the gated output.",
)


ASSETS = [source_data, trained_generator, candidate_pool, coherence_subset, refined_output, quality_report]
