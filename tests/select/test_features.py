"""synth_core.select._features: the feature set's layout, weights and cells, and the code checks."""

from __future__ import annotations

import numpy as np
import pytest

from synth_core.errors import InputError
from synth_core.select import _features as features
from synth_core.select import _objective as obj
from tests.select.codes import N_BINS, uniform_codes


def test_feature_set_layout_weights_and_cells():
    fs = features.build_feature_set(N_BINS, [(2, 0), (1, 3)], [(0, 2, 5)])
    assert fs.n_features == 6 + 2 + 1
    assert fs.columns(6) == (0, 2)  # sorted within the tuple
    assert list(fs.n_cells) == [4, 3, 5, 4, 3, 4, 20, 12, 80]
    assert fs.total_cells == 23 + 20 + 12 + 80
    # phases weigh 1/3 each, features within a phase equally
    np.testing.assert_allclose(fs.weights[:6], 1 / 18)
    np.testing.assert_allclose(fs.weights[6:8], 1 / 6)
    np.testing.assert_allclose(fs.weights[8], 1 / 3)
    assert fs.weights.sum() == pytest.approx(1.0)

    codes = uniform_codes(50, np.random.default_rng(0))
    cells = features.row_cells(codes, fs)
    a, b, c = codes[:, 0].astype(int), codes[:, 2].astype(int), codes[:, 5].astype(int)
    np.testing.assert_array_equal(cells[:, 8], fs.offsets[8] + a * 5 * 4 + b * 4 + c)
    np.testing.assert_array_equal(cells[:, 7], fs.offsets[7] + codes[:, 1] * 4 + codes[:, 3])
    counts = obj.cell_counts(codes, fs)
    np.testing.assert_array_equal(counts, np.bincount(cells.ravel(), minlength=fs.total_cells))


def test_feature_set_without_triples_has_two_phases():
    fs = features.build_feature_set(N_BINS, [(0, 1)])
    np.testing.assert_allclose(fs.weights, [1 / 12] * 6 + [1 / 2])


@pytest.mark.parametrize(
    "pairs,triples",
    [([(0, 0)], []), ([(0, 1), (1, 0)], []), ([(0, 6)], []), ([], [(1, 2, 2)])],
)
def test_feature_set_rejects_bad_features(pairs, triples):
    with pytest.raises(InputError):
        features.build_feature_set(N_BINS, pairs, triples)


def test_codes_out_of_range_rejected():
    fs = features.build_feature_set(N_BINS)
    codes = uniform_codes(10, np.random.default_rng(0))
    codes[3, 1] = 3  # column 1 has 3 bins
    with pytest.raises(InputError, match="column 1"):
        obj.cell_counts(codes, fs)
    with pytest.raises(InputError, match="uint8"):
        obj.cell_counts(codes.astype(np.int64), fs)
