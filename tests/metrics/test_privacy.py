"""Privacy metrics and the membership audit on real data (census, prize sequential) and on
frames checked by hand; the gate's privacy rule with its teeth on both sides."""

from __future__ import annotations

import math

import numba
import numpy as np
import pandas as pd
import pytest

from synth_core.errors import InputError
from synth_core.io import read_table
from synth_core.metrics import GateSettings, near_copies, privacy_gate
from synth_core.metrics._privacy import PrivacyResult, privacy_metrics, privacy_passes, wilson_interval
from synth_core.metrics._units import id_like_columns

KEY = "group_id"


@pytest.fixture(scope="module")
def census(census_paths):
    training = read_table(census_paths["training"])
    holdout = read_table(census_paths["holdout"])
    # Random halves: the files' row order is not random, so a split by position is not fair.
    rng = np.random.default_rng(0)
    order = rng.permutation(len(holdout))
    half = len(holdout) // 2
    return {
        "training": training,
        # half A plays a synthetic set that never saw training, half B the holdout
        "half_a": holdout.iloc[np.sort(order[:half])].reset_index(drop=True),
        "half_b": holdout.iloc[np.sort(order[half:])].reset_index(drop=True),
        # a training half as large as half A: 10 % near-copies then touch 10 % of training
        "training_half": training.iloc[np.sort(rng.permutation(len(training))[:half])].reset_index(drop=True),
    }


@pytest.fixture(scope="module")
def census_clean(census) -> PrivacyResult:
    return privacy_metrics(census["training"], census["half_b"], census["half_a"])


@pytest.fixture(scope="module")
def census_teeth(census) -> dict[str, PrivacyResult]:
    """The same training half, holdout half B, and half A as synthetic: as it is, and with 10 %
    of its rows replaced by near-copies of training rows."""
    trn, hol, syn = census["training_half"], census["half_b"], census["half_a"]
    return {
        "fair": privacy_metrics(trn, hol, syn, seed=1),
        "near_copies": privacy_metrics(trn, hol, near_copies(syn, trn, 0.10, seed=0), seed=1),
        # the other direction: a tenth of the table hugs unseen records, so training records
        # sit farther from it than unseen ones do (what a filter avoiding training leaves)
        "avoids_training": privacy_metrics(trn, hol, near_copies(syn, hol, 0.10, seed=0), seed=1),
    }


def test_census_unseen_rows_pass(census_clean):
    r = census_clean
    # every unit of the smaller reference, the rest of training subsampled to the same size
    assert r.n == 12_211 and r.n_synthetic == 12_210
    assert r.rows == {"training": 12_211, "holdout": 12_211, "synthetic": 12_210}
    assert abs(r.dcr_share - 0.50) <= 0.02
    low, high = r.dcr_share_ci
    assert low < r.dcr_share < high and low < 0.5 < high
    assert high - low == pytest.approx(2 * 1.96 * 0.5 / math.sqrt(r.n_synthetic), abs=2e-4)
    assert abs(r.dcr_training - r.dcr_holdout) < 0.02
    assert 0.9 < r.nndr_ratio < 1.1
    assert r.exact_copy_training < 0.002 and r.exact_copy_holdout < 0.002
    assert r.exact_copy_training_sequences is None and r.exact_copy_holdout_sequences is None
    assert abs(r.membership_auc - 0.50) <= 0.02
    assert r.membership_auc_ci[0] < 0.5 < r.membership_auc_ci[1]
    assert set(r.membership_auc_by_attack) == {"distance", "density_ratio"}
    assert r.membership_auc == max(r.membership_auc_by_attack.values())
    assert r.membership_n == 2 * 6_105  # two folds, each half of the holdout half
    assert r.excluded_columns == {}
    assert privacy_gate(r).passed and privacy_passes(r) == (True, [])


def test_census_coincidental_copies_are_no_evidence(census_clean):
    # The 24 k-row training table holds more coincidental duplicates of half A than the 12 k-row
    # half B does (the old rule needed a tolerance of 0.001 for them). Size-matched to half B,
    # training holds no more of them, and the interval says so without any tolerance.
    r = census_clean
    assert r.exact_copy_training > r.exact_copy_holdout
    assert r.exact_copy_holdout_matched == r.exact_copy_holdout  # the smaller side is not rescaled
    assert r.exact_copy_training_matched < r.exact_copy_training
    assert r.exact_copy_excess == pytest.approx(r.exact_copy_training_matched - r.exact_copy_holdout_matched)
    low, high = r.exact_copy_excess_ci
    assert low < r.exact_copy_excess < high and low < 0.0 < high and high - low < 0.002
    assert privacy_passes(r, exact_copy_tolerance=0.0) == (True, [])


