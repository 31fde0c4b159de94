"""A seeded, model-free flat workload of competition size: 80 columns, a 100 k-row target table,
and candidate pools drawn from a *perturbed* copy of the same data-generating process.

The source process (:func:`source_process`) has real structure:

* ``N_FACTORS`` standard-normal latent factors ``f``; every column reads a column-specific
  linear combination of them (``loadings``), so numeric columns are correlated and categorical
  columns depend on numeric ones and on each other;
* 60 numeric columns of five shapes: Gaussian, log-normal (skewed, 2 decimals), small
  integers (counts: few distinct values, one bin per value), zero-inflated log-normal (the
  zero share depends on the factors), and bounded percentages; 24 of them have missing values
  whose rate depends on a factor (missing at random, not completely at random);
* 20 categorical columns with 3-40 categories and Zipf-like (skewed) frequencies, cut from a
  latent score; 5 of them mix in a product of two factors (an interaction that pairs alone do not
  describe), 4 have missing values;
* column names are shuffled so that kinds are interleaved.

:func:`perturbed` derives the pool's process: loadings shifted by noise (changed correlations),
category frequencies tilted, zero and missing shares moved, numeric locations and scales
nudged. A uniform sample of such a pool scores clearly below what the target allows, and rows
in the under-represented regions are rare, so a larger pool gives selection more to work with.

Sampling is sharded: shard ``k`` of any table uses the seed ``(seed, role, k)``, so the pool of
250 k rows is the first shard of the 1 M and 2.5 M pools. Everything is numpy
``default_rng``; the same arguments give the same table on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.special import ndtri

N_FACTORS = 10
N_NUMERIC = 60
N_CATEGORICAL = 20
SHARD_ROWS = 250_000
NUMERIC_SHAPES = ("gauss", "lognormal", "count", "zero_inflated", "percent")
PERTURB_STRENGTH = 0.3  # a uniform 100 k sample of the pool then scores about 0.95 overall
ROLES = {"target": 1, "pool": 2, "holdout": 3}


@dataclass(frozen=True)
class Process:
    """Parameters of one data-generating process (see the module docstring)."""

    names: tuple[str, ...]  # output column order (kinds interleaved)
    kind: tuple[str, ...]  # per numeric column: one of NUMERIC_SHAPES
    loadings: np.ndarray  # (80, N_FACTORS): rows 0..59 numeric, 60..79 categorical
    loc: np.ndarray  # (60,)
    scale: np.ndarray  # (60,)
    zero_bias: np.ndarray  # (60,) logit offset of the zero share (zero-inflated columns)
    na_bias: np.ndarray  # (80,) logit offset of the missing share (-inf: never missing)
    na_factor: np.ndarray  # (80,) which factor drives missingness
    cat_probs: tuple[np.ndarray, ...]  # (20,) category probabilities, in label order of the cut
    cat_labels: tuple[tuple[str, ...], ...]  # (20,) label of each cut interval
    interaction: np.ndarray  # (20,) weight of the factor product f[a] * f[b] in the score
    inter_pair: np.ndarray  # (20, 2) the factors of that product


def _unit_rows(m: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """Scale each row of ``m`` to Euclidean norm ``signal`` (the rest of the variance is noise)."""
    return m * (signal / np.linalg.norm(m, axis=1))[:, None]


def source_process(seed: int = 0) -> Process:
    """The target's process."""
    rng = np.random.default_rng([seed, 0])
    n_cols = N_NUMERIC + N_CATEGORICAL
    # sparse-ish loadings: each column reads 2-4 factors strongly, the rest weakly
    raw = rng.normal(0.0, 0.15, size=(n_cols, N_FACTORS))
    for j in range(n_cols):
        strong = rng.choice(N_FACTORS, size=rng.integers(2, 5), replace=False)
        raw[j, strong] += rng.normal(0.0, 1.0, size=strong.size) + np.sign(rng.normal(size=strong.size)) * 0.6
    signal = rng.uniform(0.55, 0.9, size=n_cols)  # share of a column's std explained by the factors
    loadings = _unit_rows(raw, signal)
    kinds = tuple(NUMERIC_SHAPES[i % len(NUMERIC_SHAPES)] for i in rng.permutation(N_NUMERIC))
    loc = rng.uniform(-1.0, 3.0, size=N_NUMERIC)
    scale = rng.uniform(0.3, 1.5, size=N_NUMERIC)
    zero_bias = rng.uniform(-1.0, 1.0, size=N_NUMERIC)
    na_bias = np.full(n_cols, -np.inf)
    na_cols = np.concatenate([rng.choice(N_NUMERIC, 24, replace=False),
                              N_NUMERIC + rng.choice(N_CATEGORICAL, 4, replace=False)])
    na_bias[na_cols] = rng.uniform(-4.0, -1.5, size=na_cols.size)  # 2 % to 18 % missing
    na_factor = rng.integers(0, N_FACTORS, size=n_cols)
    probs, labels = [], []
    for j in range(N_CATEGORICAL):
        k = int(rng.choice([3, 4, 5, 6, 8, 10, 12, 15, 20, 40]))
        p = 1.0 / np.arange(1, k + 1) ** rng.uniform(0.6, 1.6)
        p = p[rng.permutation(k)]  # skew not aligned with the latent order
        probs.append(p / p.sum())
        labels.append(tuple(f"c{j:02d}_{v}" for v in rng.permutation(k)))
    interaction = np.zeros(N_CATEGORICAL)
    interaction[rng.choice(N_CATEGORICAL, 5, replace=False)] = rng.uniform(0.5, 0.9, size=5)
    inter_pair = np.stack([rng.choice(N_FACTORS, 2, replace=False) for _ in range(N_CATEGORICAL)])
    num_names = [f"num_{i:02d}" for i in range(N_NUMERIC)]
    cat_names = [f"cat_{i:02d}" for i in range(N_CATEGORICAL)]
    order = rng.permutation(n_cols)
    names = tuple((num_names + cat_names)[i] for i in order)
    return Process(names, kinds, loadings, loc, scale, zero_bias, na_bias, na_factor, tuple(probs),
                   tuple(labels), interaction, inter_pair)


