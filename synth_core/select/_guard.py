"""The privacy guard: keep selection from pulling the output towards the training records.

Design, rationale and measured figures: ``docs/design/privacy-guard.md``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from synth_core.errors import InputError
from synth_core.select import _guard_kernels as gk

log = logging.getLogger(__name__)

# Stratum edges as quantiles of the candidates' closeness ratio: fine where units are closest.
STRATA_QUANTILES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9)
RATIO_EPS = 1e-6  # keeps the log-ratio finite for units at distance 0
BALANCE_WEIGHT = 1.0  # the balancing refinement's closeness weight: a stratum off target costs more than any swap gains
BALANCE_ROUNDS = 20
FAIR_MIN_PROFILES = 5  # profiles a copy-count level needs above it for its fair share to be estimated
NEAR_EXCESS_FACTOR = 2.0  # a pool replays only above this multiple of the fair near-copy share (_excess_near_copies)
Z95 = 1.959963984540054


@dataclass(frozen=True)
class GuardSettings:
    """Knobs of the privacy guard (defaults measured in ``benchmarks/bench_privacy_guard.py``).

    ``enabled=False`` turns the guard off: selection may then use replicas and near-copies and
    is free to fit training's noise (it still reports the replicas it saw).
    """

    enabled: bool = True
    replica_k: int = 5  # a copy of a profile this many training units share is no replica
    near_copy_quantile: float = 0.01
    closeness_weight: float = 0.05
    balance_tolerance: float = 0.002  # closeness error above which a balancing refinement follows
    copy_remedy: bool = True  # hold copies of common training profiles at a fair generator's rate
    n_trees: int = 4
    leaf_size: int = 64
    work_budget: float = 4e10  # query units x trees x leaf size x features; the forest shrinks above

    def __post_init__(self) -> None:
        if not 0.0 <= self.near_copy_quantile < 0.5:
            raise InputError(f"near_copy_quantile must lie in [0, 0.5), got {self.near_copy_quantile}")
        if self.closeness_weight < 0:
            raise InputError(f"closeness_weight must be >= 0, got {self.closeness_weight}")
        if self.replica_k < 1:
            raise InputError(f"replica_k must be >= 1, got {self.replica_k}")


@dataclass(frozen=True, eq=False)
class PoolGuard:
    """What the guard decided for one pool.

    Attributes
    ----------
    n_pool : int
        Units (rows, or groups) in the pool.
    candidates : ndarray of int64
        Sorted pool units selection may use.
    strata : ndarray of uint8 or None
        Closeness stratum of each candidate (None when the guard is off).
    n_strata : int
    replicas, near_copies : int
        Pool units removed as replicas / near-copies of training units (only where the pool holds
        more than a fair generator would).
    threshold : float
        Near-copy distance threshold (NaN when the guard is off).
    excluded_columns : dict
        Columns left out of the comparison (identifiers), with the reason.
    elapsed_s : float
    """

    n_pool: int
    candidates: np.ndarray
    strata: np.ndarray | None
    n_strata: int
    replicas: int
    near_copies: int
    threshold: float
    excluded_columns: dict = field(default_factory=dict)
    elapsed_s: float = 0.0
    remedy: dict = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.strata is not None

    def closeness_floor(self, n: int) -> float:
        """The smallest ``closeness_error`` a subset of ``n`` units can have: stratum counts are
        whole numbers, the pool's shares times ``n`` are not."""
        target = self.stratum_target(n)
        return float(np.abs(target - np.round(target)).sum() / max(1, n))

    def needs_balancing(self, positions: np.ndarray, settings: GuardSettings) -> bool:
        """Whether the subset at ``positions`` (of :attr:`candidates`) is off the pool's strata by
        more than ``settings.balance_tolerance`` beyond what whole counts force."""
        return self.enabled and (self.closeness_error(positions)
                                 > settings.balance_tolerance + self.closeness_floor(len(positions)))

    def positions(self, units: np.ndarray) -> np.ndarray:
        """Positions in :attr:`candidates` of pool ``units`` (each must be a candidate)."""
        units = np.asarray(units, dtype=np.int64)
        pos = np.searchsorted(self.candidates, units)
        if units.size and (pos.max() >= len(self.candidates) or np.any(self.candidates[pos] != units)):
            raise InputError("a unit of the subset is not a candidate of the privacy guard")
        return pos

    def units(self, positions: np.ndarray) -> np.ndarray:
        """Pool units (sorted) at ``positions`` of :attr:`candidates`."""
        return np.sort(self.candidates[np.asarray(positions, dtype=np.int64)])

    def stratum_target(self, n: int) -> np.ndarray:
        """The candidates' stratum histogram scaled to a subset of ``n`` units."""
        hist = np.bincount(self.strata, minlength=self.n_strata).astype(np.float64)
        return hist * (float(n) / max(1.0, hist.sum()))

    def closeness_error(self, positions: np.ndarray) -> float:
        """L1 distance (0 … 2) of the shares of the candidates at ``positions`` (indices into
        ``candidates``) over the strata from the candidates' own shares."""
        if not self.enabled or len(positions) == 0:
            return 0.0
        got = np.bincount(self.strata[positions], minlength=self.n_strata) / len(positions)
        want = self.stratum_target(1)
        return float(np.abs(got - want).sum())

    def save(self, path) -> None:
        """Write the verdict to ``path`` (``.npz``, written atomically)."""
        from synth_core.io import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, n_pool=self.n_pool, candidates=self.candidates,
                     strata=self.strata if self.enabled else np.zeros(0, np.uint8), enabled=self.enabled,
                     n_strata=self.n_strata, replicas=self.replicas, near_copies=self.near_copies,
                     threshold=self.threshold, excluded=json.dumps(self.excluded_columns), elapsed_s=self.elapsed_s,
                     remedy=json.dumps(self.remedy))

    @classmethod
    def load(cls, path) -> PoolGuard:
        """Read a verdict written by :meth:`save`."""
        with np.load(path) as z:
            return cls(int(z["n_pool"]), z["candidates"].astype(np.int64), z["strata"] if bool(z["enabled"]) else None,
                       int(z["n_strata"]), int(z["replicas"]), int(z["near_copies"]), float(z["threshold"]),
                       json.loads(str(z["excluded"])), float(z["elapsed_s"]),
                       json.loads(str(z["remedy"])) if "remedy" in z.files else {})

    @property
    def remedy_note(self) -> str | None:
        """One sentence on the copy remedy when it acted, else None."""
        removed = int(self.remedy.get("copy_remedy_removed", 0))
        if not removed:
            return None
        r = self.remedy
        return (f"the pool copies common training profiles in {100 * r['copy_share']:.2f}% of its units where a fair "
                f"generator would in {100 * r['copy_share_fair']:.2f}% (± {100 * r['copy_share_se']:.2f}%): "
                f"{removed:,} such copies were left out of the selection")

    def figures(self) -> dict[str, float]:
        seen = self.replicas
        if "replica_share" in self.remedy:  # the guard kept replicas within a fair generator's share
            seen = int(round(self.remedy["replica_share"] * self.n_pool))
        out = {"pool_replicas_removed": float(self.replicas) if self.enabled else 0.0,
               "pool_replicas_seen": float(seen),
               "guard_candidates": float(len(self.candidates)),
               "guard_s": round(self.elapsed_s, 3)}
        if self.enabled:
            out.update({"near_copies_avoided": float(self.near_copies), "near_copy_threshold": self.threshold})
        out.update({k: float(v) for k, v in self.remedy.items() if isinstance(v, (int, float))})
        return out


