"""Code matrices for the selection tests (one uint8 code per cell, ``N_BINS`` bins per column)."""

from __future__ import annotations

import numpy as np

N_BINS = np.array([4, 3, 5, 4, 3, 4])


def latent_codes(n: int, rng: np.random.Generator, noise: float = 0.25) -> np.ndarray:
    """Codes with structure: a latent class drives every column, plus uniform noise."""
    z = rng.integers(0, 3, n)
    out = np.empty((n, N_BINS.size), dtype=np.uint8)
    for j, nb in enumerate(N_BINS):
        noisy = rng.random(n) < noise
        out[:, j] = np.where(noisy, rng.integers(0, nb, n), (z + j) % nb)
    return out


def uniform_codes(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.stack([rng.integers(0, nb, n) for nb in N_BINS], axis=1).astype(np.uint8)
