"""The discretisation equals mostlyai-qa's bin_data, code for code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mostlyai.qa._accuracy import bin_data

from synth_core.errors import InputError
from synth_core.metrics._binning import NA_BIN, OTHER_BIN, Binner, numeric_breaks


def _qa_codes(reference: pd.DataFrame, other: pd.DataFrame, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    ref_bin, bins = bin_data(reference, bins=n_bins)
    other_bin, _ = bin_data(other, bins=bins)
    ref_codes = np.column_stack([ref_bin[c].cat.codes.to_numpy() for c in reference.columns])
    other_codes = np.column_stack([other_bin[c].cat.codes.to_numpy() for c in reference.columns])
    return ref_codes, other_codes


def _tables(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cats = np.array(list("abcdefghijklmnopq"))
    return pd.DataFrame(
        {
            "normal": pd.array(rng.normal(50, 20, n).round(3), dtype="Float64"),
            "zero_inflated": pd.array(np.where(rng.random(n) < 0.7, 0.0, rng.exponential(900, n).round(0)),
                                      dtype="Float64"),
            "few_values": pd.array(rng.integers(0, 6, n).astype(float), dtype="Float64"),
            "tiny_scale": pd.array(rng.random(n) * 1e-4, dtype="Float64"),
            "with_nan": pd.array(np.where(rng.random(n) < 0.2, np.nan, rng.gamma(2, 3, n)), dtype="Float64"),
            "all_nan": pd.array(np.full(n, np.nan), dtype="Float64"),
            "constant": pd.array(np.full(n, 7.0), dtype="Float64"),
            "category": pd.Series(rng.choice(cats, n, p=np.r_[np.full(8, 0.1), np.full(9, 0.2 / 9)]), dtype=object),
            "rare_categories": pd.Series(rng.choice(["x", "y", "", None, "z"], n, p=[0.5, 0.3, 0.1, 0.098, 0.002]),
                                         dtype=object),
            "dates": pd.Series(pd.to_datetime("2001-01-01")
                               + pd.to_timedelta(rng.integers(0, 4000, n), "D")).astype("datetime64[ns]"),
            "non_ascii": pd.Series(rng.choice(["Zürich", "Łódź", "東京", "São Paulo"], n), dtype=object),
        }
    )


@pytest.mark.parametrize("n_bins", [10, 30])
def test_codes_equal_qa_bin_data(n_bins):
    reference, other = _tables(1, 3000), _tables(2, 1500)
    other["normal"] = other["normal"] * 1.5 - 20  # values outside the reference range get clipped
    qa_ref, qa_other = _qa_codes(reference, other, n_bins)
    binner = Binner(n_bins=n_bins).fit(reference)
    np.testing.assert_array_equal(binner.transform(reference), qa_ref)
    np.testing.assert_array_equal(binner.transform(other), qa_other)


def test_codes_are_compact_and_labelled():
    reference = _tables(3, 2000)
    binner = Binner().fit(reference)
    codes = binner.transform(reference)
    assert codes.dtype == np.uint8 and codes.flags.c_contiguous
    for j, col in enumerate(binner.columns_):
        assert codes[:, j].max() < col.n_codes
        assert NA_BIN in col.labels
    normal = binner.columns_[binner.names.index("normal")]
    assert normal.n_codes == 11  # ten quantile bins plus (n/a)
    zero = binner.columns_[binner.names.index("zero_inflated")]
    assert zero.n_codes >= 4  # a zero-inflated column keeps its own bins for the tail
    category = binner.columns_[binner.names.index("category")]
    assert category.labels[-4:] == ("(empty)", OTHER_BIN, "_RARE_", NA_BIN)
    assert len(category.labels) == 10 + 4  # top ten categories plus the specials


def test_flooring_moves_breaks_down_like_qa():
    values = np.array([0.123456, 0.234567, 0.345678, 0.456789, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2])
    breaks = numeric_breaks(values, 10)
    # one decimal keeps the breaks distinct: all but the last are floored to it
    assert breaks[0] == 0.1 and breaks[1] == 0.2 and breaks[-1] == 1.2


def test_transform_names_missing_column():
    binner = Binner().fit(_tables(4, 200))
    with pytest.raises(InputError, match="'category'"):
        binner.transform(_tables(4, 10).drop(columns=["category"]))


@pytest.mark.parametrize("dtype", [object, "string[pyarrow]", "string[python]", "category"])
def test_string_columns_of_any_dtype_equal_qa(dtype):
    """Strings are encoded once per distinct value (a gather after pd.factorize); the codes are still
    qa's, missing values, the empty string and unseen values included."""
    rng = np.random.default_rng(5)
    words = np.array(["x", "y", "", "z", "Zürich", "w"], dtype=object)
    reference = pd.DataFrame({"c": pd.Series(rng.choice(words[:5], 2000), dtype=object)})
    other = pd.DataFrame({"c": pd.Series(rng.choice(words, 1500), dtype=object)})  # "w" is unseen: (other)
    other.loc[::7, "c"] = None
    qa_ref, qa_other = _qa_codes(reference, other, 10)
    binner = Binner(n_bins=10).fit(reference)
    np.testing.assert_array_equal(binner.transform(other.astype({"c": dtype})), qa_other)
    np.testing.assert_array_equal(binner.transform(reference.astype({"c": dtype})), qa_ref)


def test_values_whose_strings_differ_are_not_grouped():
    """An object column mixing True, 1 and "1" (equal as values, not as strings) and floats 0.0/-0.0
    keep the string-by-string path: every value gets its own string's code."""
    from synth_core.metrics._binning import _distinct_values, _encode_categorical

    mixed = pd.Series([True, 1, "1", "True", None] * 50, dtype=object)
    assert _distinct_values(mixed) is None and _distinct_values(pd.Series([0.0, -0.0])) is None
    categories = ("1", "True", "(empty)", OTHER_BIN, "(rare)", NA_BIN)
    codes = _encode_categorical(mixed, categories)
    assert list(codes[:5]) == [1, 0, 0, 1, 5]
