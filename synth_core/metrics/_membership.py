"""Membership-inference audit: can an attacker who holds the synthetic table tell training
records (members) from records the generator never saw (non-members)?

Design, rationale and measured figures: ``docs/design/membership-audit.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from synth_core.metrics._nn_kernels import k_nearest_distances

ATTACKS = ("distance", "density_ratio")
FPRS = (0.01, 0.001)  # false-positive rates of ``tpr_at_fpr``
DIRECTIONS = {1.0: "closer", -1.0: "farther"}  # the sign an attack's score is used with
DENSITY_K = 1  # neighbours behind each density estimate (docs/design/membership-audit.md)
Z95 = 1.959963984540054  # standard normal 97.5 % quantile


class Encoded(NamedTuple):
    """Units of one table as the distance sees them: categorical codes and numbers."""

    cat: np.ndarray  # (n, n_cat) int64
    num: np.ndarray  # (n, n_num) float64, NaN for missing

    @property
    def n(self) -> int:
        """The number of units."""
        return len(self.num)


@dataclass(frozen=True)
class MembershipResult:
    """The audit's figures.

    Attributes
    ----------
    auc : float
        The highest AUC over the attacks (``membership_auc``).
    auc_ci : tuple of float
        95 % interval of that attack's AUC.
    attack : str
        The attack that reached it.
    attack_auc : dict of str to float
        Every attack's AUC.
    n_members, n_non_members : int
        Units scored, over all folds.
    n_population, n_synthetic : int
        Units the attacker holds (the larger fold's population sample; the synthetic sample).
    auc_two_sided : float or None
        The highest AUC over the attacks when each may flip its score, the direction chosen on
        the other fold (docs/design/membership-audit.md); None with a single fold.
    auc_two_sided_ci : tuple of float or None
    attack_two_sided : str or None
    direction : {"closer", "farther"} or None
        How the best two-sided attack used its score on most units: "closer" = members sit
        nearer the synthetic data, "farther" = they sit farther from it.
    attack_auc_ci : dict of str to tuple
        Every attack's 95 % interval (one-sided).
    tpr_at_fpr : dict of str to dict
        Per attack, ``{"0.01": tpr, "0.001": tpr}`` with the direction chosen on the other fold;
        a rate is None when a fold has too few non-members to place it (fewer than 1 / FPR).
    """

    auc: float
    auc_ci: tuple[float, float]
    attack: str
    attack_auc: dict[str, float]
    n_members: int
    n_non_members: int
    n_population: int
    n_synthetic: int
    auc_two_sided: float | None = None
    auc_two_sided_ci: tuple[float, float] | None = None
    attack_two_sided: str | None = None
    direction: str | None = None
    attack_auc_ci: dict[str, tuple[float, float]] | None = None
    tpr_at_fpr: dict[str, dict[str, float | None]] | None = None


def attack_scores(candidates: Encoded, synthetic: Encoded, population: Encoded,
                  k: int = DENSITY_K) -> dict[str, np.ndarray]:
    """Every attack's score per candidate unit (higher = more likely a member).

    Parameters
    ----------
    candidates : Encoded
        The units to score.
    synthetic : Encoded
        The attacker's synthetic table.
    population : Encoded
        The attacker's population sample (for the density ratio).
    k : int, default DENSITY_K
        Neighbours behind each density estimate.

    Returns
    -------
    dict of str to ndarray
        One score array per attack in :data:`ATTACKS`.
    """
    to_syn = k_nearest_distances(candidates.cat, candidates.num, synthetic.cat, synthetic.num, k)
    to_pop = k_nearest_distances(candidates.cat, candidates.num, population.cat, population.num, k)
    r_syn = np.sqrt(to_syn[:, -1])
    r_pop = np.sqrt(to_pop[:, -1])
    return {
        "distance": -np.sqrt(to_syn[:, 0]),
        "density_ratio": np.log(_positive(r_pop)) - np.log(_positive(r_syn)),
    }


def _positive(radius: np.ndarray) -> np.ndarray:
    """Radii with zeros (k exact copies) and infinities (fewer than k units) made finite."""
    radius = radius.copy()
    finite = np.isfinite(radius)
    pos = radius[finite & (radius > 0)]
    floor = pos.min() / 2 if pos.size else 1.0
    radius[finite & (radius <= 0)] = floor
    top = radius[finite].max() if finite.any() else 1.0
    radius[~finite] = 2 * max(top, floor)
    return radius


class Fold(NamedTuple):
    """One fold of the audit: candidates of known membership and the attacker's population
    sample (disjoint from the non-members)."""

    members: Encoded
    non_members: Encoded
    population: Encoded


def membership_audit(folds: list[Fold], synthetic: Encoded, k: int = DENSITY_K,
                     scores_out: list | None = None) -> MembershipResult:
    """Run every attack on every fold and score it by its mean AUC (docs/design/membership-audit.md).

    Parameters
    ----------
    folds : list of Fold
        Usually two, with the holdout halves' roles swapped.
    synthetic : Encoded
        The attacker's synthetic table.
    k : int, default DENSITY_K
    scores_out : list, optional
        When given, one dict per fold is appended: attack name → (member scores, non-member
        scores), the raw material of ROC curves; nothing else changes.

    Returns
    -------
    MembershipResult
    """
    per_fold, split = [], []
    for fold in folds:
        m = fold.members.n
        candidates = Encoded(
            np.vstack([fold.members.cat, fold.non_members.cat]), np.vstack([fold.members.num, fold.non_members.num])
        )
        scores = attack_scores(candidates, synthetic, fold.population, k)
        split.append({name: (scores[name][:m], scores[name][m:]) for name in ATTACKS})
        per_fold.append({name: auc_delong(scores[name][:m], scores[name][m:]) for name in ATTACKS})
    if scores_out is not None:
        scores_out.extend(split)
    aucs, cis, flipped, flipped_ci, signs, tprs = {}, {}, {}, {}, {}, {}
    for name in ATTACKS:
        aucs[name], cis[name] = _mean_auc([f[name] for f in per_fold])
        # each fold's direction comes from the other folds, never from itself
        signs[name] = [_direction([g[name][0] for j, g in enumerate(per_fold) if j != i]) for i in range(len(folds))]
        pairs = [(a if sign > 0 else 1.0 - a, se) for (a, se), sign in zip((f[name] for f in per_fold), signs[name])]
        flipped[name], flipped_ci[name] = _mean_auc(pairs)
        tprs[name] = {str(fpr): _tpr_at_fpr([(sign * mem, sign * non) for (mem, non), sign
                                             in zip((f[name] for f in split), signs[name])], fpr) for fpr in FPRS}
    best = max(ATTACKS, key=lambda a: (aucs[a], -ATTACKS.index(a)))
    two = max(ATTACKS, key=lambda a: (flipped[a], -ATTACKS.index(a))) if len(folds) > 1 else None
    return MembershipResult(
        auc=aucs[best],
        auc_ci=cis[best],
        attack=best,
        attack_auc=aucs,
        n_members=sum(f.members.n for f in folds),
        n_non_members=sum(f.non_members.n for f in folds),
        n_population=max(f.population.n for f in folds),
        n_synthetic=synthetic.n,
        auc_two_sided=None if two is None else flipped[two],
        auc_two_sided_ci=None if two is None else flipped_ci[two],
        attack_two_sided=two,
        direction=None if two is None else DIRECTIONS[1.0 if sum(signs[two]) >= 0 else -1.0],
        attack_auc_ci=cis,
        tpr_at_fpr=tprs,
    )


def _mean_auc(folds: list[tuple[float, float]]) -> tuple[float, tuple[float, float]]:
    """The folds' mean AUC and its 95 % interval (their DeLong errors combined as independent)."""
    auc = float(np.mean([a for a, _ in folds]))
    se = float(np.sqrt(sum(e**2 for _, e in folds))) / len(folds)
    return auc, (max(0.0, auc - Z95 * se), min(1.0, auc + Z95 * se))


def _direction(aucs: list[float]) -> float:
    """+1 (members score higher) unless the given folds' mean AUC lies below 0.5; +1 with none."""
    return -1.0 if aucs and float(np.mean(aucs)) < 0.5 else 1.0


def _tpr_at_fpr(folds: list[tuple[np.ndarray, np.ndarray]], fpr: float) -> float | None:
    """Mean over folds of the share of members scoring above the threshold that at most ``fpr``
    of the fold's non-members exceed; None when a fold has fewer than ``1 / fpr`` non-members
    (such a rate cannot be placed)."""
    rates = []
    for members, non_members in folds:
        n = len(non_members)
        allowed = int(np.floor(fpr * n))  # non-members that may score above the threshold
        if allowed < 1:
            return None
        threshold = np.sort(non_members)[n - allowed - 1]
        rates.append(float(np.mean(members > threshold)))
    return float(np.mean(rates)) if rates else None


def auc_delong(positive: np.ndarray, negative: np.ndarray) -> tuple[float, float]:
    """Mann–Whitney AUC of ``positive`` over ``negative`` (ties count half) and DeLong's
    standard error.

    Parameters
    ----------
    positive, negative : ndarray of shape (m,), (n,)
        Scores; at least one of each.

    Returns
    -------
    auc, se : float
    """
    positive = np.asarray(positive, dtype=np.float64)
    negative = np.asarray(negative, dtype=np.float64)
    m, n = len(positive), len(negative)
    if m == 0 or n == 0:
        raise ValueError("need at least one positive and one negative score")
    both = _midranks(np.concatenate([positive, negative]))
    # placement values: the share of the other sample each score beats (ties half)
    v_pos = (both[:m] - _midranks(positive)) / n
    v_neg = 1.0 - (both[m:] - _midranks(negative)) / m
    auc = float(v_pos.mean())
    var = (v_pos.var(ddof=1) / m if m > 1 else 0.0) + (v_neg.var(ddof=1) / n if n > 1 else 0.0)
    return auc, float(np.sqrt(var))


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with ties sharing their mean rank."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    new = np.r_[True, xs[1:] != xs[:-1]]
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(x)]
    mid = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 … ends
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(mid, ends - starts)
    return ranks


