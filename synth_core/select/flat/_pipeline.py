"""The flat selection pipeline: MI pairs → IPF subset → trimmed subset → refined subset.

Each stage is a plain function of a :class:`SelectionProblem` (the training-fitted binning, the
code matrices and the objective's target tables), so that the Dagster assets and ``synth select``
run the same code. The holdout never enters this module.

The privacy guard (:mod:`synth_core.select._guard`, on by default) decides which pool rows the stages
may use -- no replica or near-copy of a training row -- and gives each a closeness stratum. The
stages then search a :class:`SearchSpace`: the candidates' codes plus a stratum column, the
metric's features plus one that holds the subset's stratum histogram at the pool's. Stage inputs
and outputs are pool row indices either way; the accuracy objective reported per stage is the
metric's alone.

Work is bounded by counts derived from the problem size, never by wall time, so the same
inputs and seed give byte-identical output. The defaults keep small problems (census: 15
columns) exactly as they were and make a competition-size problem (100 k rows from 2.5 M x 80
columns) finish in minutes on 2 cores:

* objective features: every column, pairs by :func:`mi.default_pair_count` (all up to 80
  columns, the top 3,160 by MI beyond) and triples by :func:`mi.default_triple_count` (none
  above 50 columns);
* IPF: at most ``ipf_budget`` pool rows x pairs x sweeps (5 sweeps over 2.5 M x 3,160 pairs), and
  no more once ``ipf_patience`` sweeps in a row drew no better subset (census: 6 sweeps of 20);
* trimming: exact lazy greedy unless features x removals exceeds ``TRIM_EXACT_LIMIT``;
* refinement: directed candidate search when a full scoring pass would exceed
  ``REFINE_DIRECTED`` lookups, and at most ``refine_budget`` lookups of scoring passes in all;
  with full scoring, a large pool's rounds search longer and fewer of them pay for a pass
  (``REFINE_FAIL_SHARE``).

Long loops log progress (rate, ETA) at most every 5 s through ``logging``.

Differentially private mode (:func:`prepare_dp`, ``run_selection(..., dp=DPSettings(...))``): the
binning and the ranked pairs come from the pool (post-processing of a DP generator's output) and
training enters through :func:`dp_targets` alone, which releases the feature set's count tables with
Gaussian noise (:mod:`synth_core.dp`). The problem then holds a :class:`~synth_core.dp.NoisyTargets` and
no training codes, so IPF, trimming and refinement can only see the noisy tables. The privacy guard
is off in this mode: it reads training rows (replicas, distances) and its decisions would depend on
single records outside the accounted budget. Copies are still reported by the evaluation.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from synth_core.conform import conform_table
from synth_core.dp import NoisyTargets, gaussian_release, noise_rng
from synth_core.errors import InputError
from synth_core.metrics import Binner
from synth_core.select._features import FeatureSet, build_feature_set, with_guard
from synth_core.select._guard import BALANCE_ROUNDS, BALANCE_WEIGHT, GuardSettings, PoolGuard, guard_off, guard_pool
from synth_core.select._mi import default_pair_count, default_triple_count, pairwise_mi, top_pairs, top_triples
from synth_core.select._objective import cell_counts, objective, subset_counts, target_counts
from synth_core.select.flat._ipf import fit_weights, integerise
from synth_core.select.flat._refine import refine_swaps
from synth_core.select.flat._trim import trim_to_size

log = logging.getLogger(__name__)


# Work budgets (counts, never wall time: the output depends only on the inputs and the seed).
# Chosen so that 100,000 rows out of 2.5 M x 80 columns finish all stages in a few minutes on
# 2 cores (benchmarks/bench_scale.py); problems the size of census (15 columns) never reach them.
IPF_BUDGET = 4e10  # pool rows x pairs x sweeps: 2.5 M x 3,160 pairs -> 5 sweeps, 1 M -> 12, 250 k -> 20
TRIM_EXACT_LIMIT = 2e8  # features x rows to remove: exact greedy up to this, batch mode above
REFINE_DIRECTED = 2e9  # pool rows x features: a full exact scoring pass per round above this is too dear
REFINE_ROUND_LOOKUPS = 1e9  # directed search: rows scored exactly per round = this / features
REFINE_BUDGET = 2e10  # rows x features of all refinement scoring passes together (caps the rounds)
# Full-scoring refinement (every pool row scored per round): a round ends after max_fail consecutive
# removal candidates without an improving partner. A fresh round costs one scoring pass over the pool,
# a failed candidate a few dozen single-row gains, so large pools search longer before paying for a
# pass: max_fail = pool rows / REFINE_FAIL_SHARE (at least REFINE_MAX_FAIL), and the rounds are capped
# so that their failure tails together stay within REFINE_FAIL_BUDGET candidates. Pools up to 65,536
# rows keep 512 and 20 rounds. Census, 500 k rows, from the same trimmed subset: 3,906 and 10 rounds
# reach objective 0.01273 in 11.1 s CPU, 512 and 20 rounds 0.01293 in 13.5 s (8 rounds: 0.01282;
# pairs_per_removal 4 instead of 8: 0.01280; benchmarks/RESULTS.md, section select_speed).
REFINE_MAX_FAIL = 512
REFINE_FAIL_SHARE = 128
REFINE_FAIL_BUDGET = 40_960
# DP mode releases no triples by default: a noisy table costs the same budget whatever its cells, and
# a triple's ~1,000 cells hold a few dozen training rows each on census, so noise of the size DP needs
# (σ in the tens) would swamp them and spend budget the pair tables use better.
DP_TOP_TRIPLES = 0


@dataclass(frozen=True)
class DPSettings:
    """Differentially private selection: spend ``rho`` (zCDP) on the noisy count tables.

    ``rho`` 0: selection reads nothing of training; its targets are the pool's own tables (the
    pool is already DP, e.g. a sample of :class:`synth_core.dp.MarginalModel`, and selection only
    removes the sampling noise of a training-sized draw; post-processing, no budget).
    ``delta``: the δ at which ``rho`` is stated as (ε, δ) (reporting only). ``top_triples``: triples
    released and fitted (pairs follow :attr:`SelectionSettings.top_pairs`; None: as without DP).
    ``n_bins``: bins of the pool-fitted binning. ``shrink``: targets shrunk towards the pool's tables
    by how much of their difference the noise explains.
    """

    rho: float
    delta: float
    top_triples: int | None = DP_TOP_TRIPLES
    n_bins: int = 10
    shrink: bool = True  # shrink noisy tables towards the pool's (post-processing; measured in bench_dp.py)

    def __post_init__(self) -> None:
        if not (self.rho >= 0 and np.isfinite(self.rho)):
            raise InputError(f"DP selection's rho must be a non-negative number, got {self.rho!r}")

    @classmethod
    def pool_targets(cls, delta: float = 0.0) -> DPSettings:
        """Selection towards a DP pool's own tables (no budget; triples as without DP)."""
        return cls(rho=0.0, delta=delta, top_triples=None)


