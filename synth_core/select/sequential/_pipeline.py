"""Select whole groups (sequences) of a pool so that the subset matches the training data.

Pipeline (:func:`select_groups`), every stage a subset of ``n_target`` pool groups:

1. ``random``: a seeded uniform sample of pool groups (the baseline and the starting point);
2. ``coherence``: swaps on the coherence features only (:mod:`synth_core.select.sequential._coherence`);
3. ``refined``: swaps on the full objective (:mod:`synth_core.select.sequential._group_refine`).

Bins, features and targets come from the training table only (:mod:`synth_core.select.sequential._sequences`); a
holdout is never seen here. ``synth select --group-key`` runs :func:`select_groups`; printing, judging and the
exit status are the command line's (:mod:`synth_core.cli`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from synth_core.conform import conform_table
from synth_core.errors import InputError
from synth_core.select._guard import BALANCE_ROUNDS, BALANCE_WEIGHT, GuardSettings, PoolGuard, guard_pool
from synth_core.select.sequential._sequences import (
    MAX_TRIPLES,
    GroupLayout,
    SequentialProblem,
    build_problem,
    random_groups,
)

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
        return groups_table(pool, self.layout, rec.groups, self.template, self.group_key, renumber=renumber)


def groups_table(pool: pd.DataFrame | list, layout: GroupLayout, groups: np.ndarray, training: pd.DataFrame,
                 group_key: str, *, renumber: bool = False) -> pd.DataFrame:
    """The rows of the pool ``groups`` (pool order, rows in their original order within a group)
    with training's column order and dtypes; ``renumber=True`` replaces the keys by ``0 … n−1``
    (as strings when the training key is not numeric). The one output of ``synth select`` and
    the pipeline. ``pool``: the table, or its Parquet shards in order (only the shards holding
    selected rows are read)."""
    from synth_core.io import read_rows

    if isinstance(pool, pd.DataFrame) and len(pool) != layout.n_rows:
        raise InputError(f"pool has {len(pool):,} rows, the selection was made on {layout.n_rows:,}")
    groups = np.sort(np.asarray(groups, dtype=np.int64))
    out = read_rows(pool, layout.rows_of(groups), list(training.columns))
    if renumber:
        new = np.repeat(np.arange(groups.shape[0], dtype=np.int64), layout.lengths[groups])
        numeric = pd.api.types.is_numeric_dtype(training[group_key].dtype)
        out[group_key] = new if numeric else pd.Series(new).astype(str).to_numpy(dtype=object)
    return conform_table(out, training, identifiers=(group_key,))


def _check(training: pd.DataFrame, pool: pd.DataFrame, group_key: str) -> None:
    for name, table in (("training", training), ("pool", pool)):
        if group_key not in table.columns:
            raise InputError(f"group key {group_key!r} not found in the {name} table")
        if len(table) == 0:
            raise InputError(f"{name} table has no rows")
    lacking = [c for c in training.columns if c not in pool.columns]
    if lacking:
        raise InputError(f"pool table lacks training column {lacking[0]!r}")


@dataclass(frozen=True)
class SequentialSettings:
    """Knobs of the group selection, with their defaults (the Dagster configs take theirs from here).

    Budgets are counts, never wall time: the same inputs and seed give the same groups.
    """

    seed: int = 0
    max_triples: int = MAX_TRIPLES  # the objective's triples: all up to this many, else the top ones by MI
    pairs_per_removal: int = 4  # candidate additions tried exactly per removed group
    coherence_max_swaps: int = 1_000_000
    coherence_max_rounds: int = 100
    max_swaps: int = 1_000_000
    max_rounds: int = 200
    guard: GuardSettings = field(default_factory=GuardSettings)


@dataclass(eq=False)
class SequentialPlan:
    """What the group stages share, built once by :func:`prepare_groups`.

    ``problem`` holds the whole pool (objectives and accuracy estimates of any subset);
    ``search`` the guard's candidate groups with the closeness feature (``problem`` itself when
    the guard is off). Stage functions take and return pool group numbers.
    """

    problem: SequentialProblem
    guard: PoolGuard
    closeness_weight: float
    search: SequentialProblem = field(init=False)

    def __post_init__(self) -> None:
        self.search = self.problem.guarded(self.guard, self.closeness_weight)

    @property
    def guarded(self) -> bool:
        return self.search is not self.problem

    def to_search(self, groups: np.ndarray) -> np.ndarray:
        return self.guard.positions(groups) if self.guarded else np.asarray(groups, dtype=np.int64)

    def to_pool(self, found: np.ndarray) -> np.ndarray:
        return self.guard.units(found) if self.guarded else np.sort(np.asarray(found, dtype=np.int64))

    def closeness_details(self, groups: np.ndarray) -> dict:
        return {"closeness_error": self.guard.closeness_error(self.to_search(groups))} if self.guarded else {}

    def save(self, path: str | Path) -> Path:
        """Pickle the plan to ``path`` (written atomically); the search is rebuilt on :meth:`load`."""
        import pickle

        from synth_core.io import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_bytes(pickle.dumps((self.problem, self.guard, self.closeness_weight), protocol=5))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> SequentialPlan:
        import pickle

        return cls(*pickle.loads(Path(path).read_bytes()))


def prepare_groups(training: pd.DataFrame, pool: pd.DataFrame, group_key: str, n_target: int | None = None,
                   settings: SequentialSettings = SequentialSettings()) -> SequentialPlan:
    """Everything the group stages share, computed once: the metric's bins fitted on training, the
    pool in the metric's group view, features and targets, and the privacy guard's verdict.
    ``synth select --group-key`` and the ``coherence_subset`` asset both start here."""
    _check(training, pool, group_key)
    t = time.perf_counter()
    problem = build_problem(training, pool, group_key, n_target, seed=settings.seed, max_triples=settings.max_triples)
    verdict = guard_pool(training, pool, group_key=group_key, settings=settings.guard, seed=settings.seed)
    plan = SequentialPlan(problem, verdict, settings.guard.closeness_weight)
    if problem.n_target > plan.search.n_pool:
        raise InputError(f"target size {problem.n_target:,} is larger than the {plan.search.n_pool:,} pool groups left "
                         f"after the privacy guard removed {verdict.replicas:,} replicas and {verdict.near_copies:,} "
                         "near-copies of training sequences")
    log.info("encode + guard: %s pool groups, %.1f s", f"{problem.n_pool:,}", time.perf_counter() - t)
    return plan


def random_stage(plan: SequentialPlan, settings: SequentialSettings) -> np.ndarray:
    """The baseline: a seeded uniform sample of the whole pool's groups (what the generator gives)."""
    return random_groups(plan.problem.n_pool, plan.problem.n_target, settings.seed)