def near_copies(table: pd.DataFrame, training: pd.DataFrame, share: float, seed: int = 0) -> pd.DataFrame:
    """``table`` with ``share`` of its rows replaced by near-copies of training rows: a leak of
    known size, for calibrating and testing the audit (flat tables).

    A near-copy is a training row (drawn without replacement) with one numeric column, drawn
    at random, moved by +1 or −1. No figure that looks for exact copies sees it.

    Parameters
    ----------
    table : DataFrame
        The table to contaminate (a synthetic sample, say); its row count is kept.
    training : DataFrame
        Source of the copies; needs a numeric column and the table's columns.
    share : float
        Fraction of the rows to replace, in [0, 1].
    seed : int, default 0

    Returns
    -------
    DataFrame
        The kept rows in their order, then the near-copies; a fresh index.
    """
    rng = np.random.default_rng(seed)
    numeric = [c for c in training.columns
               if pd.api.types.is_numeric_dtype(training[c]) and not pd.api.types.is_bool_dtype(training[c])]
    if not numeric:
        raise ValueError("near-copies need a numeric column to move")
    n = int(round(share * len(table)))
    copies = training.iloc[rng.choice(len(training), n, replace=False)].reset_index(drop=True)
    moved, step = rng.choice(numeric, n), rng.choice([-1, 1], n)
    for col in numeric:
        hit = moved == col
        copies.loc[hit, col] = copies.loc[hit, col] + step[hit]
    kept = table.iloc[np.sort(rng.choice(len(table), len(table) - n, replace=False))]
    return pd.concat([kept, copies[list(table.columns)]], ignore_index=True)