def guard_off(n_pool: int) -> PoolGuard:
    """The verdict of a disabled guard on a pool of ``n_pool`` units: every unit a candidate."""
    return PoolGuard(n_pool, np.arange(n_pool, dtype=np.int64), None, 0, 0, 0, float("nan"))


def guard_pool(
    training: pd.DataFrame,
    pool: pd.DataFrame,
    *,
    group_key: str | None = None,
    settings: GuardSettings = GuardSettings(),
    seed: int = 0,
    drop: tuple[str, ...] = (),
) -> PoolGuard:
    """Replicas, near-copies and closeness strata of ``pool`` against ``training``.

    Parameters
    ----------
    training, pool : DataFrame
        The compared columns are training's, less ``group_key``, ``drop`` and identifier-like
        columns (:func:`synth_core.metrics._privacy.id_like_columns`).
    group_key : str, optional
        Sequential data: units are groups.
    settings : GuardSettings
    seed : int
        Seeds the pool reference sample and the forest.
    drop : tuple of str
        Columns never compared (e.g. keys the user names).

    Returns
    -------
    PoolGuard
    """
    from synth_core.metrics import units as pv
    started = time.perf_counter()
    excluded = pv.excluded_columns(training, group_key, drop, detect_ids=True)
    frames = {"training": training, "holdout": training.iloc[:0], "synthetic": pool}
    columns = pv.check_columns({"training": training, "synthetic": pool}, group_key, excluded)
    values, keys, is_cat = pv.encode_columns(frames, columns)
    train_ids, pool_ids = pv.row_ids([keys["training"], keys["synthetic"]])
    if group_key is None:
        # ids are shared by both tables and dense: count them in an array
        per_id = np.bincount(train_ids, minlength=int(max(train_ids.max(), pool_ids.max())) + 1)
        counts, profile_counts = per_id[pool_ids], per_id[per_id > 0]
        units = {"training": values["training"], "pool": values["synthetic"]}
        unit_is_cat = is_cat
    else:
        groups = {t: pd.factorize(frames[t][group_key], use_na_sentinel=False)[0] for t in ("training", "synthetic")}
        counts, profile_counts = _copies(pv.sequence_keys(train_ids, groups["training"]),
                                         pv.sequence_keys(pool_ids, groups["synthetic"]))
        units = {}
        for t, name in (("training", "training"), ("synthetic", "pool")):
            units[name], unit_is_cat, _ = pv.sequence_units(values[t], is_cat, groups[t])
    exact, replica = counts > 0, (counts > 0) & (counts < settings.replica_k)
    n_pool = len(units["pool"])
    if not settings.enabled:
        return replace(guard_off(n_pool), replicas=int(replica.sum()), excluded_columns=excluded,
                       elapsed_s=time.perf_counter() - started)

    d_train, d_ref, loo = _closeness(units["training"], units["pool"], unit_is_cat, settings, seed, ~replica)
    threshold = float(np.quantile(loo, settings.near_copy_quantile)) if settings.near_copy_quantile > 0 else 0.0
    near = ~exact & (d_train <= threshold) if threshold > 0 else np.zeros(n_pool, dtype=bool)
    removed, figures = _excess_replicas(replica, counts, profile_counts, settings.replica_k)
    near, near_figures = _excess_near_copies(near, d_train, d_ref, loo, threshold)
    figures.update(near_figures)
    trimmed, remedy = (_fair_copies(counts, profile_counts, settings.replica_k, seed) if settings.copy_remedy
                       else (np.zeros(n_pool, dtype=bool), {}))
    remedy = {**figures, **remedy}
    candidates = np.flatnonzero(~removed & ~near & ~trimmed).astype(np.int64)
    if len(candidates) == 0:
        raise InputError("every pool unit is a replica or near-copy of a training unit: the generator memorised "
                         "its training data (turn the privacy guard off only to inspect this)")
    ratio = np.log((np.sqrt(d_train[candidates]) + RATIO_EPS) / (np.sqrt(d_ref[candidates]) + RATIO_EPS))
    edges = np.quantile(ratio, STRATA_QUANTILES)
    strata = np.searchsorted(edges, ratio, side="right").astype(np.uint8)
    guard = PoolGuard(n_pool, candidates, strata, len(STRATA_QUANTILES) + 1, int(removed.sum()), int(near.sum()),
                      float(np.sqrt(max(threshold, 0.0))), excluded, time.perf_counter() - started, remedy)
    if guard.remedy_note:
        log.warning("privacy guard remedy: %s", guard.remedy_note)
    log.info("privacy guard: %s replicas and %s near-copies (distance <= %.4g) of %s pool units removed, %.1f s",
             f"{guard.replicas:,}", f"{guard.near_copies:,}", guard.threshold, f"{n_pool:,}", guard.elapsed_s)
    return guard