@dataclass(frozen=True)
class SelectionSettings:
    """Knobs of the selection stages (all deterministic given ``seed``).

    ``None`` means "automatic, by problem size" (see the budgets above and :func:`stage_plan`).
    """

    seed: int = 0
    top_pairs: int | None = None  # None: mi.default_pair_count (all up to 80 columns, the top 3,160 beyond)
    top_triples: int | None = None  # None: mi.default_triple_count (all up to 2,000; none for > 50 columns)
    ipf_tol: float = 1e-3
    ipf_max_sweeps: int = 20
    ipf_patience: int | None = 2  # stop IPF after this many sweeps whose draw scores no better (None: off)
    ipf_budget: float = IPF_BUDGET  # sweeps <= budget / (pool rows x pairs), at least 1
    oversize: float = 1.25
    trim_exact: bool | None = None  # None: exact unless features x removals > TRIM_EXACT_LIMIT
    max_swaps: int = 20_000
    max_rounds: int = 20
    refine_budget: float = REFINE_BUDGET  # rounds <= budget / (rows x features scored per round)
    refine_prefilter: int | None = None  # rows scored exactly per round; None: automatic, 0: all
    guard: GuardSettings = field(default_factory=GuardSettings)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class SearchSpace:
    """What IPF, trimming and refinement search.

    ``codes`` holds the guard's candidate pool rows (every pool row without a guard), followed by
    the guard's stratum column when there is one; ``feature_set``/``target`` are the metric's
    features and targets plus the guard's.
    """

    codes: np.ndarray
    feature_set: FeatureSet
    target: np.ndarray
    guard: PoolGuard | None = None

    @property
    def n_rows(self) -> int:
        return int(self.codes.shape[0])

    @property
    def strata(self) -> np.ndarray | None:
        return self.guard.strata if self.guard is not None else None

    def to_search(self, pool_rows: np.ndarray) -> np.ndarray:
        """Search positions of pool rows (which must be candidates)."""
        return self.guard.positions(pool_rows) if self.guard is not None else np.asarray(pool_rows, dtype=np.int64)

    def to_pool(self, positions: np.ndarray) -> np.ndarray:
        """Pool rows of search positions, sorted."""
        return self.guard.units(positions) if self.guard is not None else np.sort(np.asarray(positions, np.int64))