def test_membership_audit_teeth_fair_table_passes(census_teeth):
    r = census_teeth["fair"]
    assert abs(r.membership_auc - 0.50) <= 0.02
    assert r.membership_auc_ci[0] <= GateSettings().max_membership_auc
    assert abs(r.dcr_share - 0.50) <= 0.02
    assert privacy_gate(r).passed


def test_two_sided_audit_costs_a_fair_table_nothing(census_teeth):
    r = census_teeth["fair"]
    assert abs(r.membership_auc_two_sided - 0.5) <= 0.02
    assert r.membership_auc_two_sided_ci[0] <= GateSettings().max_membership_auc
    assert r.membership_direction in ("closer", "farther")
    assert set(r.membership_auc_ci_by_attack) == set(r.membership_tpr_at_fpr) == {"distance", "density_ratio"}
    for rates in r.membership_tpr_at_fpr.values():
        # with ~6,000 non-members a fold, both rates can be placed; a blind attacker gets TPR ≈ FPR
        assert rates["0.01"] <= 0.03 and rates["0.001"] <= 0.01


def test_two_sided_audit_catches_a_table_that_avoids_training(census_teeth):
    fair, away = census_teeth["fair"], census_teeth["avoids_training"]
    # the one-sided audit reads this table as safer than fair ...
    assert away.membership_auc_by_attack["distance"] <= 0.47
    assert away.membership_auc_ci[0] < GateSettings().max_membership_auc
    # ... the two-sided one flips the score and sees members
    assert away.membership_direction == "farther"
    assert away.membership_auc_two_sided >= 0.53 > fair.membership_auc_two_sided + 0.01
    assert away.membership_auc_two_sided_ci[0] > GateSettings().max_membership_auc
    assert away.dcr_share <= 0.46 and away.dcr_share_ci[1] < 0.5
    verdict = privacy_gate(away)
    assert not verdict.passed
    assert any(line.startswith("membership_auc_two_sided") and "farther from" in line for line in verdict.reasons)
    assert any(line.startswith("dcr_share") and "farther from training" in line for line in verdict.reasons)


def test_inference_risks_against_a_control_set(census_teeth, census):
    fair, near = census_teeth["fair"], census_teeth["near_copies"]
    for name in ("attribute_inference_risk", "linkability_risk", "singling_out_risk"):
        low, high = getattr(fair, f"{name}_ci")
        assert low <= 0.0 <= high, (name, low, high)  # nothing leaks: members no easier than controls
    # 10 % near-copies of training rows: a record's two halves lead to the same synthetic unit
    assert near.linkability_risk_ci[0] > 0.01 > fair.linkability_risk
    assert near.attribute_inference_risk > fair.attribute_inference_risk
    assert fair.attribute_inference_worst is not None
    copied = census["half_a"].copy()
    copied.iloc[:2_000] = census["training_half"].iloc[:2_000].to_numpy()
    leaky = privacy_metrics(census["training_half"], census["half_b"], copied, seed=1)
    assert leaky.attribute_inference_risk_ci[0] > 0 and leaky.linkability_risk_ci[0] > 0.05
    # copies hand the attacker descriptions that fit their training record alone
    assert leaky.singling_out_risk_ci[0] > 0.01 and leaky.singling_out_risk > fair.singling_out_risk + 0.02


def test_gate_mirror_rules_by_hand(census_clean):
    base = census_clean.to_dict()
    near_half = {**base, "dcr_share": 0.47, "dcr_share_ci": [0.45, 0.49]}
    assert any("1 − max_dcr_share" in r for r in privacy_gate(near_half).reasons)
    assert privacy_gate({**base, "dcr_share": 0.47, "dcr_share_ci": [0.40, 0.54]}).passed  # interval covers 0.5
    assert privacy_gate({**base, "dcr_share": 0.485, "dcr_share_ci": [0.48, 0.49]}).passed  # within 0.48-0.52
    # the copy rule is one-sided on purpose (its module docstring): a deficit alone does not fail
    assert privacy_gate({**base, "exact_copy_excess": -0.03, "exact_copy_excess_ci": [-0.05, -0.01]}).passed


