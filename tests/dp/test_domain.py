"""The DP model's discrete domain: codes that round-trip, and a private domain that never releases a
value held by one record."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synth_core.dp import Domain, declared_domain, private_domain
from synth_core.dp._domain import NUMERIC_BINS, RARE, grid_edges


def _table(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    gain = np.where(rng.random(n) < 0.9, 0, rng.integers(1, 100_000, n))
    return pd.DataFrame({
        "age": rng.integers(17, 91, n),
        "gain": gain.astype(np.int64),
        "score": rng.normal(50.0, 10.0, n),
        "city": pd.Categorical(rng.choice(["Basel", "Bern", "Chur"], n, p=[0.5, 0.3, 0.2])),
        "day": pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
    })


def test_declared_codes_round_trip_exact_values_and_keep_the_mass_at_the_lower_end():
    frame = _table()
    domain = declared_domain(frame)
    codes = domain.encode(frame)
    assert codes.shape == (len(frame), 5) and (codes >= 0).all() and (codes < np.array(domain.sizes)).all()
    back = domain.decode(codes, seed=3)
    assert (back["age"].to_numpy() == frame["age"].to_numpy()).all()  # span <= 100: one code per year
    assert ((back["gain"] == 0) == (frame["gain"] == 0)).all()  # the lower end is a code of its own
    assert domain.columns[1].size == NUMERIC_BINS + 1
    assert (back["city"].astype(str) == frame["city"].astype(str)).all()
    # binned values come back inside their bin, drawn by the seed
    width = (frame["score"].max() - frame["score"].min()) / NUMERIC_BINS
    assert np.abs(back["score"] - frame["score"]).max() <= width + 1e-9
    assert back.equals(domain.decode(codes, seed=3)) and not back["score"].equals(domain.decode(codes, seed=4)["score"])
    assert pd.api.types.is_datetime64_any_dtype(back["day"])
    assert Domain.from_dict(domain.to_dict()) == domain


def test_values_outside_the_range_go_to_the_end_codes_and_unknown_categories_to_the_rare_code():
    domain = declared_domain(_table())
    other = pd.DataFrame({"age": [5, 200], "gain": [-10, 10**9], "score": [-1e9, 1e9], "city": ["Basel", "Genf"],
                          "day": pd.to_datetime(["1990-01-01", "2090-01-01"])})
    codes = domain.encode(other)
    assert codes[:, 0].tolist() == [0, domain.columns[0].size - 1]
    assert codes[:, 1].tolist() == [0, NUMERIC_BINS]
    back = domain.decode(codes, seed=0)
    assert back["city"].tolist() == ["Basel", RARE]


def test_missing_values_get_a_code_of_their_own():
    frame = pd.DataFrame({"x": [1.5, np.nan, 3.0, np.nan], "c": ["a", None, "b", "a"]})
    domain = declared_domain(frame)
    back = domain.decode(domain.encode(frame), seed=0)
    assert back["x"].isna().tolist() == [False, True, False, True]
    assert back["c"].isna().tolist() == [False, True, False, False]


def test_the_private_domain_releases_frequent_values_and_never_a_single_records():
    frame = _table(n=4000)
    # one record with a category of its own and an extreme value: its presence must not show
    leaky = pd.concat([frame, pd.DataFrame({"age": [40], "gain": [0], "score": [1e7], "city": ["Zürich"],
                                            "day": pd.to_datetime(["2024-06-01"])})], ignore_index=True)
    leaky["city"] = leaky["city"].astype("category")
    domain, release = private_domain(leaky, rho=0.05, delta=1e-6, rng=np.random.default_rng(0))
    city = domain.columns[3]
    assert set(city.categories) == {"Basel", "Bern", "Chur"}  # Zürich (1 record) stays out
    score = domain.columns[2]
    assert score.hi <= 100.0  # the lone 1e7 does not stretch the range
    age = domain.columns[0]
    assert age.lo <= 17 and age.hi >= 90 and age.exact  # from the fixed grid: [10, 100]
    assert release.threshold > 1 + 4 * release.sigma  # δ = 1e-6 over 5 columns
    # the grid is fixed: 0 and ±{1, 2, 5}·10^k
    assert 0.0 in grid_edges() and 50.0 in grid_edges() and 100.0 in grid_edges()


def test_private_domain_is_refused_without_budget():
    with pytest.raises(Exception, match="rho > 0"):
        private_domain(_table(n=10), rho=0.0, delta=1e-6, rng=np.random.default_rng(0))