def perturbed(proc: Process, strength: float = PERTURB_STRENGTH, seed: int = 0) -> Process:
    """The pool's process: the same columns with shifted correlations, frequencies and shares."""
    rng = np.random.default_rng([seed, 1])
    s = strength
    norms = np.linalg.norm(proc.loadings, axis=1)
    loadings = _unit_rows(proc.loadings + rng.normal(0.0, 0.22 * s, size=proc.loadings.shape), norms)
    probs = []
    for p in proc.cat_probs:
        q = p * np.exp(rng.normal(0.0, 0.45 * s, size=p.size))
        probs.append(q / q.sum())
    na_bias = np.where(np.isfinite(proc.na_bias), proc.na_bias + rng.normal(0.0, 0.5 * s, size=proc.na_bias.size),
                       -np.inf)
    return replace(
        proc,
        loadings=loadings,
        loc=proc.loc + rng.normal(0.0, 0.12 * s, size=proc.loc.size) * proc.scale,
        scale=proc.scale * np.exp(rng.normal(0.0, 0.12 * s, size=proc.scale.size)),
        zero_bias=proc.zero_bias + rng.normal(0.0, 0.5 * s, size=proc.zero_bias.size),
        na_bias=na_bias,
        cat_probs=tuple(probs),
        interaction=proc.interaction * (1.0 + rng.normal(0.0, 0.5 * s, size=proc.interaction.size)),
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def sample_shard(proc: Process, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` rows of the process (columns in ``proc.names`` order)."""
    f = rng.standard_normal((n, N_FACTORS), dtype=np.float32)
    cols: dict[str, object] = {}
    signal = np.linalg.norm(proc.loadings, axis=1)
    for j in range(N_NUMERIC):
        z = f @ proc.loadings[j].astype(np.float32) + rng.standard_normal(n, dtype=np.float32) * np.float32(
            np.sqrt(max(1e-6, 1.0 - signal[j] ** 2)))
        z = z.astype(np.float64)
        kind = proc.kind[j]
        loc, sc = proc.loc[j], proc.scale[j]
        if kind == "gauss":
            x = np.round(loc * 10 + sc * 10 * z, 3)
        elif kind == "lognormal":
            x = np.round(np.exp(loc + sc * z), 2)
        elif kind == "count":
            x = np.floor(np.exp(0.4 * loc + 0.6 * sc * z)).clip(0, 30)
        elif kind == "zero_inflated":
            zero = rng.random(n) < _sigmoid(proc.zero_bias[j] + 0.8 * f[:, (j + 3) % N_FACTORS])
            x = np.where(zero, 0.0, np.round(np.exp(loc + sc * z), 1))
        else:  # percent
            x = np.round(100.0 * _sigmoid(0.5 * loc + 1.5 * sc * z), 1)
        if np.isfinite(proc.na_bias[j]):
            x[rng.random(n) < _sigmoid(proc.na_bias[j] + f[:, proc.na_factor[j]])] = np.nan
        cols[f"num_{j:02d}"] = x
    for c in range(N_CATEGORICAL):
        j = N_NUMERIC + c
        score = f @ proc.loadings[j].astype(np.float32) + rng.standard_normal(n, dtype=np.float32) * np.float32(
            np.sqrt(max(1e-6, 1.0 - signal[j] ** 2)))
        a, b = proc.inter_pair[c]
        w = proc.interaction[c]
        score = (score.astype(np.float64) + w * f[:, a] * f[:, b]) / np.sqrt(1.0 + w * w)
        cuts = ndtri(np.cumsum(proc.cat_probs[c])[:-1])
        idx = np.searchsorted(cuts, score)
        if np.isfinite(proc.na_bias[j]):
            idx[rng.random(n) < _sigmoid(proc.na_bias[j] + f[:, proc.na_factor[j]])] = -1
        cols[f"cat_{c:02d}"] = pd.Categorical.from_codes(idx, categories=list(proc.cat_labels[c]))
    return pd.DataFrame({name: cols[name] for name in proc.names})


def shard_sizes(n_rows: int, shard_rows: int = SHARD_ROWS) -> list[int]:
    full, rest = divmod(n_rows, shard_rows)
    return [shard_rows] * full + ([rest] if rest else [])


def shards(proc: Process, n_rows: int, role: str, seed: int = 0, shard_rows: int = SHARD_ROWS):
    """Yield the table of ``n_rows`` rows shard by shard (prefix-stable across sizes)."""
    for k, size in enumerate(shard_sizes(n_rows, shard_rows)):
        yield sample_shard(proc, size, np.random.default_rng([seed, ROLES[role], k]))


def table(proc: Process, n_rows: int, role: str, seed: int = 0) -> pd.DataFrame:
    """The whole table in memory (target-sized tables only)."""
    return pd.concat(list(shards(proc, n_rows, role, seed)), ignore_index=True)


__all__ = ["Process", "perturbed", "sample_shard", "shard_sizes", "shards", "source_process", "table"]
