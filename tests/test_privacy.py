"""Privacy metrics on real data (census, prize sequential) and on a frame checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from synth_core.errors import InputError
from synth_core.io import read_table
from synth_core.privacy import PrivacyResult, privacy_metrics, privacy_passes

# Coincidental exact copies scale with the size of the table they are looked up in: the full
# census training table is twice the holdout half used here, and the prize data are discrete.
# A clean synthetic set therefore shows exact_copy_training a few 1e-4 above exact_copy_holdout.
COPY_TOLERANCE = 0.001


@pytest.fixture(scope="module")
def census(census_paths):
    training = read_table(census_paths["training"])
    holdout = read_table(census_paths["holdout"])
    # Half A plays a synthetic set that never saw training, half B the holdout.
    return {
        "training": training,
        "half_a": holdout.iloc[::2].reset_index(drop=True),
        "half_b": holdout.iloc[1::2].reset_index(drop=True),
    }


@pytest.fixture(scope="module")
def prize(prize_seq_paths):
    return {k: read_table(prize_seq_paths[k]) for k in ("training", "holdout", "synthetic")}


@pytest.fixture(scope="module")
def census_clean(census) -> PrivacyResult:
    return privacy_metrics(census["training"], census["half_b"], census["half_a"])


def test_census_unseen_rows_pass(census_clean):
    r = census_clean
    assert r.n == 10_000 and r.rows == {"training": 10_000, "holdout": 10_000, "synthetic": 10_000}
    assert abs(r.dcr_share - 0.50) <= 0.02
    assert abs(r.dcr_training - r.dcr_holdout) < 0.02
    assert 0.9 < r.nndr_ratio < 1.1
    assert r.exact_copy_training < 0.002 and r.exact_copy_holdout < 0.002
    assert r.exact_copy_training_sequences is None and r.exact_copy_holdout_sequences is None
    assert privacy_passes(r, exact_copy_tolerance=COPY_TOLERANCE) == (True, [])


def test_census_default_tolerance_flags_coincidental_copies(census_clean):
    # Documents the strict default: the 24 k-row training table holds more coincidental
    # duplicates of half A than the 12 k-row half B does, so tolerance 0 fails on that alone.
    passed, reasons = privacy_passes(census_clean)
    assert census_clean.exact_copy_training > census_clean.exact_copy_holdout
    assert not passed and len(reasons) == 1 and reasons[0].startswith("exact_copy_training")


@pytest.mark.parametrize("share, min_dcr_share", [(0.10, 0.53), (0.20, 0.56)])
def test_census_copied_training_rows_fail(census, share, min_dcr_share):
    # References of equal size, used whole (sample_size = their size), so that every copied
    # training row is in the training reference and sits at distance 0 from it.
    holdout = census["half_b"]
    training = census["training"].iloc[: len(holdout)]
    rng = np.random.default_rng(7)
    n_copy = round(share * len(holdout))
    copies = training.iloc[rng.choice(len(training), n_copy, replace=False)]
    half_a = census["half_a"]
    unseen = half_a.iloc[rng.choice(len(half_a), len(holdout) - n_copy, replace=False)]
    synthetic = pd.concat([copies, unseen], ignore_index=True)

    r = privacy_metrics(training, holdout, synthetic, sample_size=len(holdout))
    assert r.n == r.n_synthetic == len(holdout)
    assert r.dcr_share >= min_dcr_share
    assert r.dcr_training_p5 == 0.0 and r.dcr_holdout_p5 > 0.0
    assert r.exact_copy_training >= share and r.exact_copy_holdout < 0.002
    passed, reasons = privacy_passes(r, exact_copy_tolerance=COPY_TOLERANCE)
    assert not passed
    assert any(line.startswith("dcr_share") and "0.52" in line for line in reasons)
    assert any(line.startswith("exact_copy_training") for line in reasons)


def test_census_deterministic(census):
    args = (census["training"], census["half_b"], census["half_a"])
    first = privacy_metrics(*args, sample_size=3_000, seed=3).to_dict()
    assert privacy_metrics(*args, sample_size=3_000, seed=3).to_dict() == first
    assert privacy_metrics(*args, sample_size=3_000, seed=4).to_dict() != first


def test_census_category_labels_do_not_matter(census):
    # Relabel every categorical column so that the sort order of its values is reversed, make
    # one a pandas categorical with shuffled categories, and reverse the row order (so codes
    # given in order of appearance change too). The tables are used whole (sample_size = their
    # size), so the same rows enter. A 0/1 mismatch does not care about any of it; an encoding
    # that let code order into the distance would.
    frames = [census[k].iloc[:3_000] for k in ("training", "half_b", "half_a")]
    text_cols = [c for c in frames[0].columns if not pd.api.types.is_numeric_dtype(frames[0][c])]
    relabelled = [df.iloc[::-1].copy() for df in frames]
    for col in text_cols:
        values = sorted(set().union(*(df[col].dropna().unique() for df in frames)))
        mapping = {v: f"v{len(values) - i:04d}" for i, v in enumerate(values)}
        for df in relabelled:
            df[col] = df[col].map(mapping)
    occupations = sorted(set().union(*(df["occupation"].dropna().unique() for df in relabelled)))
    cats = np.random.default_rng(1).permutation(occupations)
    for df in relabelled:
        df["occupation"] = pd.Categorical(df["occupation"], categories=cats)

    before = privacy_metrics(*frames, sample_size=3_000).to_dict()
    after = privacy_metrics(*relabelled, sample_size=3_000).to_dict()
    assert before.pop("rows") == after.pop("rows")
    # Row order changes only the order of summation over synthetic rows.
    assert after == pytest.approx(before, abs=2e-6)
    assert before["dcr_share"] == after["dcr_share"]


def test_distances_by_hand():
    # x: numeric with NaN; c: categorical with NaN. The reference numbers 0..5 (training 0, 1,
    # 4; holdout 2, 3, 5) have mid-rank CDF k/5, so x = 1.5 maps to 0.3 and x = 10 clamps to 1.
    training = pd.DataFrame({"x": [0.0, 1.0, np.nan, 4.0], "c": ["a", "b", "a", "c"]})
    holdout = pd.DataFrame({"x": [2.0, 3.0, np.nan, 5.0], "c": ["a", None, "b", "c"]})
    synthetic = pd.DataFrame({"x": [np.nan, 1.5, 10.0, np.nan], "c": ["a", None, "b", None]})
    # Closest training / holdout row of each synthetic row:
    #   (NaN, a):  training (NaN, a) 0            | holdout (2, a) or (NaN, b): 1
    #   (0.3, -):  training (0.2, b) √(0.01 + 1)  | holdout (0.6, -): 0.3
    #   (1.0, b):  training (0.2, b) 0.8          | holdout (1.0, c) or (NaN, b): 1
    #   (NaN, -):  training (NaN, a) 1            | holdout (NaN, b) or (0.6, -): 1 (a tie)
    r = privacy_metrics(training, holdout, synthetic)
    assert r.n == 4 and r.n_synthetic == 4
    assert r.dcr_share == pytest.approx((1 + 0 + 1 + 0.5) / 4, abs=1e-12)
    assert r.dcr_training == pytest.approx((0 + math.sqrt(1.01) + 0.8 + 1) / 4, abs=1e-12)
    assert r.dcr_holdout == pytest.approx((1 + 0.3 + 1 + 1) / 4, abs=1e-12)
    # Only (NaN, a) is an exact copy, and only of training: NaN equals NaN.
    assert r.exact_copy_training == 0.25 and r.exact_copy_holdout == 0.0


def test_missing_column_is_named():
    frame = pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]})
    with pytest.raises(InputError, match="'c' missing from synthetic"):
        privacy_metrics(frame, frame, frame[["x"]])
    with pytest.raises(InputError, match="'g' missing from training"):
        privacy_metrics(frame, frame, frame, group_key="g")


def test_prize_winner_passes(prize):
    r = privacy_metrics(
        prize["training"], prize["holdout"], prize["synthetic"], group_key="group_id"
    )
    assert r.n == r.n_synthetic == 2_000
    assert 14_000 < r.rows["training"] < 17_000  # about 7.7 rows per group
    assert abs(r.dcr_share - 0.50) <= 0.02
    assert 0.9 < r.nndr_ratio < 1.1
    assert r.exact_copy_training_sequences == 0.0 and r.exact_copy_holdout_sequences == 0.0
    # Discrete values: ~0.4 % of rows coincide with some row of either table, slightly more
    # often with training, which the strict default tolerance reports.
    assert 0.003 < r.exact_copy_holdout <= r.exact_copy_training < 0.005
    assert privacy_passes(r, exact_copy_tolerance=COPY_TOLERANCE) == (True, [])
    passed, reasons = privacy_passes(r)
    assert not passed and len(reasons) == 1 and reasons[0].startswith("exact_copy_training")


def test_prize_copied_training_groups_fail(prize):
    training = prize["training"]
    keep = training["group_id"].drop_duplicates().iloc[:3_000]
    synthetic = training[training["group_id"].isin(keep)].copy()
    synthetic["group_id"] = "syn-" + synthetic["group_id"]
    r = privacy_metrics(
        training, prize["holdout"], synthetic, group_key="group_id", sample_size=500
    )
    assert r.exact_copy_training_sequences == 1.0 and r.exact_copy_holdout_sequences == 0.0
    assert r.exact_copy_training == 1.0 and r.exact_copy_holdout < 0.01
    passed, reasons = privacy_passes(r, exact_copy_tolerance=COPY_TOLERANCE)
    assert not passed and any(line.startswith("exact_copy_training") for line in reasons)


def test_column_types_are_compared_by_value():
    # Same rows as training, but the synthetic side stores dates as text, a nullable integer as
    # float and a bool column as object: still exact copies, at distance 0. The holdout's
    # dates are a day later, which the datetime feature (int64 ns, rank-transformed) sees.
    training = pd.DataFrame(
        {
            "when": pd.to_datetime(["2020-01-01", "2020-01-02", None, "2020-01-04"]),
            "mixed": [1, "x", None, 2.5],
            "flag": [True, False, None, True],
            "count": pd.array([1, 2, None, 4], dtype="Int64"),
        }
    )
    holdout = training.assign(when=training["when"] + pd.Timedelta("1D"))
    synthetic = training.assign(
        when=training["when"].dt.strftime("%Y-%m-%d"),
        count=training["count"].astype("float64"),
        flag=training["flag"].astype(object),
    )
    r = privacy_metrics(training, holdout, synthetic)
    assert r.exact_copy_training == 1.0 and r.dcr_training == 0.0
    # Rows 1, 2, 4 differ from every holdout row in the date; row 3 (NaT) is a copy of both.
    assert r.exact_copy_holdout == 0.25
    assert r.dcr_share == pytest.approx((3 + 0.5) / 4)
