"""Fixtures shared by the selection tests in tests/select/ and tests/select/flat/."""

from __future__ import annotations

import numpy as np
import pytest

from synth_core.select import _features as features
from synth_core.select import _mi as mi
from tests.select.codes import N_BINS, latent_codes, uniform_codes


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(123)
    train = latent_codes(1500, rng)
    other = uniform_codes(3000, rng)
    pool = np.ascontiguousarray(np.concatenate([train, other]))
    pairs = mi.top_pairs(train, N_BINS).pairs
    triples = mi.top_triples(train, N_BINS).triples
    fs = features.build_feature_set(N_BINS, pairs, triples)
    return {"train": train, "pool": pool, "fs": fs, "pairs": pairs}
