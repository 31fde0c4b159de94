"""The Gaussian mechanism for a set of count tables, and :class:`NoisyTargets`, all that DP selection
learns about training.

Neighbours differ by adding or removing one training record. A record falls into exactly one cell of
each of the ``F`` released tables, so the concatenated count vector moves by 1 in ``F`` coordinates:
L2 sensitivity ``Δ = √F``. Adding independent ``N(0, σ²)`` noise to every cell with
``σ = Δ / √(2ρ)`` is ``ρ``-zCDP for the whole set of tables. Everything computed from the noisy counts
afterwards (clipping at zero, normalising, the total estimate, IPF, trimming, refinement) is
post-processing and costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from synth_core.dp._accountant import gaussian_sigma
from synth_core.errors import InputError

if TYPE_CHECKING:  # the feature layout; the dp package itself needs only its offsets and cell counts
    from synth_core.select import FeatureSet


def gaussian_release(counts: np.ndarray, n_tables: int, rho: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """``counts`` (the concatenated cells of ``n_tables`` tables, float64) plus Gaussian noise that makes
    the release ``rho``-zCDP; returns ``(noisy counts, σ, Δ)``."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1:
        raise InputError("counts must be a 1-D vector of table cells")
    if not isinstance(n_tables, (int, np.integer)) or n_tables < 1:
        raise InputError(f"n_tables must be a positive integer, got {n_tables!r}")
    sensitivity = float(np.sqrt(n_tables))
    sigma = gaussian_sigma(rho, sensitivity)
    return counts + rng.normal(0.0, sigma, size=counts.shape[0]), sigma, sensitivity


def noise_rng(seed: int) -> np.random.Generator:
    """The noise's generator: its own stream of ``seed``, apart from every other use of the seed.

    The guarantee assumes the noise is unknown to the reader: a published seed lets anyone redraw
    the noise, so DP runs must keep the seed secret (or draw it at random)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0x0D9_5E1EC7]))


@dataclass(frozen=True, eq=False)
class NoisyTargets:
    """The released noisy count tables of a feature set: all the DP selection stages see of training.

    ``noisy``: the raw release (one value per cell); ``counts``: each table projected onto the
    non-negative tables of total ``n`` (post-processing; plain clipping at zero would add the positive
    noise of every empty cell, about 0.4 σ each, to the table); ``n``: the estimated training size,
    an inverse-variance weighted mean of the features' noisy totals (post-processing); ``rho``,
    ``sigma``, ``sensitivity``: the mechanism.
    """

    feature_set: FeatureSet
    noisy: np.ndarray
    counts: np.ndarray
    n: float
    rho: float
    sigma: float
    sensitivity: float

    shrinkage: np.ndarray | None = None  # per feature: weight of the noisy table against the prior

    @classmethod
    def from_release(cls, feature_set: Any, noisy: np.ndarray, rho: float, sigma: float,
                     sensitivity: float, prior: np.ndarray | None = None) -> NoisyTargets:
        """Post-process a raw release into targets: estimate the total, project every table onto the
        non-negative tables of that total and, given a ``prior`` (cell counts of public or already
        DP-released data on the same features, e.g. the DP generator's pool), shrink each table
        towards the prior's proportions by how much of its difference from the prior the noise
        explains (a James-Stein weight ``max(0, 1 - cells σ²/n² / |noisy/n - prior|²)``)."""
        noisy = np.asarray(noisy, dtype=np.float64)
        if noisy.shape != (int(feature_set.total_cells),):
            raise InputError(f"release has {noisy.shape} cells, the feature set {feature_set.total_cells}")
        totals = np.add.reduceat(noisy, feature_set.offsets)
        # each feature's total is n plus N(0, σ² · cells): weight by the inverse of that variance
        inv_var = 1.0 / np.asarray(feature_set.n_cells, dtype=np.float64)
        n = float(max(1.0, np.dot(totals, inv_var) / inv_var.sum()))
        spans = [(int(lo), int(lo) + int(c)) for lo, c in zip(feature_set.offsets, feature_set.n_cells)]
        counts = np.concatenate([_onto_simplex(noisy[lo:hi], n) for lo, hi in spans])
        shrinkage = None
        if prior is not None:
            prior = np.asarray(prior, dtype=np.float64)
            shrinkage = np.ones(len(spans))
            for f, (lo, hi) in enumerate(spans):
                q = prior[lo:hi] / max(prior[lo:hi].sum(), 1e-300)
                gap = float(np.sum((noisy[lo:hi] / n - q) ** 2))
                noise = (hi - lo) * sigma * sigma / (n * n)
                shrinkage[f] = max(0.0, 1.0 - noise / gap) if gap > 0 else 0.0
                counts[lo:hi] = n * q + shrinkage[f] * (counts[lo:hi] - n * q)
            shrinkage.setflags(write=False)
        for a in (noisy, counts):
            a.setflags(write=False)
        return cls(feature_set, noisy, counts, n, float(rho), float(sigma), float(sensitivity), shrinkage)

    def proportions(self) -> np.ndarray:
        """Per-feature proportions of the clipped counts (uniform for a feature clipped to all zeros)."""
        fs = self.feature_set
        totals = np.add.reduceat(self.counts, fs.offsets)
        cells = np.asarray(fs.n_cells, dtype=np.float64)
        out = np.empty_like(self.counts)
        for f in range(len(totals)):
            lo, hi = int(fs.offsets[f]), int(fs.offsets[f]) + int(cells[f])
            out[lo:hi] = self.counts[lo:hi] / totals[f] if totals[f] > 0 else 1.0 / cells[f]
        return out

    def target(self, n_target: float) -> np.ndarray:
        """Target cell counts for a subset of ``n_target`` rows (each feature sums to ``n_target``)."""
        if not n_target > 0:
            raise InputError(f"n_target must be positive, got {n_target}")
        return self.proportions() * float(n_target)

    def tables(self, features: np.ndarray) -> np.ndarray:
        """The proportions of the given features, concatenated in that order (IPF's target tables)."""
        p = self.proportions()
        fs = self.feature_set
        parts = [p[int(fs.offsets[f]):int(fs.offsets[f]) + int(fs.n_cells[f])] for f in features]
        return np.concatenate(parts) if parts else np.zeros(0)

    def figures(self) -> dict:
        """What the release spent and how noisy it is (for tables, JSON and metadata)."""
        return {"rho": self.rho, "sigma": self.sigma, "sensitivity": self.sensitivity,
                "tables": int(self.feature_set.n_features), "cells": int(self.feature_set.total_cells),
                "noisy_n": self.n,
                "mean_shrinkage": None if self.shrinkage is None else float(np.mean(self.shrinkage))}


def _onto_simplex(values: np.ndarray, total: float) -> np.ndarray:
    """The Euclidean projection of ``values`` onto ``{x >= 0, sum(x) = total}``: ``max(values - τ, 0)``
    with the one ``τ`` that gives the total (found from the sorted values)."""
    v = np.sort(values)[::-1]
    cum = np.cumsum(v) - total
    k = np.arange(1, v.shape[0] + 1)
    last = int(np.flatnonzero(v - cum / k > 0)[-1])
    tau = cum[last] / (last + 1)
    return np.maximum(values - tau, 0.0)
