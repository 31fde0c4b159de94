"""Small training and pool tables for the edge tests of the CLI and the writers."""

from __future__ import annotations

import numpy as np
import pandas as pd


def edge_tables(n_train: int = 300, n_pool: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def draw(n: int, shift: float) -> pd.DataFrame:
        age = rng.integers(18, 80, n)
        return pd.DataFrame({
            "age": age,
            "job": np.where(age + rng.normal(0, 10, n) > 45 + shift, "senior", "junior"),
            "hours": np.round(rng.normal(40 + shift, 8, n), 1),
        })

    return draw(n_train, 0.0), draw(n_pool, 5.0)