@dataclass
class SelectionProblem:
    """Everything the stages share: binning fitted on training only, codes, target size."""

    binner: Binner
    train_codes: np.ndarray | None  # None in DP mode: the stages then see ``noisy`` only
    pool_codes: np.ndarray
    n_target: int
    columns: list[str]
    pairs: np.ndarray | None = None
    pair_mi: np.ndarray | None = None
    triples: np.ndarray | None = None
    feature_set: FeatureSet | None = None
    target: np.ndarray | None = None
    guard: PoolGuard | None = None
    search: SearchSpace | None = None
    closeness_weight: float = GuardSettings().closeness_weight
    noisy: NoisyTargets | None = None  # DP mode: the released noisy tables, all the stages know of training

    @property
    def dp(self) -> bool:
        return self.noisy is not None

    @property
    def n_pool(self) -> int:
        return self.pool_codes.shape[0]

    def save(self, folder: str | Path) -> Path:
        """Write what :func:`prepare` computed to ``folder``: the binning, the codes, the ranked
        pairs and triples and the guard's verdict (features, targets and the search space are
        rebuilt from them on :meth:`load`, bit for bit)."""
        import pickle

        from synth_core.io import atomic_path

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"train_codes": self.train_codes, "pool_codes": self.pool_codes, "pairs": self.pairs,
                  "pair_mi": self.pair_mi, "triples": self.triples}
        for name, array in arrays.items():
            if array is None:  # DP mode: no training codes (and none left from an earlier run)
                (folder / f"{name}.npy").unlink(missing_ok=True)
                continue
            with atomic_path(folder / f"{name}.npy") as tmp, open(tmp, "wb") as fh:
                np.save(fh, array)
        if self.noisy is None:
            (folder / "noisy.npz").unlink(missing_ok=True)
        else:
            with atomic_path(folder / "noisy.npz") as tmp, open(tmp, "wb") as fh:
                n = self.noisy
                np.savez(fh, noisy=n.noisy, counts=n.counts, n=n.n, rho=n.rho, sigma=n.sigma, sensitivity=n.sensitivity,
                         shrinkage=n.shrinkage if n.shrinkage is not None else np.zeros(0))
        with atomic_path(folder / "binner.pkl") as tmp:
            tmp.write_bytes(pickle.dumps(self.binner))
        (self.guard or guard_off(self.n_pool)).save(folder / "guard.npz")
        with atomic_path(folder / "problem.json") as tmp:
            tmp.write_text(json.dumps({"n_target": self.n_target, "columns": self.columns,
                                       "closeness_weight": self.closeness_weight}))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> SelectionProblem:
        """The problem :meth:`save` wrote, ready for the stages."""
        import pickle

        folder = Path(folder)
        meta = json.loads((folder / "problem.json").read_text())
        binner = pickle.loads((folder / "binner.pkl").read_bytes())
        noisy = None
        if (folder / "noisy.npz").is_file():
            with np.load(folder / "noisy.npz") as z:
                fs = build_feature_set(binner.n_codes, np.load(folder / "pairs.npy"), np.load(folder / "triples.npy"))
                noisy = NoisyTargets(fs, z["noisy"], z["counts"], float(z["n"]), float(z["rho"]), float(z["sigma"]),
                                     float(z["sensitivity"]), z["shrinkage"] if z["shrinkage"].size else None)
        problem = cls(
            binner=binner,
            train_codes=None if noisy is not None else np.load(folder / "train_codes.npy"),
            pool_codes=np.load(folder / "pool_codes.npy"),
            n_target=int(meta["n_target"]),
            columns=list(meta["columns"]),
            pairs=np.load(folder / "pairs.npy"),
            pair_mi=np.load(folder / "pair_mi.npy"),
            triples=np.load(folder / "triples.npy"),
            guard=PoolGuard.load(folder / "guard.npz"),
            closeness_weight=float(meta["closeness_weight"]),
            noisy=noisy,
        )
        return _with_objective(problem)

    @property
    def space(self) -> SearchSpace:
        """The search space: :attr:`search` once built, else every pool row with the metric's features."""
        return self.search if self.search is not None else SearchSpace(self.pool_codes, self.feature_set, self.target)

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