def _copies(train_keys: list[bytes], pool_keys: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Per pool sequence, how many training sequences equal it; and the count of every distinct
    training sequence."""
    seen: dict = {}
    for key in train_keys:
        seen[key] = seen.get(key, 0) + 1
    counts = np.array([seen.get(key, 0) for key in pool_keys], dtype=np.int64)
    return counts, np.fromiter(seen.values(), dtype=np.int64, count=len(seen))


def _excess(share: float, n: int, fair: float, fair_var: float) -> bool:
    """Whether a pool's share (of ``n`` units) lies above a fair generator's share ``fair`` by
    more than 1.96 standard errors, the error taken under the fair share (binomial noise at
    ``fair`` plus ``fair_var``, the estimate's own variance): where the fair share is exactly zero
    (no chance copy possible), one copy is excess."""
    return share - fair > Z95 * np.sqrt(fair * (1 - fair) / max(1, n) + fair_var)


def _good_turing(by_level: np.ndarray, levels: np.ndarray, n_train: int) -> tuple[float, float]:
    """Population mass of the profiles seen ``levels`` times in ``n_train`` units, by Good and
    Turing: sum of (r + 1)·n₍r+1₎ / N, and the estimate's variance (Var n₍r₎ ≈ n₍r₎).
    ``by_level[r]`` = n₍r₎, the number of profiles seen r times."""
    mass = float(((levels + 1) * by_level[levels + 1]).sum() / n_train)
    return mass, float(((levels + 1) ** 2 * by_level[levels + 1]).sum() / n_train**2)


def _excess_replicas(replica: np.ndarray, counts: np.ndarray, profile_counts: np.ndarray,
                     k: int) -> tuple[np.ndarray, dict]:
    """The replicas to remove: all of them when the pool copies rare training profiles (seen 1 to
    ``k − 1`` times) more often than a generator that never saw training would, none otherwise.

    A fair generator meets a rare profile by chance at about its population mass, which Good and
    Turing estimate from training alone: the profiles seen r times in N units hold about
    (r + 1)·n₍r+1₎ / N of it (as in :func:`_fair_copies`); zero in continuous data, tens of per
    cent in tables of a few coarse columns, where a random pool sample copies training about as
    often as it copies unseen records. Removing those chance copies would leave the output
    *farther* from training than from the holdout, a membership signal of its own; so a pool
    within its noise of the fair share keeps them. Two shares are tested, the singletons' (the
    most exposed records) and the whole band's; a pool above either replays training, and then
    every replica goes: no copy of a rare record is published, at the price of an output short
    of the fair share's chance copies (zero where data are continuous).
    """
    n_pool, n_train = len(counts), max(1, int(profile_counts.sum()))
    by_level = np.bincount(profile_counts, minlength=k + 1)
    leaky = False
    figures = {}
    for name, levels in (("replica_share", np.arange(1, k)), ("singleton_copy_share", np.arange(1, 2))):
        share = float(np.isin(counts, levels).mean()) if n_pool else 0.0
        fair, fair_var = _good_turing(by_level, levels, n_train)
        leaky |= _excess(share, n_pool, fair, fair_var)
        figures.update({name: share, f"{name}_fair": fair})
    return (replica if leaky else np.zeros_like(replica)), figures


def _excess_near_copies(near: np.ndarray, d_train: np.ndarray, d_ref: np.ndarray, loo: np.ndarray,
                        threshold: float) -> tuple[np.ndarray, dict]:
    """The near-copies to remove: none unless the pool holds clearly more of them than a fair
    generator would, else the closest ones, down to that fair share.

    A fair generator's share is estimated twice, from training and from the pool, and the larger
    estimate is taken: training's own share of records within the threshold of another training
    record (the threshold is a quantile of those leave-one-out distances, exact twins left aside),
    and the pool's share within it of a reference sample of the pool as large as training. The
    first underestimates where each cell of a grid appears once (a table of daily counts: a fresh
    day lands on a training day 80 % of the time, a training day never on another), the second
    less so. Only a pool above :data:`NEAR_EXCESS_FACTOR` times that estimate, beyond its noise,
    counts as replaying: on the cholera table of the corpus (730 daily counts) a fair pool held
    23 % near-copies against estimates of 1 % and 17 %, and removing the difference pushed the
    output away from training (membership AUC 0.80 "farther" against 0.47-0.56 for random pool
    samples); pools with 2 % and 10 % injected near-copies hold 3 and 11 times training's share.
    Removing a fair generator's near-copies would push the output away from training; only the
    excess is replay, and the closest units are the likeliest replayed.
    """
    n_pool, n_train = len(near), len(loo)
    share = float(near.mean()) if n_pool else 0.0
    by_training = float(((loo > 0) & (loo <= threshold)).mean()) if threshold > 0 and n_train else 0.0
    by_pool = float((d_ref <= threshold).mean()) if threshold > 0 and n_pool else 0.0
    fair = max(by_training, by_pool)
    figures = {"near_copy_share": share, "near_copy_share_fair": fair}
    if not _excess(share, n_pool, NEAR_EXCESS_FACTOR * fair, fair * (1 - fair) / max(1, n_train)):
        return np.zeros_like(near), figures
    members = np.flatnonzero(near)
    excess = len(members) - int(round(fair * n_pool))
    closest = members[np.argsort(d_train[members], kind="stable")[:excess]]
    out = np.zeros_like(near)
    out[closest] = True
    return out, figures


def _fair_copies(counts: np.ndarray, profile_counts: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, dict]:
    """Pool units to leave out so that copies of training profiles seen ``k`` or more times come no
    more often than from a generator that never saw training.

    By Good and Turing's estimate, the profiles seen r times in N training units hold a population
    mass of about (r + 1)·n₍r+1₎ / N (n₍r₎: profiles seen r times), where a generator replaying
    training makes them at r·n₍r₎ / N. The estimate is summed over one band of levels, from ``k``
    up to the last level with at least :data:`FAIR_MIN_PROFILES` profiles above it (single levels
    are too noisy; rarer-than-``k`` copies are the replicas, removed anyway). When the pool's share
    of copies in the band exceeds that fair share by more than 1.96 standard errors, every level's
    copies are thinned at random (seeded) by the same factor, down to the fair share. Returns the
    mask and the figures of the decision (empty when no band could be formed).
    """
    n_pool, n_train = len(counts), int(profile_counts.sum())
    by_level = np.bincount(profile_counts)  # n_r
    above = np.cumsum(by_level[::-1])[::-1]  # profiles seen r or more times
    top = [r for r in range(k, len(by_level) - 1) if above[r + 1] >= FAIR_MIN_PROFILES]
    trimmed = np.zeros(n_pool, dtype=bool)
    if not top or n_pool == 0:
        return trimmed, {}
    band = np.arange(k, top[-1] + 1)
    in_band = np.flatnonzero((counts >= k) & (counts <= band[-1]))
    share = len(in_band) / n_pool
    fair_share, fair_var = _good_turing(by_level, band, n_train)
    # binomial noise of the pool's share plus the estimate's own (Var n₍r₎ ≈ n₍r₎)
    se = float(np.sqrt(share * (1 - share) / n_pool + fair_var))
    figures = {"copy_share": share, "copy_share_fair": fair_share, "copy_share_se": se, "copy_remedy_removed": 0}
    if share - fair_share <= Z95 * se:
        return trimmed, figures
    keep = fair_share / share
    rng = np.random.default_rng([seed, 0xC0])
    trimmed[in_band[rng.random(len(in_band)) >= keep]] = True
    figures["copy_remedy_removed"] = int(trimmed.sum())
    return trimmed, figures


def _closeness(train: np.ndarray, pool: np.ndarray, is_cat: np.ndarray, settings: GuardSettings,
               seed: int, eligible: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Squared distances: pool → nearest training unit, pool → nearest unit of a reference sample
    of the pool (itself excluded), and training → nearest other training unit.

    ``eligible``: pool units the reference may hold (default all). The guard leaves replicas (copies
    of rare training profiles) out of it: a generator that replays a record several times would
    otherwise find its own replays in the reference and pass for one whose units merely crowd
    together. Copies of common profiles stay: in a table of a few coarse columns they are most of
    the pool."""
    from synth_core.metrics import units as pv
    n_train, n_pool = len(train), len(pool)
    fitted = pv.fit_ranks([train], is_cat)
    train, pool = pv.apply_ranks(train, fitted, is_cat), pv.apply_ranks(pool, fitted, is_cat)
    # the reference: as many pool units as training has (at most half the pool), seeded
    allowed = np.arange(n_pool) if eligible is None or not eligible.any() else np.flatnonzero(eligible)
    n_ref = max(1, min(n_train, len(allowed) // 2))
    ref = np.sort(np.random.default_rng(seed).choice(allowed, n_ref, replace=False))
    units = np.vstack([train, pool[ref]])
    unit_set = np.r_[np.zeros(n_train, np.int64), np.ones(n_ref, np.int64)]
    cat = np.ascontiguousarray(units[:, is_cat], dtype=np.int64)
    num = np.ascontiguousarray(units[:, ~is_cat])
    n_codes = np.maximum(cat.max(axis=0, initial=-1), pool[:, is_cat].max(axis=0, initial=-1)).astype(np.int64) + 1
    emb = gk.embed(cat, num, n_codes, seed)
    n_trees, leaf = _forest_size(n_pool + n_train, units.shape[1], settings)
    forest = gk.build_forest(emb, n_trees, leaf, seed)
    order = forest[0]
    t_cat, t_num, t_set = cat[order], num[order], unit_set[order]

    def search(q_units: np.ndarray, own: np.ndarray) -> np.ndarray:
        q_cat = np.ascontiguousarray(q_units[:, is_cat], dtype=np.int64)
        q_num = np.ascontiguousarray(q_units[:, ~is_cat])
        out = np.empty((len(q_units), 2))
        gk.nearest_by_set(gk.embed(q_cat, q_num, n_codes, seed), q_cat, q_num, own, *forest, t_cat, t_num, t_set, out)
        return out

    own = np.full(n_pool, -1, np.int64)
    own[ref] = n_train + np.arange(n_ref)  # a reference unit must not find itself
    pool_d = search(pool, own)
    loo = search(train, np.arange(n_train, dtype=np.int64))[:, 0]
    # A set not met in any leaf is sparse around the query: count it as far as the farthest met.
    for d in (pool_d[:, 0], pool_d[:, 1], loo):
        missed = ~np.isfinite(d)
        if missed.any():
            d[missed] = d[~missed].max(initial=1.0)
    return pool_d[:, 0], pool_d[:, 1], loo


def _forest_size(n_queries: int, n_features: int, settings: GuardSettings) -> tuple[int, int]:
    """Trees and leaf size within the work budget: fewer trees first (down to 2), then smaller
    leaves (down to 16)."""
    trees, leaf = settings.n_trees, settings.leaf_size
    cost = lambda t, size: float(n_queries) * t * size * max(1, n_features)  # noqa: E731
    while trees > 2 and cost(trees, leaf) > settings.work_budget:
        trees -= 1
    while leaf > 16 and cost(trees, leaf) > settings.work_budget:
        leaf //= 2
    return trees, leaf