def test_membership_audit_teeth_near_copies_fail(census_teeth):
    fair, leaky = census_teeth["fair"], census_teeth["near_copies"]
    # A tenth of the members has a near-copy in the synthetic table: both attacks see it.
    for attack in ("distance", "density_ratio"):
        assert leaky.membership_auc_by_attack[attack] >= fair.membership_auc_by_attack[attack] + 0.03
    assert leaky.membership_auc >= 0.53
    assert leaky.membership_auc_ci[0] > GateSettings().max_membership_auc + 0.01
    # near-copies are no exact copies: only distances and the audit catch them
    assert leaky.exact_copy_training < 0.01
    verdict = privacy_gate(leaky)
    assert not verdict.passed
    assert any(line.startswith("membership_auc") and f"max_membership_auc {GateSettings().max_membership_auc}" in line
               for line in verdict.reasons)
    assert leaky.membership_direction == "closer" and "closer to" in " ".join(verdict.reasons)
    # a tenth of the members has a near-copy: the attack singles many out at a 1 % false-positive rate
    best = leaky.membership_attack_two_sided
    assert leaky.membership_tpr_at_fpr[best]["0.01"] >= fair.membership_tpr_at_fpr[best]["0.01"] + 0.02
    assert any(line.startswith("dcr_share") for line in verdict.reasons)
    assert not any(line.startswith("exact_copy") for line in verdict.reasons)


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

    r = privacy_metrics(training, holdout, synthetic, sample_size=len(holdout), membership=False)
    assert r.n == r.n_synthetic == len(holdout)
    assert r.membership_auc is None and r.membership_auc_ci is None
    assert r.dcr_share >= min_dcr_share and r.dcr_share_ci[0] > 0.52
    assert r.dcr_training_p5 == 0.0 and r.dcr_holdout_p5 > 0.0
    assert r.exact_copy_training >= share and r.exact_copy_holdout < 0.002
    passed, reasons = privacy_passes(r)
    assert not passed
    assert any(line.startswith("dcr_share") and "0.52" in line for line in reasons)
    assert any(line.startswith("exact_copy_training") for line in reasons)


def test_census_deterministic_for_any_thread_count(census):
    args = (census["training"].iloc[:6_000], census["half_b"].iloc[:6_000], census["half_a"].iloc[:6_000])
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = privacy_metrics(*args, sample_size=3_000, seed=3).to_dict()
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = privacy_metrics(*args, sample_size=3_000, seed=3).to_dict()
    finally:
        numba.set_num_threads(threads)
    assert one == two
    other = privacy_metrics(*args, sample_size=3_000, seed=4).to_dict()
    assert other["dcr_share"] != one["dcr_share"] and other["membership_auc"] != one["membership_auc"]


def test_census_category_labels_do_not_matter(census):
    # Relabel every categorical column so that the sort order of its values is reversed, make
    # one a pandas categorical with shuffled categories, and reverse the row order (so codes
    # given in order of appearance change too). The tables are used whole (sample_size = their
    # size), so the same rows enter the distances. A 0/1 mismatch does not care about any of it;
    # an encoding that let code order into the distance would.
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

    before = privacy_metrics(*frames, sample_size=3_000, membership=False).to_dict()
    after = privacy_metrics(*relabelled, sample_size=3_000, membership=False).to_dict()
    floats = [k for k, v in before.items() if isinstance(v, float)]
    assert {k: v for k, v in after.items() if k not in floats} == {k: v for k, v in before.items() if k not in floats}
    # Row order changes only the order of summation over synthetic rows.
    assert {k: after[k] for k in floats} == pytest.approx({k: before[k] for k in floats}, abs=2e-6)
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
    assert r.dcr_share_ci == pytest.approx(wilson_interval(0.625, 4))
    assert r.dcr_training == pytest.approx((0 + math.sqrt(1.01) + 0.8 + 1) / 4, abs=1e-12)
    assert r.dcr_holdout == pytest.approx((1 + 0.3 + 1 + 1) / 4, abs=1e-12)
    # Only (NaN, a) is an exact copy, and only of training: NaN equals NaN.
    assert r.exact_copy_training == 0.25 and r.exact_copy_holdout == 0.0