def make_problem(training: pd.DataFrame, pool: pd.DataFrame | Sequence[pd.DataFrame], n_target: int,
                 guard: PoolGuard | None = None) -> SelectionProblem:
    """Fit the metric's binning on training only and encode training and pool.

    ``guard``: the privacy guard's verdict on this pool (:func:`synth_core.select._guard.guard_pool`);
    None or a disabled guard lets the stages use every pool row.
    """
    binner = Binner(n_bins=10).fit(training)
    problem = SelectionProblem(
        binner=binner,
        train_codes=binner.transform(training),
        pool_codes=encode(binner, pool),
        n_target=int(n_target),
        columns=list(training.columns),
        guard=guard,
    )
    if guard is not None and guard.n_pool != problem.n_pool:
        raise InputError(f"the privacy guard saw {guard.n_pool:,} pool rows, the pool has {problem.n_pool:,}")
    if guard is not None and len(guard.candidates) < problem.n_target:
        raise InputError(f"target size {problem.n_target:,} is larger than the {len(guard.candidates):,} "
                         f"pool rows left after the privacy guard removed {guard.replicas:,} replicas and "
                         f"{guard.near_copies:,} near-copies of training rows")
    return problem


def search_space(problem: SelectionProblem, closeness_weight: float) -> SearchSpace:
    """The search space of ``problem`` (its features and target must be built)."""
    guard = problem.guard
    if guard is None or not guard.enabled:
        return SearchSpace(problem.pool_codes, problem.feature_set, problem.target)
    d = problem.pool_codes.shape[1]
    codes = np.empty((len(guard.candidates), d + 1), dtype=np.uint8)
    codes[:, :d] = problem.pool_codes[guard.candidates]
    codes[:, d] = guard.strata
    return SearchSpace(
        codes,
        with_guard(problem.feature_set, guard.n_strata, closeness_weight),
        np.concatenate([problem.target, guard.stratum_target(problem.n_target)]),
        guard,
    )


def stage_mi_pairs(problem: SelectionProblem, settings: SelectionSettings) -> SelectionProblem:
    """Rank pairs (and triples) by mutual information on the training codes; build the objective."""
    n_bins = problem.binner.n_codes
    mi = pairwise_mi(problem.train_codes, n_bins)
    k = settings.top_pairs if settings.top_pairs is not None else default_pair_count(len(problem.columns))
    ranking = top_pairs(problem.train_codes, n_bins, k=k, mi_matrix=mi)
    triples = top_triples(None, n_bins, k=settings.top_triples, mi_matrix=mi)
    problem.pairs, problem.pair_mi = ranking.pairs, ranking.mi
    problem.triples = triples.triples
    problem.closeness_weight = settings.guard.closeness_weight
    return _with_objective(problem)


