"""A differentially private marginal model: the pool's source when a flat table must be DP.

The budget ρ (zCDP) is spent in three parts, all on Gaussian-noised counts of training:

1. the domain (:func:`~synth_core.dp._domain.private_domain`), unless one is declared public;
2. every column's one-way table on that domain (``one_way_share``), from which a coarse domain
   of about :data:`COARSE_BINS` codes per column follows by post-processing: quantile groups of
   the noisy counts for numbers, the most frequent values and "the rest" for categories, the way
   the accuracy metric bins (qa: ten quantile bins, the top ten categories);
3. ``rounds`` adaptive rounds on the coarse domain: each picks one unmeasured pair or triple of
   columns by the exponential mechanism, scored by how far the current model's table is from
   training's beyond the noise a measurement would add, then measures it; the model is refitted
   after each round (private-pgm's ``mbi`` estimates a graphical model from the noisy tables).

Sampling draws coarse codes from the model and each column's fine code inside its coarse code
from the noisy one-way table: all post-processing. The design follows the select-measure-
estimate loop of MST/AIM (McKenna et al.); what differs is the coarse domain, where the same noise
buys far more signal on the tables the accuracy metric compares.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from synth_core.dp._accountant import epsilon_to_rho, rho_to_epsilon
from synth_core.dp._domain import Domain, DomainRelease, private_domain
from synth_core.errors import InputError

COARSE_BINS = 10
MODEL_FILE = "model.npz"
RECORD_FILE = "marginal_model.json"


@dataclass(frozen=True)
class MarginalSettings:
    """Knobs of :func:`fit_marginal_model` (defaults measured in ``benchmarks/bench_dp.py``).

    ``rounds``: adaptive rounds (None: twice the columns). ``domain_share``, ``one_way_share``: parts
    of ρ for the private domain (when none is declared) and the one-way tables; each round spends
    an equal part of the rest, ``choose_share`` of it on picking the table. ``max_cells``: the
    largest junction tree the model may grow to. ``refit_every``: tables measured between two refits of
    the model (each refit compiles a new program: the fit's main cost). ``iters``: the final fit's
    mirror-descent steps.
    """

    rounds: int | None = None
    domain_share: float = 0.05
    one_way_share: float = 0.1
    choose_share: float = 0.1
    coarse_bins: int = COARSE_BINS
    max_cells: float = 2e6
    triples: bool = True
    refit_every: int = 2
    iters: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("domain_share", "one_way_share", "choose_share"):
            if not 0 < getattr(self, name) < 1:
                raise InputError(f"{name} must lie in (0, 1), got {getattr(self, name)!r}")
        if self.domain_share + self.one_way_share >= 1:
            raise InputError("domain_share + one_way_share must leave budget for the rounds")
        if self.rounds is not None and self.rounds < 0:
            raise InputError(f"rounds must be >= 0, got {self.rounds!r}")
        if self.refit_every < 1:
            raise InputError(f"refit_every must be >= 1, got {self.refit_every!r}")


@dataclass
class MarginalModel:
    """A fitted model (inside the spawned process): the domain, the coarse codes, the noisy one-way
    tables and mbi's model.

    ``record``: what was spent and measured (ε, δ, ρ parts, the tables measured, seconds).
    """

    domain: Domain
    coarse: list[np.ndarray]  # per column: fine code -> coarse code
    one_way: list[np.ndarray]  # per column: noisy fine counts (the within-coarse distribution)
    model: object  # mbi.MarkovRandomField on the coarse domain
    record: dict = field(default_factory=dict)

    @property
    def epsilon(self) -> float:
        return float(self.record["epsilon"])

    @property
    def delta(self) -> float:
        return float(self.record["delta"])

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        """``n`` rows drawn from the model (deterministic given ``seed``)."""
        names = _names(len(self.coarse))
        state = np.random.get_state()  # mbi draws from numpy's global generator
        try:
            np.random.seed(np.random.SeedSequence([int(seed), 0x3A_2617]).generate_state(1)[0])
            data = self.model.synthetic_data(int(n), method="sample").data
        finally:
            np.random.set_state(state)
        coarse = np.stack([np.asarray(data[c], dtype=np.int64) for c in names], axis=1)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xF1_E]))
        fine = np.empty_like(coarse)
        for j, mapping in enumerate(self.coarse):
            weights = np.clip(self.one_way[j], 0.0, None) + 1e-9
            for k in range(int(mapping.max()) + 1):
                members = np.flatnonzero(mapping == k)
                rows = np.flatnonzero(coarse[:, j] == k)
                p = weights[members] / weights[members].sum()
                fine[rows, j] = members[rng.choice(len(members), size=len(rows), p=p)]
        return self.domain.decode(fine, seed)

    def save(self, folder: Path | str) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _mbi().save(self.model, folder / MODEL_FILE)
        body = {"domain": self.domain.to_dict(), "coarse": [m.tolist() for m in self.coarse],
                "one_way": [w.tolist() for w in self.one_way], "record": self.record}
        (folder / RECORD_FILE).write_text(json.dumps(body, default=float))

    @classmethod
    def load(cls, folder: Path | str) -> MarginalModel:
        folder = Path(folder)
        if not (folder / RECORD_FILE).is_file():
            raise InputError(f"{folder} holds no marginal model ({RECORD_FILE} missing)")
        body = json.loads((folder / RECORD_FILE).read_text())
        model = _mbi().load(folder / MODEL_FILE)
        return cls(Domain.from_dict(body["domain"]), [np.asarray(m, dtype=np.int64) for m in body["coarse"]],
                   [np.asarray(w, dtype=np.float64) for w in body["one_way"]], model, body["record"])


def _mbi():
    """Mbi with jax in float64 (the fit's counts reach the tens of thousands) and no on-disk cache."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_enable_compilation_cache", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mbi
    return mbi


def _names(d: int) -> list[str]:
    return [f"c{j}" for j in range(d)]


def _table(codes: np.ndarray, cols: tuple[int, ...], sizes: list[int]) -> np.ndarray:
    shape = tuple(sizes[c] for c in cols)
    idx = np.ravel_multi_index(tuple(codes[:, c] for c in cols), shape)
    return np.bincount(idx, minlength=int(np.prod(shape))).astype(np.float64)


def coarse_codes(noisy: np.ndarray, ordinal: bool, n_values: int, bins: int) -> np.ndarray:
    """Fine code -> coarse code from a column's noisy one-way table (post-processing).

    Ordinal codes (numbers) are grouped into runs of about ``1/bins`` of the mass each; categorical
    codes keep the ``bins`` largest as codes of their own and share one code for the rest. Codes
    from ``n_values`` on (the missing code) stay codes of their own.
    """
    p = np.clip(np.asarray(noisy, dtype=np.float64)[:n_values], 0.0, None)
    p = p / p.sum() if p.sum() > 0 else np.full(n_values, 1.0 / n_values)
    if ordinal:
        centre = np.cumsum(p) - p / 2.0  # each code's mid-mass position
        group = np.minimum((centre * bins).astype(np.int64), bins - 1)
        _, mapping = np.unique(group, return_inverse=True)
    elif n_values <= bins + 1:
        mapping = np.arange(n_values)
    else:
        top = np.argsort(-p, kind="stable")[:bins]
        mapping = np.full(n_values, bins, dtype=np.int64)
        mapping[top] = np.arange(bins)
    extra = len(noisy) - n_values
    return np.concatenate([mapping, mapping.max() + 1 + np.arange(extra)]).astype(np.int64)


def _gaps(model, candidates: list[tuple[int, ...]], codes: np.ndarray, sizes: list[int], n_est: float,
          rng: np.random.Generator) -> np.ndarray:
    """L1 distance between training's table and the model's, per candidate. The model's tables come
    from a large sample of it: exact inference per candidate would compile one program each."""
    names = _names(len(sizes))
    state = np.random.get_state()  # mbi samples from numpy's global generator
    try:
        np.random.seed(int(rng.integers(2**31)))
        draw = model.synthetic_data(max(100_000, 4 * int(n_est)), method="round").data
    finally:
        np.random.set_state(state)
    sample = np.stack([np.asarray(draw[c], dtype=np.int64) for c in names], axis=1)
    scale = n_est / len(sample)
    return np.array([np.abs(_table(codes, c, sizes) - scale * _table(sample, c, sizes)).sum() for c in candidates])


def fit_marginal_model(training: pd.DataFrame, epsilon: float, delta: float, folder: str | Path, *,
                       domain: Domain | None = None, settings: MarginalSettings = MarginalSettings()) -> dict:
    """Fit the model on ``training`` at ``(epsilon, delta)``-DP (neighbours: one record added or
    removed), store it in ``folder`` and return its record (what was spent and measured, ``log``:
    one line per round).

    ``domain``: declared public (the statement then does not cover categories and ranges); None
    finds it privately and spends ``domain_share`` of ρ on it plus half of ``delta`` on its
    threshold. The fit runs in a spawned process, as does :func:`sample_marginal_model`: jax is
    multithreaded and must not share a process with the engine's forked jobs.
    """
    return _in_child(_fit_and_save, training, float(epsilon), float(delta), str(folder), domain, settings)


def sample_marginal_model(folder: str | Path, n: int, seed: int) -> pd.DataFrame:
    """``n`` rows drawn from the model stored in ``folder`` (deterministic given ``seed``)."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"n must be a positive integer, got {n!r}")
    marginal_record(folder)  # a clear error for a folder without a model, before a process starts
    return _in_child(_load_and_sample, str(folder), int(n), int(seed))


def marginal_record(folder: str | Path) -> dict:
    """The stored model's record and column names (read without loading the model)."""
    path = Path(folder) / RECORD_FILE
    if not path.is_file():
        raise InputError(f"{folder} holds no marginal model ({RECORD_FILE} missing)")
    body = json.loads(path.read_text())
    return {**body["record"], "columns": [c["name"] for c in body["domain"]["columns"]]}


def _in_child(fn, *args):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _fit_and_save(training, epsilon, delta, folder, domain, settings) -> dict:
    model = _fit(training, epsilon, delta, domain, settings)
    model.save(folder)
    return model.record


def _load_and_sample(folder: str, n: int, seed: int) -> pd.DataFrame:
    return MarginalModel.load(folder).sample(n, seed)


def _fit(training: pd.DataFrame, epsilon: float, delta: float, domain: Domain | None,
         settings: MarginalSettings) -> MarginalModel:
    import time

    mbi = _mbi()
    from mbi.junction_tree import hypothetical_model_size

    lines: list[str] = []
    say = lines.append
    started = time.perf_counter()
    if training.shape[1] == 0 or len(training) == 0:
        raise InputError("the DP marginal model needs a table with rows and columns")
    rng = np.random.default_rng(np.random.SeedSequence([int(settings.seed), 0xA1_3D]))
    release: DomainRelease | None = None
    if domain is None:
        rho = epsilon_to_rho(epsilon, delta / 2.0)  # the other half of δ is the domain threshold's
        domain, release = private_domain(training, settings.domain_share * rho, delta / 2.0, rng)
        rho_rest = rho - release.rho
    else:
        rho = epsilon_to_rho(epsilon, delta)
        rho_rest = rho
    d = len(domain.columns)
    codes = domain.encode(training[domain.names])
    sizes = domain.sizes
    # one-way tables on the fine domain: each record adds 1 to one cell per column, sensitivity √d
    rho_one = settings.one_way_share * rho
    sigma_one = math.sqrt(d) / math.sqrt(2.0 * rho_one)
    one_way = [_table(codes, (j,), sizes) + rng.normal(0.0, sigma_one, sizes[j]) for j in range(d)]
    coarse = [coarse_codes(one_way[j], c.numeric, c.n_values, settings.coarse_bins)
              for j, c in enumerate(domain.columns)]
    csizes = [int(m.max()) + 1 for m in coarse]
    ccodes = np.stack([coarse[j][codes[:, j]] for j in range(d)], axis=1)
    names = _names(d)
    mdomain = mbi.Domain(names, csizes)
    measurements = []
    for j in range(d):
        y = np.bincount(coarse[j], weights=one_way[j], minlength=csizes[j])
        per_cell = np.bincount(coarse[j], minlength=csizes[j])
        # a coarse cell sums k noisy fine cells: its noise is σ√k (the mean k stands for all)
        measurements.append(mbi.LinearMeasurement(y, (names[j],), stddev=sigma_one * math.sqrt(per_cell.mean())))
    n_est = float(max(1.0, np.mean([w.sum() for w in one_way])))
    estimator = mbi.estimation.MirrorDescent()
    model = estimator.estimate(mdomain, measurements, known_total=n_est, iters=200)
    candidates = list(itertools.combinations(range(d), 2))
    if settings.triples:
        candidates += list(itertools.combinations(range(d), 3))
    rounds = 2 * d if settings.rounds is None else settings.rounds
    rho_left = rho_rest - rho_one
    measured: list[tuple[int, ...]] = []
    sigmas: list[float] = []
    gaps = None
    batch: list[tuple[int, ...]] = []
    for t in range(rounds):
        rho_t = rho_left / (rounds - t)
        rho_left -= rho_t
        rho_choose = settings.choose_share * rho_t
        sigma = 1.0 / math.sqrt(2.0 * (rho_t - rho_choose))
        if gaps is None:  # the model's tables changed: score every candidate again
            gaps = _gaps(model, candidates, ccodes, csizes, n_est, rng)
        # candidates still open; within one refit batch, none that shares two columns with a table just
        # measured (the stale model would point at the same gap twice)
        open_ = [i for i, c in enumerate(candidates) if c not in measured
                 and not any(len(set(c) & set(b)) >= 2 for b in batch)]
        if not open_:
            break
        weight = np.array([len(candidates[i]) - 1 for i in open_], dtype=np.float64)
        # score: L1 gap beyond the expected L1 of the measurement noise, weighted by the pairs a table
        # covers beyond its own (a triple speaks for three pairs and itself)
        noise = np.array([math.sqrt(2.0 / math.pi) * sigma * math.prod(csizes[j] for j in candidates[i])
                          for i in open_])
        # exponential mechanism, ρ = ε²/8; one record moves a score by at most its weight
        logits = math.sqrt(8.0 * rho_choose) * weight * (gaps[open_] - noise) / (2.0 * weight.max())
        p = np.exp(logits - logits.max())
        cliques = [m.clique for m in measurements]
        pick = None
        while pick is None and p.sum() > 0:
            # a table that would grow the model past max_cells is redrawn: the same distribution as
            # drawing among the tables that fit (which tables fit depends on no data)
            k = int(rng.choice(len(open_), p=p / p.sum()))
            c = candidates[open_[k]]
            if hypothetical_model_size(mdomain, cliques + [tuple(names[j] for j in c)]) <= settings.max_cells:
                pick = c
            p[k] = 0.0
        if pick is None:
            say(f"marginal model: no table fits under max_cells after {t} rounds")
            break
        measured.append(pick)
        batch.append(pick)
        sigmas.append(sigma)
        y = _table(ccodes, pick, csizes) + rng.normal(0.0, sigma, math.prod(csizes[j] for j in pick))
        measurements.append(mbi.LinearMeasurement(y, tuple(names[j] for j in pick), stddev=sigma))
        if len(batch) >= settings.refit_every or t == rounds - 1:
            model = estimator.estimate(mdomain, measurements, known_total=n_est, iters=100, warm_start=model)
            gaps, batch = None, []
        say(f"marginal model: round {t + 1}/{rounds} measured {[domain.names[j] for j in pick]} (σ {sigma:.3g})")
    model = estimator.estimate(mdomain, measurements, known_total=n_est, iters=settings.iters, warm_start=model)
    stated_delta = delta
    record = {
        "epsilon": float(epsilon), "delta": float(stated_delta), "rho": float(rho),
        "rho_epsilon_check": rho_to_epsilon(rho, delta / 2.0 if release is not None else delta),
        "domain": "private" if release is not None else "declared",
        "domain_release": None if release is None else asdict(release),
        "one_way": {"rho": rho_one, "sigma": sigma_one},
        "rounds": len(measured), "measured": [[domain.names[j] for j in c] for c in measured],
        "sigmas": sigmas, "coarse_sizes": csizes, "n_estimate": n_est,
        "settings": asdict(settings), "seconds": time.perf_counter() - started, "log": lines,
    }
    return MarginalModel(domain, coarse, one_way, model, record)