def candidate_start(plan: SequentialPlan, settings: SequentialSettings) -> np.ndarray:
    """A seeded uniform sample of the guard's candidate groups (pool numbers): where the search starts."""
    return plan.to_pool(random_groups(plan.search.n_pool, plan.problem.n_target, settings.seed))


def stage_coherence(plan: SequentialPlan, settings: SequentialSettings, **options):
    """Coherence pre-selection (:func:`synth_core.select.sequential._coherence.coherence_subset`) from
    :func:`candidate_start`; returns (pool groups, details)."""
    from synth_core.select.sequential._coherence import coherence_subset

    n = plan.problem.n_target
    start = plan.to_search(candidate_start(plan, settings))
    coh = coherence_subset(plan.search, n, settings.seed, start=start, max_swaps=settings.coherence_max_swaps,
                           max_rounds=settings.coherence_max_rounds, pairs_per_removal=settings.pairs_per_removal,
                           **options)
    groups = plan.to_pool(coh.groups)
    r = coh.refine
    return groups, {"coherence_objective_start": coh.objective_start, "coherence_objective": coh.objective,
                    "swaps": r.n_swaps, "rounds": r.n_rounds, "stop_reason": r.stop_reason,
                    **plan.closeness_details(groups)}


def stage_group_refine(plan: SequentialPlan, groups: np.ndarray, settings: SequentialSettings, **options):
    """Group swaps on the full objective from ``groups`` (pool numbers), then, when the closeness
    strata are still off the pool's, a balancing refinement (:mod:`synth_core.select._guard`); returns
    (pool groups, details)."""
    from synth_core.select.sequential._group_refine import refine_groups

    opts = dict(max_swaps=settings.max_swaps, max_rounds=settings.max_rounds,
                pairs_per_removal=settings.pairs_per_removal, **options)
    r = refine_groups(plan.search, plan.to_search(groups), **opts)
    if plan.guarded and plan.guard.needs_balancing(r.groups, settings.guard):
        log.info("refine: closeness strata off the pool's by %.4f: balancing", plan.guard.closeness_error(r.groups))
        r = refine_groups(plan.search.reweighted(BALANCE_WEIGHT), r.groups, **{**opts, "max_rounds": BALANCE_ROUNDS})
    groups = plan.to_pool(r.groups)
    return groups, {"swaps": r.n_swaps, "rounds": r.n_rounds, "stop_reason": r.stop_reason,
                    "evaluations": r.n_evaluations, "recomputations": r.n_recomputations,
                    "pass_s": round(r.pass_s, 3), "search_s": round(r.search_s, 3), **plan.closeness_details(groups)}