def _with_objective(problem: SelectionProblem) -> SelectionProblem:
    """Features, targets and the search space from the problem's ranked pairs and triples."""
    if problem.noisy is not None:  # DP: the released tables' features, targets from the noisy counts
        problem.feature_set = problem.noisy.feature_set
        problem.target = problem.noisy.target(problem.n_target)
        problem.search = SearchSpace(problem.pool_codes, problem.feature_set, problem.target)
        return problem
    problem.feature_set = build_feature_set(problem.binner.n_codes, problem.pairs, problem.triples)
    problem.target = target_counts(problem.train_codes, problem.feature_set, problem.n_target)
    problem.search = search_space(problem, problem.closeness_weight)
    return problem


def prepare(training: pd.DataFrame, pool: pd.DataFrame, n_target: int,
            settings: SelectionSettings = SelectionSettings()) -> SelectionProblem:
    """Everything the stages share, computed once: the metric's binning fitted on training, the
    codes, the privacy guard's verdict on the pool, the MI-ranked pairs and triples, the targets
    and the search space. ``synth select`` and the ``mi_pairs`` asset both start here."""
    check_pool(training, pool, n_target)
    t = time.perf_counter()
    pool = pool[list(training.columns)]
    guard = guard_pool(training, pool, settings=settings.guard, seed=settings.seed)
    problem = stage_mi_pairs(make_problem(training, pool, n_target, guard), settings)
    log.info("binning + guard + MI: %d pairs, %d triples, %.1f s", len(problem.pairs), len(problem.triples),
             time.perf_counter() - t)
    return problem


def dp_targets(training: pd.DataFrame, binner: Binner, feature_set: FeatureSet, rho: float,
               seed: int, prior: np.ndarray | None = None) -> NoisyTargets:
    """The one place DP selection reads training: the count tables of ``feature_set`` under the
    (pool-fitted) ``binner``, released by the Gaussian mechanism at ``rho``-zCDP.

    Every training row adds 1 to one cell of each of the ``F`` tables, so the L2 sensitivity is
    ``√F`` (:func:`synth_core.dp.gaussian_release`); the noise is drawn from ``seed``'s own stream.
    ``prior``: the pool's counts of the same cells, towards which noisy tables are shrunk
    (post-processing, see :meth:`synth_core.dp.NoisyTargets.from_release`).
    """
    counts = cell_counts(binner.transform(training[binner.names]), feature_set)
    noisy, sigma, sensitivity = gaussian_release(counts, feature_set.n_features, rho, noise_rng(seed))
    return NoisyTargets.from_release(feature_set, noisy, rho, sigma, sensitivity, prior=prior)


def prepare_dp(training: pd.DataFrame, pool: pd.DataFrame, n_target: int | None, dp: DPSettings,
               settings: SelectionSettings = SelectionSettings()) -> SelectionProblem:
    """The DP problem: binning, MI pairs and triples fitted on the pool (post-processing of a DP
    generator's output), the targets from :func:`dp_targets` and nothing else of training.

    ``n_target`` None: the noisy tables' estimate of the training size (post-processing, no extra
    budget). The privacy guard is off (see the module docstring).
    """
    columns = list(training.columns)  # the schema is public; the rows are not
    check_pool(training.iloc[:0], pool, 1)
    pool = pool[columns]
    t = time.perf_counter()
    binner = Binner(n_bins=dp.n_bins).fit(pool)
    pool_codes = encode(binner, pool)
    n_bins = binner.n_codes
    mi = pairwise_mi(pool_codes, n_bins)
    k = settings.top_pairs if settings.top_pairs is not None else default_pair_count(len(columns))
    ranking = top_pairs(pool_codes, n_bins, k=k, mi_matrix=mi)
    k3 = dp.top_triples if dp.top_triples is not None else default_triple_count(len(columns))
    triples = top_triples(None, n_bins, k=k3, mi_matrix=mi).triples
    fs = build_feature_set(n_bins, ranking.pairs, triples)
    if dp.rho == 0:  # the pool is DP already: its own tables, scaled to the target, are the targets
        if n_target is None:
            raise InputError("selection towards the pool's own tables needs the target size")
        counts = cell_counts(pool_codes, fs).astype(np.float64) * (int(n_target) / len(pool_codes))
        counts.setflags(write=False)
        noisy = NoisyTargets(fs, counts, counts, float(n_target), 0.0, 0.0, 0.0)
    else:
        prior = cell_counts(pool_codes, fs) if dp.shrink else None
        noisy = dp_targets(training, binner, fs, dp.rho, settings.seed, prior=prior)
    size = int(n_target) if n_target is not None else int(round(noisy.n))
    check_pool(training.iloc[:0], pool, size)
    problem = SelectionProblem(binner=binner, train_codes=None, pool_codes=pool_codes, n_target=size,
                               columns=columns, pairs=ranking.pairs, pair_mi=ranking.mi, triples=triples,
                               guard=guard_off(len(pool_codes)), noisy=noisy)
    log.info("DP binning + MI on the pool + noisy tables (rho %.4g, sigma %.3g): %d pairs, %d triples, %.1f s",
             noisy.rho, noisy.sigma, len(ranking.pairs), len(triples), time.perf_counter() - t)
    return _with_objective(problem)


