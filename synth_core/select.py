"""The flat selection pipeline: MI pairs → IPF subset → trimmed subset → refined subset.

Each stage is a plain function of a :class:`SelectionProblem` (the training-fitted binning, the
code matrices and the objective's target tables), so that the Dagster assets and ``synth select``
run the same code. The holdout never enters this module.

Work is bounded by counts derived from the problem size, never by wall time, so the same
inputs and seed give byte-identical output. The defaults keep small problems (census: 15
columns) exactly as they were and make a competition-size problem (100 k rows from 2.5 M x 80
columns) finish in minutes on 2 cores:

* objective features: every column, every pair, and triples by :func:`mi.default_triple_count`
  (none above 50 columns);
* IPF: at most ``ipf_budget`` pool rows x pairs x sweeps (5 sweeps over 2.5 M x 3,160 pairs);
* trimming: exact lazy greedy unless features x removals exceeds ``TRIM_EXACT_LIMIT``;
* refinement: directed candidate search when a full scoring pass would exceed
  ``REFINE_DIRECTED`` lookups, and at most ``refine_budget`` lookups of scoring passes in all.

Long loops log progress (rate, ETA) at most every 5 s through ``logging``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from synth_core.binning import Binner
from synth_core.errors import InputError
from synth_core.features import FeatureSet, build_feature_set
from synth_core.ipf import fit_weights, integerise
from synth_core.mi import pairwise_mi, top_pairs, top_triples
from synth_core.objective import objective, subset_counts, target_counts
from synth_core.refine import refine_swaps
from synth_core.trim import trim_to_size

log = logging.getLogger(__name__)


# Work budgets (counts, never wall time: the output depends only on the inputs and the seed).
# Chosen so that 100,000 rows out of 2.5 M x 80 columns finish all stages in a few minutes on
# 2 cores (benchmarks/bench_scale.py); problems the size of census (15 columns) never reach them.
IPF_BUDGET = 4e10  # pool rows x pairs x sweeps: 2.5 M x 3,160 pairs -> 5 sweeps, 1 M -> 12, 250 k -> 20
TRIM_EXACT_LIMIT = 2e8  # features x rows to remove: exact greedy up to this, batch mode above
REFINE_DIRECTED = 2e9  # pool rows x features: a full exact scoring pass per round above this is too dear
REFINE_ROUND_LOOKUPS = 1e9  # directed search: rows scored exactly per round = this / features
REFINE_BUDGET = 2e10  # rows x features of all refinement scoring passes together (caps the rounds)


@dataclass(frozen=True)
class SelectionSettings:
    """Knobs of the selection stages (all deterministic given ``seed``).

    ``None`` means "automatic, by problem size" (see the budgets above and :func:`stage_plan`).
    """

    seed: int = 0
    top_pairs: int | None = None  # None: every pair (ranking them costs more than it saves)
    top_triples: int | None = None  # None: mi.default_triple_count (all up to 2,000; none for > 50 columns)
    ipf_tol: float = 1e-3
    ipf_max_sweeps: int = 20
    ipf_budget: float = IPF_BUDGET  # sweeps <= budget / (pool rows x pairs), at least 1
    oversize: float = 1.25
    trim_exact: bool | None = None  # None: exact unless features x removals > TRIM_EXACT_LIMIT
    max_swaps: int = 20_000
    max_rounds: int = 20
    refine_budget: float = REFINE_BUDGET  # rounds <= budget / (rows x features scored per round)
    refine_prefilter: int | None = None  # rows scored exactly per round; None: automatic, 0: all

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SelectionProblem:
    """Everything the stages share: binning fitted on training only, codes, target size."""

    binner: Binner
    train_codes: np.ndarray
    pool_codes: np.ndarray
    n_target: int
    columns: list[str]
    pairs: np.ndarray | None = None
    pair_mi: np.ndarray | None = None
    triples: np.ndarray | None = None
    feature_set: FeatureSet | None = None
    target: np.ndarray | None = None

    @property
    def n_pool(self) -> int:
        return self.pool_codes.shape[0]

    def objective_of(self, rows: np.ndarray) -> float:
        """The objective (phase-weighted mean L1 of the selected features) of a subset."""
        counts = subset_counts(self.pool_codes, rows, self.feature_set)
        return float(objective(counts, self.target * (len(rows) / self.n_target), self.feature_set))


def check_pool(training: pd.DataFrame, pool: pd.DataFrame, size: int, *, pool_name: str = "pool") -> None:
    """User-facing checks: every training column present, a size the pool can serve."""
    lacking = [c for c in training.columns if c not in pool.columns]
    if lacking:
        raise InputError(f"{pool_name}: lacks training column {lacking[0]!r}")
    if size < 1:
        raise InputError(f"target size must be positive, got {size}")
    if size > len(pool):
        raise InputError(f"target size {size:,} is larger than the pool ({len(pool):,} rows in {pool_name})")


def encode(binner: Binner, tables: Sequence[pd.DataFrame] | pd.DataFrame) -> np.ndarray:
    """Code matrix of one table, or of shards concatenated in order (memory: codes only)."""
    if isinstance(tables, pd.DataFrame):
        return binner.transform(tables)
    parts = [binner.transform(t) for t in tables]
    return np.ascontiguousarray(np.concatenate(parts, axis=0))


def make_problem(training: pd.DataFrame, pool: pd.DataFrame | Sequence[pd.DataFrame], n_target: int) -> SelectionProblem:
    """Fit the metric's binning on training only and encode training and pool."""
    binner = Binner(n_bins=10).fit(training)
    return SelectionProblem(
        binner=binner,
        train_codes=binner.transform(training),
        pool_codes=encode(binner, pool),
        n_target=int(n_target),
        columns=list(training.columns),
    )