def test_wilson_interval_by_hand():
    # n = 100, share 0.5, z = 1.96: centre 0.5, half-width 1.96 · √(0.0025 + 0.00009604) / 1.038416
    low, high = wilson_interval(0.5, 100)
    half = 1.959963984540054 * math.sqrt(0.25 / 100 + 1.959963984540054**2 / 40_000) / (1 + 1.959963984540054**2 / 100)
    assert (low, high) == pytest.approx((0.5 - half, 0.5 + half), abs=1e-12)
    assert wilson_interval(0.0, 10)[0] == pytest.approx(0.0, abs=1e-15)
    assert wilson_interval(1.0, 10)[1] == pytest.approx(1.0, abs=1e-15)


def test_missing_column_is_named():
    frame = pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]})
    with pytest.raises(InputError, match="'c' missing from synthetic"):
        privacy_metrics(frame, frame, frame[["x"]])
    with pytest.raises(InputError, match="'g' missing from training"):
        privacy_metrics(frame, frame, frame, group_key="g")
    with pytest.raises(InputError, match="column 'nope' to drop is not in training"):
        privacy_metrics(frame, frame, frame, drop=["nope"])


def test_identifier_columns_never_hide_copies(census):
    # Synthetic = training rows under fresh ids: the ids differ everywhere, the rows are copies.
    training = census["training"].iloc[:4_000].assign(
        customer=np.arange(4_000) * 7 + 3, code=[f"C{i:05d}" for i in range(4_000)]
    )
    holdout = census["half_b"].iloc[:4_000].assign(customer=np.arange(4_000) + 10**6, code="H")
    synthetic = training.iloc[:2_000].assign(customer=np.arange(2_000) + 10**7, code=[f"S{i}" for i in range(2_000)])
    assert id_like_columns(training) == {"customer": "unique per row in training", "code": "unique per row in training"}

    r = privacy_metrics(training, holdout, synthetic, membership=False)
    assert r.excluded_columns == {"customer": "unique per row in training", "code": "unique per row in training"}
    assert r.exact_copy_training == 1.0 and r.dcr_training == 0.0
    blind = privacy_metrics(training, holdout, synthetic, detect_ids=False, membership=False)
    assert blind.exact_copy_training == 0.0  # what the ids used to hide
    dropped = privacy_metrics(training, holdout, synthetic, drop=["customer"], membership=False)
    assert dropped.excluded_columns == {"customer": "dropped", "code": "unique per row in training"}
    assert not privacy_gate(r).passed


def test_identifier_detection_leaves_measurements_alone():
    n = 200
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "weight": rng.normal(size=n),  # float: a measurement even when all values differ
            "when": pd.date_range("2020-01-01", periods=n, freq="h"),
            "flag": rng.integers(0, 2, n).astype(bool),
            "small": rng.integers(0, 50, n),  # repeats
            "gappy": pd.array(list(range(n - 1)) + [None], dtype="Int64"),  # has a missing value
        }
    )
    assert id_like_columns(frame) == {}
    assert id_like_columns(frame.iloc[:10].assign(i=range(10))) == {}  # too few rows to tell


@pytest.fixture(scope="module")
def prize(prize_seq_paths):
    return {k: read_table(prize_seq_paths[k]) for k in ("training", "holdout", "synthetic")}