def _dp_ipf_tables(problem: SelectionProblem) -> np.ndarray | None:
    """IPF's target tables in DP mode (None otherwise): the noisy pair tables in the problem's pair
    order, or the noisy margins when there are no pairs (see :func:`_ipf._raked_tables`)."""
    if problem.noisy is None:
        return None
    d = len(problem.columns)
    k = len(problem.pairs)
    return problem.noisy.tables(np.arange(d, d + k) if k else np.arange(d))


@dataclass
class IPFOutcome:
    rows: np.ndarray
    sweeps: int
    converged: bool
    stop_reason: str
    errors: list[float]
    kept_sweep: int  # the sweep whose weights gave ``rows`` (0: the uniform start)
    objectives: list[float]  # objective of the rows drawn after each sweep (0: the start)


def ipf_sweeps(problem: SelectionProblem, settings: SelectionSettings) -> int:
    """Sweep cap of the IPF stage: ``ipf_max_sweeps``, lowered so that pool rows x pairs x
    sweeps stays within ``ipf_budget`` (at least one sweep)."""
    per_sweep = float(problem.space.n_rows) * (len(problem.pairs) or len(problem.columns))
    return int(max(1, min(settings.ipf_max_sweeps, settings.ipf_budget // per_sweep)))


def _stratum_raking(space: SearchSpace) -> Callable[[np.ndarray], np.ndarray]:
    """Weights rescaled per guard stratum so that the strata weigh as in the candidates (the
    identity without a guard): the oversized draw then starts with the pool's closeness."""
    if space.strata is None:
        return lambda weights: weights
    k = int(space.feature_set.n_bins[-1])
    share = np.bincount(space.strata, minlength=k) / space.n_rows

    def rake(weights: np.ndarray) -> np.ndarray:
        current = np.bincount(space.strata, weights=weights, minlength=k)
        ratio = np.divide(share * weights.sum(), current, out=np.zeros(k), where=current > 0)
        return weights * ratio[space.strata]

    return rake


def stage_ipf(problem: SelectionProblem, settings: SelectionSettings) -> IPFOutcome:
    """IPF weights on the selected pairs (on the columns' margins when there are none), then an
    oversized subset by expectation-preserving rounding.

    Every sweep's weights, and the uniform start, are turned into rows and scored with the
    objective; should the last sweep's rows score worse than the start's, the best sweep's are
    kept (see :mod:`synth_core.select.flat._ipf`), so IPF never returns a subset worse than a uniform draw.
    Under the privacy guard only candidates get weights, and the weights are raked to the
    candidates' stratum shares before each draw.
    """
    space = problem.space
    sweeps = ipf_sweeps(problem, settings)
    log.info("IPF: %d pairs over %s pool rows, at most %d sweeps", len(problem.pairs), f"{space.n_rows:,}", sweeps)
    oversize = min(settings.oversize, space.n_rows / problem.n_target)
    rake = _stratum_raking(space)

    def draw(weights: np.ndarray) -> np.ndarray:
        return space.to_pool(integerise(rake(weights), problem.n_target, settings.seed, oversize=oversize))

    d = problem.pool_codes.shape[1]
    fit = fit_weights(
        space.codes[:, :d] if space.guard is not None else space.codes,
        problem.train_codes,
        problem.binner.n_codes,
        problem.pairs,
        tol=settings.ipf_tol,
        max_sweeps=sweeps,
        score=lambda weights: problem.objective_of(draw(weights)),
        target_tables=_dp_ipf_tables(problem),
        patience=settings.ipf_patience,
    )
    rows = draw(fit.weights)
    if len(rows) < problem.n_target:
        raise InputError(f"IPF kept {len(rows):,} rows, fewer than the target {problem.n_target:,}")
    return IPFOutcome(rows, fit.n_sweeps, bool(fit.converged), fit.stop_reason, [float(e) for e in fit.errors],
                      fit.kept_sweep, [float(s) for s in fit.scores])


def trim_exact(problem: SelectionProblem, n_rows: int, settings: SelectionSettings) -> bool:
    """Exact greedy trimming unless features x rows to remove exceeds ``TRIM_EXACT_LIMIT``."""
    if settings.trim_exact is not None:
        return bool(settings.trim_exact)
    return problem.space.feature_set.n_features * max(0, n_rows - problem.n_target) <= TRIM_EXACT_LIMIT


def stage_trim(problem: SelectionProblem, rows: np.ndarray, settings: SelectionSettings | None = None) -> np.ndarray:
    """Greedy removal down to exactly the target size."""
    settings = settings or SelectionSettings()
    space = problem.space
    exact = trim_exact(problem, len(rows), settings)
    log.info("trim: %s -> %s rows, %s greedy", f"{len(rows):,}", f"{problem.n_target:,}", "exact" if exact else "batch")
    result = trim_to_size(space.codes, space.to_search(rows), space.feature_set, space.target, problem.n_target,
                          exact=exact)
    return space.to_pool(result.rows)


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
    max_fail: int = REFINE_MAX_FAIL  # consecutive failed removal candidates that end a round


def refine_plan(problem: SelectionProblem, settings: SelectionSettings) -> RefinePlan:
    """Directed search for large pools, round cap from ``refine_budget``.

    When one exact scoring pass over the pool (pool rows x features) exceeds ``REFINE_DIRECTED``,
    each round scores only the ``REFINE_ROUND_LOOKUPS / features`` candidates (at least twice the
    target size) that the cheap single-column pass ranks best, and the lazy re-ranking of
    candidates is cut to 2 recomputations per pick (measured on 100 k of 2.5 M x 80: better
    objective in less time than 16). Rounds are capped so that all scoring passes together stay
    within ``refine_budget`` rows x features.

    When every pool row is scored, a round ends after ``max_fail`` consecutive failed removal
    candidates, ``pool rows / REFINE_FAIL_SHARE`` (at least ``REFINE_MAX_FAIL``), and the rounds
    are also capped at ``REFINE_FAIL_BUDGET / max_fail``: a large pool's rounds search longer, and
    fewer of them pay for a scoring pass (see the constants).
    """
    fs = problem.space.feature_set
    n_features = fs.n_features
    n_pool, n_sub = problem.space.n_rows, problem.n_target
    prefilter = settings.refine_prefilter
    if prefilter is None:
        if float(n_pool) * n_features > REFINE_DIRECTED:
            prefilter = max(2 * n_sub, int(np.ceil(REFINE_ROUND_LOOKUPS / n_features)))
        else:
            prefilter = 0
    prefilter = prefilter if 0 < prefilter < n_pool - n_sub else None
    max_fail = REFINE_MAX_FAIL
    if prefilter is None:
        per_round = float(n_pool + n_sub) * n_features
        reevals = 16
        max_fail = max(REFINE_MAX_FAIL, n_pool // REFINE_FAIL_SHARE)
    else:
        n_low = int(np.sum(fs.arity == fs.arity.min()))
        per_round = float(prefilter + n_sub) * n_features + float(n_pool) * n_low
        reevals = 2
    cap = min(settings.max_rounds, settings.refine_budget // per_round, REFINE_FAIL_BUDGET // max_fail)
    rounds = int(max(1, cap)) if settings.max_rounds else 0
    return RefinePlan(max_rounds=rounds, prefilter=prefilter, max_reevals=reevals, max_fail=max_fail)


def stage_refine(problem: SelectionProblem, rows: np.ndarray, settings: SelectionSettings) -> RefineOutcome:
    """Swaps against the unused pool until none improves or the swap budget is spent."""
    plan = refine_plan(problem, settings)
    log.info("refine: at most %d rounds and %s swaps, %s, a round ends after %s failed removal candidates",
             plan.max_rounds, f"{settings.max_swaps:,}",
             "every pool row scored per round" if plan.prefilter is None else
             f"directed search scoring {plan.prefilter:,} rows per round", f"{plan.max_fail:,}")
    space = problem.space
    res = refine_swaps(
        space.codes,
        space.to_search(rows),
        space.feature_set,
        space.target,
        max_swaps=settings.max_swaps,
        max_rounds=plan.max_rounds,
        max_fail=plan.max_fail,
        max_reevals=plan.max_reevals,
        prefilter=plan.prefilter,
        seed=settings.seed,
    )
    swaps, rounds, found = int(res.n_swaps), int(res.n_rounds), res.rows
    if space.guard is not None and space.guard.needs_balancing(found, settings.guard):
        log.info("refine: closeness strata off the pool's by %.4f: balancing", space.guard.closeness_error(found))
        heavy = replace(space, feature_set=with_guard(problem.feature_set, space.guard.n_strata, BALANCE_WEIGHT))
        res = refine_swaps(heavy.codes, found, heavy.feature_set, heavy.target, max_swaps=settings.max_swaps,
                           max_rounds=BALANCE_ROUNDS, max_reevals=plan.max_reevals, prefilter=plan.prefilter,
                           seed=settings.seed)
        swaps, rounds, found = swaps + int(res.n_swaps), rounds + int(res.n_rounds), res.rows
    return RefineOutcome(space.to_pool(found), swaps, rounds, res.stop_reason)


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
    dp: DPSettings | None = None,
) -> tuple[SelectionProblem, list[StageRecord]]:
    """All stages in one process (``synth select``); returns the problem and one record per stage.

    ``dp``: differentially private selection (:func:`prepare_dp`); ``n_target`` may then be None
    (the noisy size estimate).
    """
    records: list[StageRecord] = []

    def record(stage: str, rows: np.ndarray, started: float, **details) -> None:
        if stage != "random" and problem.guard is not None and problem.guard.enabled:
            details["closeness_error"] = problem.guard.closeness_error(problem.guard.positions(rows))
        rec = StageRecord(stage, rows, time.perf_counter() - started, problem.objective_of(rows), details)
        records.append(rec)
        log.info("%s: %d rows, objective %.6f, %.1f s", stage, len(rows), rec.objective, rec.elapsed_s)
        if on_stage is not None:
            on_stage(rec)

    problem = prepare(training, pool, n_target, settings) if dp is None else prepare_dp(training, pool, n_target, dp,
                                                                                         settings)
    record("random", random_subset(problem.n_pool, problem.n_target, settings.seed), time.perf_counter())
    t = time.perf_counter()
    ipf = stage_ipf(problem, settings)
    record("ipf", ipf.rows, t, sweeps=ipf.sweeps, kept_sweep=ipf.kept_sweep, converged=ipf.converged,
           stop_reason=ipf.stop_reason)
    t = time.perf_counter()
    trimmed = stage_trim(problem, ipf.rows, settings)
    record("trimmed", trimmed, t)
    t = time.perf_counter()
    refined = stage_refine(problem, trimmed, settings)
    record("refined", refined.rows, t, swaps=refined.swaps, rounds=refined.rounds, stop_reason=refined.stop_reason)
    return problem, records


def output_table(training: pd.DataFrame, pool: pd.DataFrame | Sequence[str | Path], rows: np.ndarray) -> pd.DataFrame:
    """The selected rows (pool order) with training's column order and dtypes.

    ``pool``: the pool as a table, or its Parquet shards in order (only the shards holding
    selected rows are read). Either way gives the same table, so the pipeline's output equals
    ``synth select``'s byte for byte.
    """
    from synth_core.io import read_rows

    return conform_table(read_rows(pool, np.sort(np.asarray(rows, dtype=np.int64)), list(training.columns)), training)


def save_rows(path: Path, rows: np.ndarray) -> Path:
    from synth_core.io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(rows, dtype=np.int64))
    return path
