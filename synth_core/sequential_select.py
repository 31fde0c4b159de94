"""Select whole groups (sequences) of a pool so that the subset matches the training data.

Pipeline (:func:`select_groups`), every stage a subset of ``n_target`` pool groups:

1. ``random``: a seeded uniform sample of pool groups (the baseline and the starting point);
2. ``coherence``: swaps on the coherence features only (:mod:`synth_core.coherence`);
3. ``refined``: swaps on the full objective (:mod:`synth_core.group_refine`).

Bins, features and targets come from the training table only (:mod:`synth_core.sequences`); a
holdout is never seen here. :func:`run_sequential_select` is ``synth select --group-key``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from synth_core.conform import conform_table
from synth_core.errors import InputError
from synth_core.guard import BALANCE_ROUNDS, BALANCE_WEIGHT, GuardSettings, PoolGuard, guard_pool
from synth_core.sequences import GroupLayout, SequentialProblem, build_problem, random_groups

log = logging.getLogger(__name__)

STAGES = ("random", "coherence", "refined")


@dataclass(frozen=True)
class StageRecord:
    stage: str
    groups: np.ndarray  # sorted pool group indices (groups numbered by first appearance)
    keys: np.ndarray  # the pool keys of those groups
    objective: float  # full objective (≈ 2 × (1 − overall accuracy))
    breakdown: dict  # estimated accuracies per part (training bins), see SequentialProblem.breakdown
    elapsed_s: float
    details: dict = field(default_factory=dict)


@dataclass
class SequentialSelection:
    """Per-stage selections; :meth:`output` turns one into a table."""

    group_key: str
    n_target: int
    seed: int
    stages: dict[str, StageRecord]
    layout: GroupLayout  # the pool's group layout
    template: pd.DataFrame  # training (not a copy): column order, dtypes, what object columns hold
    timings: dict[str, float]
    problem: SequentialProblem | None = None
    guard: PoolGuard | None = None

    @property
    def final(self) -> StageRecord:
        return list(self.stages.values())[-1]

    def objectives(self) -> dict[str, float]:
        return {name: rec.objective for name, rec in self.stages.items()}

    def output(self, pool: pd.DataFrame, stage: str | None = None, *, renumber: bool = False) -> pd.DataFrame:
        """The selected groups' rows of ``pool`` (the table given to :func:`select_groups`).

        Groups in pool order (first appearance), rows in their original order within a group,
        training's column order and dtypes. ``renumber=True`` replaces the keys by ``0 … n−1``
        (as strings when the training key is not numeric).
        """
        rec = self.stages[stage] if stage is not None else self.final
        if len(pool) != self.layout.n_rows:
            raise InputError(f"pool has {len(pool):,} rows, the selection was made on {self.layout.n_rows:,}")
        rows = self.layout.rows_of(rec.groups)
        out = pool.iloc[rows][list(self.template.columns)].reset_index(drop=True)
        if renumber:
            new = np.repeat(np.arange(rec.groups.shape[0], dtype=np.int64), self.layout.lengths[rec.groups])
            numeric = pd.api.types.is_numeric_dtype(self.template[self.group_key].dtype)
            out[self.group_key] = new if numeric else pd.Series(new).astype(str).to_numpy(dtype=object)
        return conform_table(out, self.template, identifiers=(self.group_key,))


def _check(training: pd.DataFrame, pool: pd.DataFrame, group_key: str) -> None:
    for name, table in (("training", training), ("pool", pool)):
        if group_key not in table.columns:
            raise InputError(f"group key {group_key!r} not found in the {name} table")
        if len(table) == 0:
            raise InputError(f"{name} table has no rows")
    lacking = [c for c in training.columns if c not in pool.columns]
    if lacking:
        raise InputError(f"pool table lacks training column {lacking[0]!r}")


def select_groups(
    training: pd.DataFrame,
    pool: pd.DataFrame,
    group_key: str,
    n_target: int | None = None,
    seed: int = 0,
    *,
    coherence: bool = True,
    refine: bool = True,
    max_swaps: int = 1_000_000,
    max_rounds: int = 200,
    coherence_max_rounds: int = 100,
    pairs_per_removal: int = 4,
    max_triples: int = 2000,
    keep_problem: bool = False,
    verify: bool = False,
    callback: Callable | None = None,
    guard: GuardSettings = GuardSettings(),
) -> SequentialSelection:
    """Select ``n_target`` groups (default: training's group count) of ``pool``.

    Raises :class:`InputError` when the group key is missing in a table, the pool lacks a
    training column, or ``n_target`` exceeds the pool's group count. ``verify``/``callback`` go
    to the refinement stages (see :func:`synth_core.group_refine.refine_groups`).

    ``guard``: the privacy guard (:mod:`synth_core.guard`, on by default). The coherence and
    refinement stages then search the candidate groups only -- no replica or near-copy of a
    training sequence -- and hold the subset's closeness strata at the candidates'; their
    coherence stage starts from a seeded random sample of the candidates. Stage records keep
    pool group numbers and the metric's objective either way.
    """
    from synth_core.coherence import coherence_subset

    _check(training, pool, group_key)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    problem = build_problem(training, pool, group_key, n_target, seed=seed, max_triples=max_triples)
    timings["encode_s"] = time.perf_counter() - t0
    t = time.perf_counter()
    verdict = guard_pool(training, pool, group_key=group_key, settings=guard, seed=seed)
    search = problem.guarded(verdict, guard.closeness_weight)
    timings["guard_s"] = time.perf_counter() - t
    n = problem.n_target
    if n > search.n_pool:
        raise InputError(f"target size {n:,} is larger than the {search.n_pool:,} pool groups left after the privacy "
                         f"guard removed {verdict.replicas:,} replicas and {verdict.near_copies:,} near-copies of "
                         "training sequences")
    guarded = search is not problem

    def to_pool(found: np.ndarray) -> np.ndarray:
        return verdict.units(found) if guarded else found

    keys = problem.pool.keys
    stages: dict[str, StageRecord] = {}

    def record(name: str, groups: np.ndarray, elapsed: float, details: dict, found: np.ndarray | None = None) -> None:
        if found is not None and guarded:
            details = {**details, "closeness_error": verdict.closeness_error(found)}
        groups = to_pool(found) if found is not None else groups
        counts = problem.counts(groups)
        stages[name] = StageRecord(
            name, groups, keys[groups], problem.objective(counts), problem.breakdown(counts), elapsed, details
        )
        timings[name + "_s"] = elapsed
        log.info("stage %s: objective %.6f (%.1f s)", name, stages[name].objective, elapsed)

    t = time.perf_counter()
    start = random_groups(problem.n_pool, n, seed)
    record("random", start, time.perf_counter() - t, {})
    current = random_groups(search.n_pool, n, seed) if guarded else start  # in the search's numbering
    opts = dict(pairs_per_removal=pairs_per_removal, verify=verify, callback=callback)
    if coherence:
        t = time.perf_counter()
        coh = coherence_subset(search, n, seed, start=current, max_swaps=max_swaps,
                               max_rounds=coherence_max_rounds, **opts)
        current = coh.groups
        r = coh.refine
        record("coherence", None, time.perf_counter() - t, {
            "coherence_objective_start": coh.objective_start, "coherence_objective": coh.objective,
            "swaps": r.n_swaps, "rounds": r.n_rounds, "stop_reason": r.stop_reason,
        }, found=current)
    if refine:
        t = time.perf_counter()
        r = refine_guarded(search, verdict, guard, current, max_swaps=max_swaps, max_rounds=max_rounds, **opts)
        current = r.groups
        record("refined", None, time.perf_counter() - t, {
            "swaps": r.n_swaps, "rounds": r.n_rounds, "stop_reason": r.stop_reason,
            "evaluations": r.n_evaluations, "recomputations": r.n_recomputations,
            "pass_s": round(r.pass_s, 3), "search_s": round(r.search_s, 3),
        }, found=current)
    timings["total_s"] = time.perf_counter() - t0
    template = training
    return SequentialSelection(group_key, n, seed, stages, problem.pool.layout, template, timings,
                               problem if keep_problem else None, verdict)


def refine_guarded(search: SequentialProblem, verdict: PoolGuard, settings: GuardSettings, groups: np.ndarray,
                   **options):
    """:func:`~synth_core.group_refine.refine_groups` on the guarded problem, then, when the subset's
    closeness strata are still off the pool's, a balancing refinement (:mod:`synth_core.guard`).
    ``groups`` and the result are in the search's numbering."""
    from synth_core.group_refine import refine_groups

    result = refine_groups(search, groups, **options)
    if verdict.needs_balancing(result.groups, settings):
        log.info("refine: closeness strata off the pool's by %.4f: balancing", verdict.closeness_error(result.groups))
        options["max_rounds"] = BALANCE_ROUNDS
        result = refine_groups(search.reweighted(BALANCE_WEIGHT), result.groups, **options)
    return result


# --------------------------------------------------------------------------------------------
# CLI


def stage_table(rows: list[dict]) -> str:
    """Fixed-width table: one line per stage."""
    header = (f"{'stage':<10} {'groups':>8} {'rows':>9} {'objective':>10} {'uni':>8} {'bi':>8} {'tri':>8} "
              f"{'coh':>8} {'overall':>8} {'time_s':>7}")
    lines = [header, "-" * len(header)]
    for r in rows:
        acc = r["accuracy"]

        def fmt(name: str) -> str:
            return f"{acc[name]:.5f}" if acc.get(name) is not None else "-"

        lines.append(
            f"{r['stage']:<10} {r['groups']:>8,} {r['rows']:>9,} {r['objective']:>10.6f} {fmt('univariate'):>8} "
            f"{fmt('bivariate'):>8} {fmt('trivariate'):>8} {fmt('coherence'):>8} {fmt('overall'):>8} "
            f"{r['elapsed_s']:>7.1f}"
        )
    return "\n".join(lines)


def run_sequential_select(args) -> int:
    """``synth select --group-key KEY``: select groups, judge and write the output, print the report
    (:func:`synth_core.select_cli.judge_and_write`). The holdout is read only for the evaluation."""
    from synth_core.select_cli import judge_and_write, read_inputs

    started = time.perf_counter()
    training, pool, holdout = read_inputs(args)
    sel = select_groups(training, pool, args.group_key, args.size, seed=args.seed,
                        guard=GuardSettings(enabled=getattr(args, "privacy_guard", True)))
    stages = []
    for rec in sel.stages.values():
        subset = sel.output(pool, rec.stage)
        stages.append(({"stage": rec.stage, "groups": int(rec.groups.shape[0]), "rows": len(subset),
                        "objective": rec.objective, "elapsed_s": rec.elapsed_s, "estimate": rec.breakdown,
                        "details": rec.details}, subset))
    return judge_and_write(args, training, holdout, stages, target=sel.n_target, selected=sel.final.groups,
                           n_pool=sel.layout.n_groups, guard=sel.guard, table=stage_table, started=started,
                           unit="groups", extra={"timings": sel.timings})


__all__ = ["SequentialSelection", "StageRecord", "run_sequential_select", "select_groups", "stage_table"]