def select_groups(
    training: pd.DataFrame,
    pool: pd.DataFrame,
    group_key: str,
    n_target: int | None = None,
    settings: SequentialSettings = SequentialSettings(),
    *,
    coherence: bool = True,
    refine: bool = True,
    keep_problem: bool = False,
    verify: bool = False,
    callback: Callable | None = None,
) -> SequentialSelection:
    """Select ``n_target`` groups (default: training's group count) of ``pool``: the random
    baseline, coherence pre-selection, group refinement (:func:`prepare_groups` and the stage
    functions, as the pipeline runs them).

    Raises :class:`InputError` when the group key is missing in a table, the pool lacks a
    training column, or ``n_target`` exceeds the pool's group count. ``verify``/``callback`` go
    to the refinement stages (see :func:`synth_core.select.sequential._group_refine.refine_groups`).

    The privacy guard (``settings.guard``, on by default, :mod:`synth_core.select._guard`) makes the
    coherence and refinement stages search the candidate groups only -- no replica or
    near-copy of a training sequence -- and hold the subset's closeness strata at the
    candidates'. Stage records keep pool group numbers and the metric's objective either way.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    plan = prepare_groups(training, pool, group_key, n_target, settings)
    timings["encode_s"] = time.perf_counter() - t0
    problem = plan.problem
    stages: dict[str, StageRecord] = {}
    options = dict(verify=verify, callback=callback)

    def record(name: str, groups: np.ndarray, started: float, details: dict) -> np.ndarray:
        counts = problem.counts(groups)
        elapsed = time.perf_counter() - started
        stages[name] = StageRecord(name, groups, problem.pool.keys[groups], problem.objective(counts),
                                   problem.breakdown(counts), elapsed, details)
        timings[name + "_s"] = elapsed
        log.info("stage %s: objective %.6f (%.1f s)", name, stages[name].objective, elapsed)
        return groups

    t = time.perf_counter()
    current = record("random", random_stage(plan, settings), t, {})
    if coherence:
        t = time.perf_counter()
        groups, details = stage_coherence(plan, settings, **options)
        current = record("coherence", groups, t, details)
    elif plan.guarded:  # the refinement starts where the coherence stage would have: among the candidates
        current = candidate_start(plan, settings)
    if refine:
        t = time.perf_counter()
        groups, details = stage_group_refine(plan, current, settings, **options)
        current = record("refined", groups, t, details)
    timings["total_s"] = time.perf_counter() - t0
    return SequentialSelection(group_key, problem.n_target, settings.seed, stages, problem.pool.layout, training,
                               timings, problem if keep_problem else None, plan.guard)


__all__ = [
    "SequentialPlan",
    "SequentialSelection",
    "SequentialSettings",
    "StageRecord",
    "candidate_start",
    "groups_table",
    "prepare_groups",
    "random_stage",
    "select_groups",
    "stage_coherence",
    "stage_group_refine",
]