def test_prize_winner_passes_on_all_groups(prize):
    r = privacy_metrics(prize["training"], prize["holdout"], prize["synthetic"], group_key=KEY)
    # every group on every side: one vector per group, 20,000 per reference
    assert r.n == r.n_synthetic == 20_000
    assert r.rows == {"training": 154_456, "holdout": 154_433, "synthetic": 154_450}
    low, high = r.dcr_share_ci
    assert high - low <= 0.02  # half-width ≤ 0.01
    assert 0.50 <= r.dcr_share <= 0.52 and low < r.dcr_share < high
    assert 0.9 < r.nndr_ratio < 1.1
    assert r.exact_copy_training_sequences == 0.0 and r.exact_copy_holdout_sequences == 0.0
    assert 0.003 < r.exact_copy_holdout <= r.exact_copy_training < 0.005
    # equal sizes: nothing to rescale; the rows' interval comes from re-splitting whole sequences
    assert r.exact_copy_training_matched == r.exact_copy_training
    assert (r.exact_copy_excess_ci[0] < r.exact_copy_excess < r.exact_copy_excess_ci[1]
            and r.exact_copy_excess_ci[0] <= 0)
    assert r.exact_copy_excess_sequences == 0.0 and r.exact_copy_excess_ci_sequences == (0.0, 0.0)
    # all 20,000 training groups are members, all holdout groups non-members (two folds)
    assert r.membership_n == 20_000
    assert 0.50 < r.membership_auc < 0.52 and r.membership_auc_ci[0] <= GateSettings().max_membership_auc
    assert privacy_gate(r).passed


def test_prize_near_copy_sequences_fail(prize):
    """Sequences: random halves of the holdout as synthetic and holdout, a random half of training;
    then 10 % of the synthetic groups replaced by training groups with one value moved by ±1."""
    training, holdout = prize["training"], prize["holdout"]
    rng = np.random.default_rng(0)
    hol_groups = rng.permutation(holdout[KEY].unique())
    syn = holdout[holdout[KEY].isin(hol_groups[:10_000])]
    hol = holdout[holdout[KEY].isin(hol_groups[10_000:])]
    trn = training[training[KEY].isin(rng.permutation(training[KEY].unique())[:10_000])]
    fair = privacy_metrics(trn, hol, syn, group_key=KEY)
    assert abs(fair.dcr_share - 0.5) <= 0.02 and abs(fair.membership_auc - 0.5) <= 0.02
    assert privacy_gate(fair).passed

    source = rng.choice(trn[KEY].unique(), 1_000, replace=False)
    copies = trn[trn[KEY].isin(source)].copy()
    first_rows = copies.groupby(KEY, sort=False).head(1).index
    columns = rng.choice(["david", "james", "lucas", "mary", "mike"], len(first_rows))
    for row, col, step in zip(first_rows, columns, rng.choice([-1, 1], len(first_rows))):
        copies.loc[row, col] += step
    copies[KEY] = "copy-" + copies[KEY]
    kept = syn[syn[KEY].isin(rng.choice(syn[KEY].unique(), 9_000, replace=False))]
    leaky = privacy_metrics(trn, hol, pd.concat([kept, copies], ignore_index=True), group_key=KEY)
    assert leaky.exact_copy_training_sequences < 0.01  # near-copies, not copies
    assert leaky.membership_auc >= 0.53 and leaky.membership_auc_ci[0] > GateSettings().max_membership_auc
    assert leaky.dcr_share > 0.52
    assert not privacy_gate(leaky).passed


def test_prize_copied_training_groups_fail(prize):
    training = prize["training"]
    keep = training[KEY].drop_duplicates().iloc[:3_000]
    synthetic = training[training[KEY].isin(keep)].copy()
    synthetic[KEY] = "syn-" + synthetic[KEY]
    r = privacy_metrics(training, prize["holdout"], synthetic, group_key=KEY, sample_size=500, membership=False)
    assert r.exact_copy_training_sequences == 1.0 and r.exact_copy_holdout_sequences == 0.0
    assert r.exact_copy_training == 1.0 and r.exact_copy_holdout < 0.01
    passed, reasons = privacy_passes(r)
    assert not passed and any(line.startswith("exact_copy_training_sequences") for line in reasons)


def test_sequence_identifiers_are_detected():
    # a context column that names the sequence (constant within, different between groups)
    n_groups = 30
    frame = pd.DataFrame({"g": np.repeat(np.arange(n_groups), 3), "v": np.tile([1.0, 2.0, 3.0], n_groups)})
    frame["customer"] = "cust-" + frame["g"].astype(str)
    frame["step"] = np.arange(len(frame))  # unique per row
    assert id_like_columns(frame, group_key="g") == {
        "customer": "unique per sequence in training",
        "step": "unique per row in training",
    }


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


def test_result_round_trips_through_its_dict(census_clean):
    d = census_clean.to_dict()
    assert isinstance(d["dcr_share_ci"], list) and isinstance(d["membership_auc_ci"], list)
    assert PrivacyResult(**d).to_dict() == d