def stage_mi_pairs(problem: SelectionProblem, settings: SelectionSettings) -> SelectionProblem:
    """Rank pairs (and triples) by mutual information on the training codes; build the objective."""
    n_bins = problem.binner.n_codes
    mi = pairwise_mi(problem.train_codes, n_bins)
    ranking = top_pairs(problem.train_codes, n_bins, k=settings.top_pairs, mi_matrix=mi)
    triples = top_triples(None, n_bins, k=settings.top_triples, mi_matrix=mi)
    problem.pairs, problem.pair_mi = ranking.pairs, ranking.mi
    problem.triples = triples.triples
    problem.feature_set = build_feature_set(n_bins, problem.pairs, problem.triples)
    problem.target = target_counts(problem.train_codes, problem.feature_set, problem.n_target)
    return problem


@dataclass
class IPFOutcome:
    rows: np.ndarray
    sweeps: int
    converged: bool
    stop_reason: str
    errors: list[float]


def ipf_sweeps(problem: SelectionProblem, settings: SelectionSettings) -> int:
    """Sweep cap of the IPF stage: ``ipf_max_sweeps``, lowered so that pool rows x pairs x
    sweeps stays within ``ipf_budget`` (at least one sweep)."""
    per_sweep = float(problem.n_pool) * max(1, len(problem.pairs))
    return int(max(1, min(settings.ipf_max_sweeps, settings.ipf_budget // per_sweep)))


def stage_ipf(problem: SelectionProblem, settings: SelectionSettings) -> IPFOutcome:
    """IPF weights on the selected pairs, then an oversized subset by expectation-preserving rounding."""
    sweeps = ipf_sweeps(problem, settings)
    log.info("IPF: %d pairs over %s pool rows, at most %d sweeps", len(problem.pairs), f"{problem.n_pool:,}", sweeps)
    fit = fit_weights(
        problem.pool_codes,
        problem.train_codes,
        problem.binner.n_codes,
        problem.pairs,
        tol=settings.ipf_tol,
        max_sweeps=sweeps,
    )
    oversize = min(settings.oversize, problem.n_pool / problem.n_target)
    rows = integerise(fit.weights, problem.n_target, settings.seed, oversize=oversize)
    if len(rows) < problem.n_target:
        raise InputError(f"IPF kept {len(rows):,} rows, fewer than the target {problem.n_target:,}")
    return IPFOutcome(rows, fit.n_sweeps, bool(fit.converged), fit.stop_reason, [float(e) for e in fit.errors])


def trim_exact(problem: SelectionProblem, n_rows: int, settings: SelectionSettings) -> bool:
    """Exact greedy trimming unless features x rows to remove exceeds ``TRIM_EXACT_LIMIT``."""
    if settings.trim_exact is not None:
        return bool(settings.trim_exact)
    return problem.feature_set.n_features * max(0, n_rows - problem.n_target) <= TRIM_EXACT_LIMIT


def stage_trim(problem: SelectionProblem, rows: np.ndarray, settings: SelectionSettings | None = None) -> np.ndarray:
    """Greedy removal down to exactly the target size."""
    settings = settings or SelectionSettings()
    exact = trim_exact(problem, len(rows), settings)
    log.info("trim: %s -> %s rows, %s greedy", f"{len(rows):,}", f"{problem.n_target:,}", "exact" if exact else "batch")
    return trim_to_size(problem.pool_codes, rows, problem.feature_set, problem.target, problem.n_target, exact=exact).rows


@dataclass
class RefineOutcome:
    rows: np.ndarray
    swaps: int
    rounds: int
    stop_reason: str


@dataclass(frozen=True)
class RefinePlan:
    """How refinement runs for one problem (derived from the settings and the problem size)."""

    max_rounds: int
    prefilter: int | None  # rows scored exactly per round (None: every pool row)
    max_reevals: int


def refine_plan(problem: SelectionProblem, settings: SelectionSettings) -> RefinePlan:
    """Directed search for large pools, round cap from ``refine_budget``.

    When one exact scoring pass over the pool (pool rows x features) exceeds ``REFINE_DIRECTED``,
    each round scores only the ``REFINE_ROUND_LOOKUPS / features`` candidates (at least twice the
    target size) that the cheap single-column pass ranks best, and the lazy re-ranking of
    candidates is cut to 2 recomputations per pick (measured on 100 k of 2.5 M x 80: better
    objective in less time than 16). Rounds are capped so that all scoring passes together stay
    within ``refine_budget`` rows x features.
    """
    fs = problem.feature_set
    n_features = fs.n_features
    n_pool, n_sub = problem.n_pool, problem.n_target
    prefilter = settings.refine_prefilter
    if prefilter is None:
        if float(n_pool) * n_features > REFINE_DIRECTED:
            prefilter = max(2 * n_sub, int(np.ceil(REFINE_ROUND_LOOKUPS / n_features)))
        else:
            prefilter = 0
    prefilter = prefilter if 0 < prefilter < n_pool - n_sub else None
    if prefilter is None:
        per_round = float(n_pool + n_sub) * n_features
        reevals = 16
    else:
        n_low = int(np.sum(fs.arity == fs.arity.min()))
        per_round = float(prefilter + n_sub) * n_features + float(n_pool) * n_low
        reevals = 2
    rounds = int(max(1, min(settings.max_rounds, settings.refine_budget // per_round))) if settings.max_rounds else 0
    return RefinePlan(max_rounds=rounds, prefilter=prefilter, max_reevals=reevals)


def stage_refine(problem: SelectionProblem, rows: np.ndarray, settings: SelectionSettings) -> RefineOutcome:
    """Swaps against the unused pool until none improves or the swap budget is spent."""
    plan = refine_plan(problem, settings)
    log.info("refine: at most %d rounds and %s swaps, %s", plan.max_rounds, f"{settings.max_swaps:,}",
             "every pool row scored per round" if plan.prefilter is None else
             f"directed search scoring {plan.prefilter:,} rows per round")
    res = refine_swaps(
        problem.pool_codes,
        rows,
        problem.feature_set,
        problem.target,
        max_swaps=settings.max_swaps,
        max_rounds=plan.max_rounds,
        max_reevals=plan.max_reevals,
        prefilter=plan.prefilter,
        seed=settings.seed,
    )
    return RefineOutcome(res.rows, int(res.n_swaps), int(res.n_rounds), res.stop_reason)


def random_subset(n_pool: int, n_target: int, seed: int) -> np.ndarray:
    """The baseline: a seeded uniform sample of the pool, as the generator alone would give."""
    return np.sort(np.random.default_rng(seed).choice(n_pool, size=n_target, replace=False))


@dataclass
class StageRecord:
    stage: str
    rows: np.ndarray
    elapsed_s: float
    objective: float
    details: dict = field(default_factory=dict)


def run_selection(
    training: pd.DataFrame,
    pool: pd.DataFrame,
    n_target: int,
    settings: SelectionSettings = SelectionSettings(),
    *,
    on_stage: Callable[[StageRecord], None] | None = None,
) -> tuple[SelectionProblem, list[StageRecord]]:
    """All stages in one process (``synth select``); returns the problem and one record per stage."""
    check_pool(training, pool, n_target)
    records: list[StageRecord] = []

    def record(stage: str, rows: np.ndarray, started: float, **details) -> None:
        rec = StageRecord(stage, rows, time.perf_counter() - started, problem.objective_of(rows), details)
        records.append(rec)
        log.info("%s: %d rows, objective %.6f, %.1f s", stage, len(rows), rec.objective, rec.elapsed_s)
        if on_stage is not None:
            on_stage(rec)

    t = time.perf_counter()
    problem = make_problem(training, pool[list(training.columns)], n_target)
    problem = stage_mi_pairs(problem, settings)
    log.info("binning + MI: %d pairs, %d triples, %.1f s", len(problem.pairs), len(problem.triples), time.perf_counter() - t)
    record("random", random_subset(problem.n_pool, n_target, settings.seed), time.perf_counter())
    t = time.perf_counter()
    ipf = stage_ipf(problem, settings)
    record("ipf", ipf.rows, t, sweeps=ipf.sweeps, converged=ipf.converged, stop_reason=ipf.stop_reason)
    t = time.perf_counter()
    trimmed = stage_trim(problem, ipf.rows, settings)
    record("trimmed", trimmed, t)
    t = time.perf_counter()
    refined = stage_refine(problem, trimmed, settings)
    record("refined", refined.rows, t, swaps=refined.swaps, rounds=refined.rounds, stop_reason=refined.stop_reason)
    return problem, records


def conform_to(frame: pd.DataFrame, training: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with training's column order and dtypes (where the values allow the cast)."""
    out = frame[list(training.columns)].reset_index(drop=True)
    for c in training.columns:
        if out[c].dtype != training[c].dtype:
            try:
                out[c] = out[c].astype(training[c].dtype)
            except (TypeError, ValueError):
                pass
    return out


def output_table(training: pd.DataFrame, pool: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The selected rows with training's column order and dtypes."""
    return conform_to(pool.iloc[np.asarray(rows)], training)


def save_rows(path: Path, rows: np.ndarray) -> Path:
    from synth_core.io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(rows, dtype=np.int64))
    return path
