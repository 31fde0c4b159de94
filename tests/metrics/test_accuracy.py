"""Accuracy equals mostlyai-qa: the official prize scores, qa.report itself, and edge cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from synth_core.metrics._accuracy import FIELDS, MAX_TRIPLES, accuracy
from synth_core.metrics._contingency import pairwise_sum
from tests.metrics.qa_reference import qa_accuracy


def perturbed_census(holdout: pd.DataFrame) -> pd.DataFrame:
    """A 'synthetic' table with known flaws: shifted ages, flattened hours, shuffled occupations."""
    rng = np.random.default_rng(7)
    syn = holdout.sample(frac=1.0, random_state=3).reset_index(drop=True)
    syn["age"] = syn["age"] + rng.integers(-3, 4, len(syn))
    syn["hours_per_week"] = syn["hours_per_week"].where(rng.random(len(syn)) > 0.2, 40)
    swap = rng.random(len(syn)) < 0.1
    syn.loc[swap, "occupation"] = syn["occupation"].sample(frac=1, random_state=1).to_numpy()[swap]
    syn.loc[rng.random(len(syn)) < 0.05, "workclass"] = np.nan
    return syn


def small_sequences(n_groups: int, seed: int, *, string_keys: bool) -> pd.DataFrame:
    """Sequences of 1..129 rows (some longer than qa's 100-row coherence cap), awkward columns."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 130, n_groups)
    lengths[:5] = 1
    keys = np.repeat(np.arange(n_groups) * 7 + 3, lengths)
    if string_keys:
        keys = np.array([f"g{k:05d}" for k in keys])
    n = len(keys)
    return pd.DataFrame(
        {
            "gid": keys,
            "x": rng.normal(size=n).round(2),
            "c": rng.choice(list("abcdefghijklmn"), n, p=np.r_[[0.3, 0.2], np.full(12, 0.5 / 12)]),
            "z": np.where(rng.random(n) < 0.6, 0, rng.exponential(5, n)).round(1),
            "d": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), "D"),
            "all_nan": np.nan,
            "constant": 1,
        }
    )


def test_prize_sequential_equals_official_scores(prize_seq_paths):
    training = pd.read_csv(prize_seq_paths["training"])
    holdout = pd.read_csv(prize_seq_paths["holdout"])
    synthetic = pd.read_csv(prize_seq_paths["synthetic"])
    official = json.loads(prize_seq_paths["official"].read_text())["accuracy"]
    report = accuracy(training, synthetic, holdout, group_key="group_id", seed=1)
    assert report.to_dict() == {k: official[k] for k in FIELDS}
    # per-item tables back the means: 11 columns (Sequence Length included), 55 pairs, 165 triples
    assert len(report.univariate) == 11 and len(report.bivariate) == 55 and len(report.trivariate) == 165
    assert set(report.coherence["part"]) == {"next_row", "categories_per_sequence", "sequences_per_category"}
    assert len(report.coherence) == 30
    # another seed draws other positions: a different trivariate, the same bins
    other = accuracy(training, synthetic, holdout, group_key="group_id", seed=2)
    assert other.fields["trivariate"] != report.fields["trivariate"]
    assert abs(other.fields["overall"] - report.fields["overall"]) < 0.002


def test_census_equals_qa_report(census_paths, tmp_path):
    training = pd.read_csv(census_paths["training"])
    holdout = pd.read_csv(census_paths["holdout"])
    synthetic = perturbed_census(holdout)
    ours = accuracy(training, synthetic, holdout, seed=1)
    assert len(ours.trivariate) == math.comb(15, 3) == 455
    theirs = qa_accuracy(training, synthetic, holdout, group_key=None, seed=1, workdir=tmp_path)
    assert ours.to_dict() == theirs
    assert ours.fields["overall"] < ours.fields["overall_max"]  # the perturbation shows
    assert ours.worst_columns(1)["column"].iloc[0] in {"age", "hours_per_week", "occupation"}


def test_sequential_edge_cases_equal_qa_report(tmp_path):
    """Integer keys, single-row groups, sequences over 100 rows, datetimes, all-NaN, constants."""
    training = small_sequences(150, 1, string_keys=False)
    holdout = small_sequences(150, 2, string_keys=False)
    synthetic = small_sequences(160, 3, string_keys=False)
    ours = accuracy(training, synthetic, holdout, group_key="gid", seed=5)
    theirs = qa_accuracy(training, synthetic, holdout, group_key="gid", seed=5, workdir=tmp_path)
    assert ours.to_dict() == theirs
    # string keys give the same structure; seeds replay draws, so the same seed is deterministic
    as_strings = [t.assign(gid="g" + t["gid"].astype(str)) for t in (training, synthetic, holdout)]
    again = accuracy(as_strings[0], as_strings[1], as_strings[2], group_key="gid", seed=5)
    assert again.fields["univariate"] == pytest.approx(ours.fields["univariate"], abs=0.02)
    assert (accuracy(*as_strings, group_key="gid", seed=5).to_dict()
            == accuracy(*as_strings, group_key="gid", seed=5).to_dict())


def test_identical_tables_score_one_and_disjoint_tables_score_low():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.normal(size=500), "b": rng.choice(list("xyz"), 500), "c": rng.integers(0, 4, 500)})
    same = accuracy(table, table.copy(), seed=0)
    assert same.fields["overall"] == 1.0
    shifted = table.assign(a=table["a"] + 100, b="w", c=9)
    low = accuracy(table, shifted, seed=0)
    assert low.fields["univariate"] < 0.2


def test_more_than_max_triples_uses_a_seeded_sample():
    rng = np.random.default_rng(1)
    n_cols = 41  # C(41, 3) = 10,660 triples
    table = pd.DataFrame(rng.integers(0, 3, (400, n_cols)), columns=[f"c{i:02d}" for i in range(n_cols)])
    other = pd.DataFrame(rng.integers(0, 3, (400, n_cols)), columns=table.columns)
    first = accuracy(table, other, seed=3)
    assert first.n_triples_total == math.comb(n_cols, 3) > MAX_TRIPLES
    assert len(first.trivariate) == MAX_TRIPLES
    assert accuracy(table, other, seed=3).trivariate.equals(first.trivariate)
    picked = set(map(tuple, first.trivariate[["column_1", "column_2", "column_3"]].to_numpy()))
    other_seed = set(map(tuple,
                         accuracy(table, other, seed=4).trivariate[["column_1", "column_2", "column_3"]].to_numpy()))
    assert picked != other_seed


def test_pairwise_sum_is_numpy_sum_bit_for_bit():
    rng = np.random.default_rng(0)
    for n in [0, 1, 7, 8, 9, 127, 128, 129, 1000, 1331, 65_536 + 3]:
        values = rng.random(n) * 1e3
        assert pairwise_sum(values) == np.sum(values)


@pytest.mark.parametrize("n_keys", [50, 5_000, 10_000_000])  # dense table, and the sort above 8 keys per value
def test_sorted_distinct_equals_numpy_unique(n_keys):
    from synth_core.metrics._accuracy import _sorted_distinct

    keys = np.random.default_rng(n_keys).integers(0, n_keys, 2_000, dtype=np.int64)
    got = _sorted_distinct(keys, n_keys)
    want = np.unique(keys)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    assert _sorted_distinct(keys[:0], 0).shape == (0,)
