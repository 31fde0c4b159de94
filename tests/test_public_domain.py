"""The public discretisation shared by the DP baselines and the project's DP model."""

import numpy as np
import pandas as pd
import pytest

from benchmarks._public_domain import BINS, public_domain


@pytest.fixture
def frame():
    rng = np.random.default_rng(3)
    n = 500
    gain = np.where(rng.random(n) < 0.7, 0, rng.integers(1, 50_000, n))
    gain[:2] = [0, 50_000]
    return pd.DataFrame({
        "age": rng.integers(17, 91, n),  # 74 values: exact
        "color": pd.Series(rng.choice(["red", "green", "blue"], n), dtype="str"),
        "gain": gain.astype(np.int64),  # wide integer range: 0 exact + 63 bins
        "ratio": rng.normal(size=n),  # float: lower end + 63 bins
    })


def test_kinds_and_sizes(frame):
    domain = public_domain(frame)
    assert domain.columns == ("age", "color", "gain", "ratio")
    assert domain.sizes == (74, 3, 1 + BINS, 1 + BINS)
    assert [s.kind for s in domain.specs] == ["exact", "categorical", "binned", "binned"]


def test_round_trip(frame):
    domain = public_domain(frame)
    codes = domain.encode(frame)
    assert codes.dtype == np.int64 and codes.shape == (len(frame), 4)
    back = domain.decode(codes, seed=0)
    assert list(back.columns) == list(frame.columns)
    assert (back.dtypes == frame.dtypes).all()
    pd.testing.assert_series_equal(back["age"], frame["age"])  # exact integers stay exact
    pd.testing.assert_series_equal(back["color"], frame["color"])  # categories round-trip
    zero = frame["gain"] == 0
    assert (codes[zero.to_numpy(), 2] == 0).all() and (codes[~zero.to_numpy(), 2] > 0).all()
    assert (back.loc[zero, "gain"] == 0).all() and (back.loc[~zero, "gain"] > 0).all()  # lower end exact
    assert back["gain"].between(0, 50_000).all()
    assert back["ratio"].between(frame["ratio"].min(), frame["ratio"].max()).all()
    np.testing.assert_array_equal(domain.encode(back), codes)  # decoded values stay in their bins
    # binned values land near the originals: within one bin width
    width = 50_000 / BINS
    assert (back["gain"] - frame["gain"]).abs().max() <= width + 1


def test_decode_is_deterministic_per_seed(frame):
    domain = public_domain(frame)
    codes = domain.encode(frame)
    a, b, c = domain.decode(codes, seed=1), domain.decode(codes, seed=1), domain.decode(codes, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert (a["gain"] != c["gain"]).any() and (a["ratio"] != c["ratio"]).any()
    pd.testing.assert_series_equal(a["age"], c["age"])
    pd.testing.assert_series_equal(a["color"], c["color"])


def test_out_of_range_values_clip(frame):
    domain = public_domain(frame)
    outside = pd.DataFrame({"age": [5, 120], "color": ["red", "blue"], "gain": [-10, 10**7],
                            "ratio": [-1e9, 1e9]})
    codes = domain.encode(outside)
    assert codes[:, 0].tolist() == [0, 73]
    assert codes[:, 2].tolist() == [0, BINS]
    assert codes[:, 3].tolist() == [0, BINS]
    back = domain.decode(codes, seed=0)
    assert back["age"].tolist() == [17, 90] and back["gain"].iloc[0] == 0


def test_unseen_category_is_an_error(frame):
    domain = public_domain(frame)
    bad = frame.head(3).assign(color=["red", "purple", "blue"])
    with pytest.raises(ValueError, match="purple"):
        domain.encode(bad)


def test_spec_overrides_the_data(frame):
    domain = public_domain(frame, {"color": {"categories": ["blue", "green", "red", "yellow"]},
                                   "age": {"range": (0, 99)}})
    assert domain.sizes[:2] == (100, 4)
    codes = domain.encode(frame.assign(color="yellow"))
    assert (codes[:, 1] == 3).all()
    assert (domain.decode(codes, seed=0)["color"] == "yellow").all()
