"""Sequential (group) selection: encoding, objective, coherence stage, swap refinement, pipeline, CLI."""

from __future__ import annotations

import json
import types

import numpy as np
import pandas as pd
import pytest

from synth_core.errors import InputError
from synth_core.select import GuardSettings

KEY = "group_id"
# The search's own tests put the training groups in the pool and expect them back; the privacy
# guard (on by default) exists to keep them out, so these tests switch it off.
GUARD_OFF = GuardSettings(enabled=False)


# --------------------------------------------------------------------------------------------
# data helpers


def noisy_groups(source: pd.DataFrame, group_key: str, n_groups: int, seed: int = 0, *,
                 max_noise: float = 0.6, key_prefix: str | None = "p") -> pd.DataFrame:
    """A pool of ``n_groups`` groups resampled (with replacement) from ``source`` with noise.

    Per group a noise level ``s`` (many mild, some heavy); per event: dropped (never the first)
    or duplicated with probability ``0.3·s``; per value, with probability ``s``: numbers scaled
    by ``exp(N(0, 0.25))`` plus ``N(0, 0.2·sd)`` noise (integers rounded), categories replaced by a
    random value of the column; with probability ``0.05·s`` a number becomes a random value of the
    column (NaN included). Keys are renamed (``key_prefix`` + number, or integers if None).
    """
    rng = np.random.default_rng(seed)
    codes, uniques = pd.factorize(source[group_key], sort=False)
    order = np.argsort(codes, kind="stable")
    lengths = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pick = rng.integers(0, len(uniques), size=n_groups)
    lens = lengths[pick]
    new_starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    rows = order[np.repeat(starts[pick] - new_starts, lens) + np.arange(lens.sum())]
    gid = np.repeat(np.arange(n_groups), lens)
    pos = np.arange(lens.sum()) - np.repeat(new_starts, lens)
    level = rng.uniform(0, max_noise, size=n_groups) ** 2 / max_noise
    s = level[gid]
    drop = (rng.random(len(rows)) < 0.3 * s) & (pos > 0)
    dup = rng.random(len(rows)) < 0.3 * s
    reps = (1 + dup.astype(np.int64)) * (~drop)
    rows, gid, s = np.repeat(rows, reps), np.repeat(gid, reps), np.repeat(s, reps)
    out = source.iloc[rows].reset_index(drop=True).copy()
    n = len(out)
    for c in source.columns:
        if c == group_key:
            continue
        hit = rng.random(n) < s
        if pd.api.types.is_numeric_dtype(out[c].dtype):
            x = out[c].to_numpy(dtype=np.float64, na_value=np.nan).copy()
            sd = float(np.nanstd(x)) or 1.0
            x[hit] = x[hit] * np.exp(rng.normal(0, 0.25, hit.sum())) + rng.normal(0, 0.2 * sd, hit.sum())
            na = rng.random(n) < 0.05 * s
            donors = source[c].to_numpy(dtype=np.float64, na_value=np.nan)
            x[na] = donors[rng.integers(0, len(donors), na.sum())]
            if pd.api.types.is_integer_dtype(source[c].dtype):
                x = np.round(x)
                out[c] = (pd.array(np.where(np.isnan(x), None, x), dtype="Int64") if np.isnan(x).any()
                          else x.astype(np.int64))
            else:
                out[c] = x
        else:
            vals = out[c].to_numpy(dtype=object, na_value=None).copy()
            donors = source[c].to_numpy(dtype=object, na_value=None)
            vals[hit] = donors[rng.integers(0, len(donors), hit.sum())]
            out[c] = pd.Series(vals, dtype=source[c].dtype)
    out[group_key] = [f"{key_prefix}{g:07d}" for g in gid] if key_prefix is not None else gid
    return out


def first_groups(table: pd.DataFrame, n: int) -> pd.DataFrame:
    keys = table[KEY].drop_duplicates().iloc[:n]
    return table[table[KEY].isin(keys)].reset_index(drop=True)


def shuffle_groups(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Groups in a random order, rows of a group kept in order."""
    keys = table[KEY].drop_duplicates().to_numpy()
    rank = pd.Series(np.random.default_rng(seed).permutation(len(keys)), index=keys)
    order = np.argsort(rank[table[KEY]].to_numpy(), kind="stable")
    return table.iloc[order].reset_index(drop=True)


@pytest.fixture(scope="module")
def prize(prize_seq_paths):
    return {name: pd.read_csv(prize_seq_paths[name]) for name in ("training", "holdout")}


@pytest.fixture(scope="module")
def small(prize):
    """300 training groups; a pool of their exact copies (same keys) and 900 noisy holdout groups."""
    training = first_groups(prize["training"], 300)
    noise = noisy_groups(first_groups(prize["holdout"], 2000), KEY, 900, seed=1)
    pool = shuffle_groups(pd.concat([training, noise], ignore_index=True), seed=2)
    return training, pool


# --------------------------------------------------------------------------------------------
# encoding and objective


def test_group_layout_and_codes(small):
    from synth_core.select.sequential._sequences import SequenceEncoder

    training, pool = small
    enc = SequenceEncoder(KEY).fit(training)
    t = enc.transform(pool, "pool")
    lay = t.layout
    assert lay.n_groups == 1200 and lay.n_rows == len(pool)
    for arr in (lay.order, lay.starts, lay.lengths, t.wstarts, t.wlengths):
        assert arr.dtype == np.int64
    assert t.row_codes.dtype == np.uint8 and t.group_codes.dtype == np.uint8 and t.group_masks.dtype == np.uint16
    # groups in order of first appearance, rows of a group in file order
    assert list(lay.keys[:3]) == list(pool[KEY].drop_duplicates().iloc[:3])
    g = 5
    rows = lay.rows_of(np.array([g]))
    assert (pool[KEY].iloc[rows] == lay.keys[g]).all() and np.all(np.diff(rows) > 0)
    # weighted rows: max(L-1, 1) per group, each carrying its group's Sequence Length code
    assert np.array_equal(t.wlengths, np.maximum(lay.lengths - 1, 1))
    assert t.row_codes.shape == (int(t.wlengths.sum()), 2 * enc.n_columns + 1)
    sl = enc.length_bins.encode(pd.Series(lay.lengths).astype("Float64"))
    assert np.array_equal(t.row_codes[:, 0], np.repeat(sl, t.wlengths))
    # nxt codes are the successor's: row 0 of group g carries row 1's nxt code
    j = enc.columns.index("alice")
    succ = pool["alice"].iloc[rows[1:2]]
    assert t.row_codes[t.wstarts[g], 1 + enc.n_columns + j] == enc.nxt_bins[j].encode(succ.astype(object))[0]
    # distinct categories per sequence: count of distinct 30-bin codes, binned on training
    coh = enc.coh_bins[j].encode(pool["alice"].iloc[rows].astype(object))
    assert t.group_codes[g, j] == enc.distinct_bins[j].encode(pd.Series([len(set(coh))]))[0]
    # bucket masks: at most 10 buckets per column
    assert all(len(labels) <= 10 for labels in enc.bucket_labels)
    assert int(t.group_masks.max()) < 2**10


def test_objective_zero_on_training_and_weights(small):
    from synth_core.select.sequential._sequences import KINDS, build_problem

    training, pool = small
    p = build_problem(training, pool, KEY)
    assert p.exact and p.scale >= 1
    copies = np.flatnonzero(np.isin(p.pool.keys, training[KEY].unique()))
    assert copies.size == 300
    counts = p.counts(copies)
    assert p.objective(counts) == 0.0
    parts = p.breakdown(counts)
    assert parts["overall"] == 1.0 and parts["coherence"] == 1.0
    # qa's weighting: four phases of 1/4; coherence parts 1/12 each; 11 tgt columns, 165 triples
    spec = p.spec
    w = {k: spec.weight[spec.kind == i].sum() for i, k in enumerate(KINDS)}
    assert w["uni"] == pytest.approx(0.25) and w["bi"] == pytest.approx(0.25) and w["tri"] == pytest.approx(0.25)
    assert (w["next"] == pytest.approx(1 / 12) and w["cats"] == pytest.approx(1 / 12)
            and w["seqs"] == pytest.approx(1 / 12))
    assert (spec.kind == 0).sum() == 11 and (spec.kind == 1).sum() == 55 and (spec.kind == 2).sum() == 165
    # every row table sums to N·M, every group table to N (targets scaled to n_target)
    tot = np.add.reduceat(p.target, spec.offsets)
    row = spec.kind <= 3
    assert np.allclose(tot[row], p.n_target * p.scale)
    assert np.allclose(tot[spec.kind == 4], p.n_target)


def test_row_weights_match_the_metric_expectation(prize):
    """The Sequence Length × data-column tables equal the expectation of qa's one-pair sample."""
    from synth_core.select.sequential import build_problem

    training = first_groups(prize["training"], 200)
    p = build_problem(training, training, KEY)
    counts = p.counts(np.arange(200))
    # univariate Sequence Length: each group contributes exactly 1 (times M) to its length's bin
    f = 0
    sl = p.encoder.length_bins.encode(pd.Series(p.pool.lengths).astype("Float64"))
    expected = np.bincount(sl, minlength=int(p.spec.n_cells[f])) * p.scale
    assert np.array_equal(counts[p.spec.offsets[f]: p.spec.offsets[f] + p.spec.n_cells[f]], expected)
    # univariate of a data column: Σ over positions 0..L-2 of 1/(L-1), via pandas
    j = p.encoder.columns.index("mike")
    col = 1 + j
    bins = p.encoder.tgt_bins[j]
    frame = training.assign(pos=training.groupby(KEY).cumcount(), L=training.groupby(KEY)[KEY].transform("size"))
    frame = frame[frame["pos"] <= np.maximum(frame["L"] - 2, 0)]
    code = bins.encode(frame["mike"].astype("Float64"))
    exp = np.bincount(code, weights=1.0 / np.maximum(frame["L"] - 1, 1), minlength=bins.n_codes)
    assert np.allclose(counts[p.spec.offsets[col]: p.spec.offsets[col] + bins.n_codes] / p.scale, exp)


# --------------------------------------------------------------------------------------------
# refinement


def test_incremental_objective_equals_recount_after_every_swap(small):
    from synth_core.select.sequential import build_problem, random_groups
    from synth_core.select.sequential._group_refine import refine_groups

    training, pool = small
    p = build_problem(training.iloc[: 700], pool.iloc[:3000], KEY, 40)
    start = random_groups(p.n_pool, 40, 3)
    seen = []

    def check(ev):
        fresh = p.counts(np.sort(ev.groups))
        assert np.array_equal(fresh, ev.counts)
        assert ev.objective == pytest.approx(p.objective(fresh), rel=1e-12, abs=1e-15)
        assert ev.gain > 0
        seen.append(ev.objective)

    r = refine_groups(p, start, max_swaps=60, callback=check, verify=True)
    assert r.n_swaps == len(seen) > 20
    assert np.all(np.diff(r.trace) < 0)  # strict decreases only
    assert r.objective == pytest.approx(r.objective_incremental, rel=1e-12)
    assert r.objective < p.objective(p.counts(start))


def test_stale_rounds_and_partial_refresh_stay_exact(small):
    """Rounds that reuse stale keys and full rounds that refresh only the top candidates:
    still strict decreases, counts equal to a recount after every swap, deterministic."""
    from synth_core.select.sequential import build_problem, random_groups
    from synth_core.select.sequential._group_refine import refine_groups

    training, pool = small
    p = build_problem(training.iloc[:700], pool.iloc[:3000], KEY, 40)
    start = random_groups(p.n_pool, 40, 5)
    opts = dict(max_swaps=80, swaps_per_round=6, refresh_every=2, top_candidates=30, all_every=3, tol=0.0)
    r = refine_groups(p, start, verify=True, **opts)
    assert r.n_rounds >= 8 and r.n_full_rounds >= 3
    assert sum(1 for row in r.rounds if row[0] == 0) >= 4  # stale rounds happened
    assert np.all(np.diff(r.trace) < 0)
    again = refine_groups(p, start, **opts)  # batch mode (no verify): the same swaps
    assert np.array_equal(again.swaps, r.swaps) and again.objective == r.objective
    # the relative stopping rule ends a run that keeps gaining little
    loose = refine_groups(p, start, tol=0.5)
    assert loose.stop_reason == "converged" and loose.n_full_rounds >= 1


def test_swap_gain_is_exact_including_shared_cells(small):
    from synth_core.select.sequential import _group_kernels as gk
    from synth_core.select.sequential import build_problem, random_groups

    training, pool = small
    p = build_problem(training, pool, KEY, 100)
    sub = random_groups(p.n_pool, 100, 0)
    ct = p.counts(sub) - p.target  # x = counts − target, what the gains read
    before = p.objective(p.counts(sub))
    snapshot = ct.copy()
    cells = np.empty(p.max_rows, dtype=np.int64)
    vals = np.empty(p.max_rows)
    old = np.empty(p.max_rows)
    out = np.empty(p.n_pool)
    gk.group_gains(np.arange(p.n_pool, dtype=np.int64), 1.0, p.pool_data, p.kspec, ct, p.max_rows, 2, out)
    rng = np.random.default_rng(0)
    outside = np.setdiff1d(np.arange(p.n_pool), sub)
    for a, b in zip(rng.choice(sub, 25), rng.choice(outside, 25)):
        g = gk.swap_gain(a, b, p.pool_data, p.kspec, ct, cells, vals, old)
        moved = np.sort(np.append(sub[sub != a], b))
        assert g == pytest.approx(before - p.objective(p.counts(moved)), abs=1e-12)
        add = gk.single_gain(b, 1.0, p.pool_data, p.kspec, ct, cells, vals, old)
        assert add == pytest.approx(before - p.objective(p.counts(np.append(sub, b))) , abs=1e-12)
        assert out[b] == add
        assert g >= gk.single_gain(a, -1.0, p.pool_data, p.kspec, ct, cells, vals, old) + add - 1e-15
    # swapping a group for itself changes nothing (up to float rounding of the telescoped terms)
    a = sub[0]
    assert abs(gk.swap_gain(a, a, p.pool_data, p.kspec, ct, cells, vals, old)) < 1e-15
    assert np.array_equal(ct, snapshot)  # gains restore x bit for bit


def test_counts_and_indices_are_64_bit(small):
    """No int32 anywhere on the count path: cells, strides, offsets and row indices are int64,
    counts float64 (exact integers up to 2**53), so group × cell totals beyond 2**31 are safe."""
    from synth_core.select.sequential import _group_kernels as gk
    from synth_core.select.sequential import build_problem

    training, pool = small
    p = build_problem(training, pool, KEY, 50)
    for arr in p.kspec:
        assert arr.dtype in (np.int64, np.float64)
    assert all(a.dtype == np.int64 for a in (p.kspec[0], p.kspec[1], p.kspec[2], p.kspec[4], p.kspec[5]))
    X, wstarts, wlengths, gw, G, B = p.pool_data
    assert wstarts.dtype == np.int64 and wlengths.dtype == np.int64 and gw.dtype == np.float64
    # the kernels' cell arithmetic: int64 even when offset + code × stride passes 2**31
    codes = np.array([[200, 255, 7]], dtype=np.uint8)
    cols = np.array([[0, 1, 2]], dtype=np.int64)
    strides = np.array([[2**24, 2**16, 1]], dtype=np.int64)
    offsets = np.array([2**31 - 3], dtype=np.int64)
    cell = gk._rcell(codes, 0, 0, cols, strides, offsets)
    assert cell == 2**31 - 3 + 200 * 2**24 + 255 * 2**16 + 7 > 2**32
    # counts stay exact integers far beyond 2**31 (a group weighing 2**33 added and removed)
    data = (X, wstarts, wlengths, np.full(p.n_pool, 2.0**33), G, B)
    counts = np.zeros(p.spec.total_cells)
    groups = np.arange(40, dtype=np.int64)
    gk.accumulate(groups, 1.0, data, p.kspec, counts)
    assert counts.max() >= 2**33 and np.array_equal(counts, np.round(counts))
    gk.accumulate(groups[:20], -1.0, data, p.kspec, counts)
    fresh = np.zeros_like(counts)
    gk.accumulate(groups[20:], 1.0, data, p.kspec, fresh)
    assert np.array_equal(counts, fresh)


def test_refinement_logs_progress(small, caplog):
    import logging

    from synth_core.select.sequential import build_problem, random_groups
    from synth_core.select.sequential._group_refine import refine_groups

    training, pool = small
    p = build_problem(training, pool, KEY, 100)
    with caplog.at_level(logging.INFO, logger="synth_core.select.sequential._group_refine"):
        r = refine_groups(p, random_groups(p.n_pool, 100, 0), max_swaps=60, swaps_per_round=20, log_every_s=0.0)
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "synth_core.select.sequential._group_refine"]
    assert r.n_swaps == 60 and r.stop_reason == "max_swaps"
    assert len(lines) >= r.n_rounds  # with no interval, a line after every kernel call
    # the closing progress line: the swap budget spent, the round count and the objective
    assert lines[-2].startswith("refine: 60/60 swaps (100%)") and "swaps/s" in lines[-2]
    assert f"rounds={r.n_rounds}/" in lines[-2] and "objective=" in lines[-2]
    assert lines[-1] == "refine: stopped (max_swaps)"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="synth_core.select.sequential._group_refine"):
        refine_groups(p, random_groups(p.n_pool, 100, 0), max_swaps=60, swaps_per_round=20)
    # 5 s interval
    assert len([r for r in caplog.records if r.name == "synth_core.select.sequential._group_refine"]) <= 3


# --------------------------------------------------------------------------------------------
# the pipeline


@pytest.fixture(scope="module")
def small_selection(small):
    from synth_core.select.sequential import SequentialSettings, select_groups

    training, pool = small
    return select_groups(training, pool, KEY, settings=SequentialSettings(seed=0, guard=GUARD_OFF))


def test_the_privacy_guard_keeps_the_training_copies_out(small, small_selection):
    from synth_core.select.sequential import SequentialSettings, select_groups

    training, pool = small
    sel = select_groups(training, pool, KEY, settings=SequentialSettings(seed=0))  # guard on: the default
    assert sel.guard.replicas == 300  # every training group is in the pool, under its own key
    for name in ("coherence", "refined"):
        assert not set(sel.stages[name].keys) & set(training[KEY])
    # the output holds the pool's closeness strata (a balancing pass sees to it on a problem this small)
    floor = sel.guard.closeness_floor(300)  # whole counts cannot match fractional shares exactly
    assert sel.stages["refined"].details["closeness_error"] <= GuardSettings().balance_tolerance + floor
    # the random stage is the pool's, copies and all: the baseline of what the generator gave
    assert np.array_equal(sel.stages["random"].groups, small_selection.stages["random"].groups)
    assert sel.objectives()["refined"] < sel.objectives()["random"]


def test_recovers_the_training_groups(small, small_selection):
    from synth_core.metrics import accuracy

    training, pool = small
    sel = small_selection
    assert list(sel.stages) == ["random", "coherence", "refined"]
    obj = sel.objectives()
    assert obj["random"] > 0.1
    assert obj["coherence"] < obj["random"]
    assert obj["refined"] < 1e-9
    assert set(sel.final.keys) == set(training[KEY])
    out = sel.output(pool)
    assert list(out.columns) == list(training.columns)
    assert (out.dtypes == training.dtypes).all()
    # the metric samples one pair per group with its own draws, so even the training table
    # scores below 1 against itself: the recovered output must score exactly that
    acc = accuracy(training, out, group_key=KEY, seed=0).to_dict()
    assert acc == accuracy(training, training, group_key=KEY, seed=0).to_dict()
    assert sel.final.breakdown["overall"] == 1.0 and sel.final.breakdown["coherence"] == 1.0
    rnd = accuracy(training, sel.output(pool, "random"), group_key=KEY, seed=0).to_dict()
    assert rnd["overall"] < acc["overall"] - 0.05 and rnd["coherence"] < acc["coherence"] - 0.05
    assert sel.timings["total_s"] > 0 and all(r.elapsed_s >= 0 for r in sel.stages.values())


def test_output_order_and_renumbering(small, small_selection):
    training, pool = small
    sel = small_selection
    out = sel.output(pool, "random")
    # rows of every group in their original order, groups in pool order
    pos = pool.reset_index().set_index(KEY)
    first = out.drop_duplicates(KEY)[KEY].tolist()
    assert first == [k for k in pool[KEY].drop_duplicates() if k in set(first)]
    key = first[3]
    assert out[out[KEY] == key].reset_index(drop=True).equals(pool[pool[KEY] == key].reset_index(drop=True))
    ren = sel.output(pool, "random", renumber=True)
    assert ren[KEY].nunique() == 300 and ren[KEY].iloc[0] == "0" and len(ren) == len(out)
    assert ren.drop(columns=KEY).equals(out.drop(columns=KEY))
    del pos
    with pytest.raises(InputError, match="rows"):
        sel.output(pool.iloc[:-1])


def test_determinism_and_key_types(small, small_selection, tmp_path):
    from synth_core.io import write_table
    from synth_core.select.sequential import SequentialSettings, select_groups

    training, pool = small
    again = select_groups(training, pool, KEY, settings=SequentialSettings(seed=0, guard=GUARD_OFF))
    for name in ("random", "coherence", "refined"):
        assert np.array_equal(again.stages[name].keys, small_selection.stages[name].keys)
        assert again.stages[name].objective == small_selection.stages[name].objective
    # same seed: byte-identical output files (of a stage that differs from the training copies)
    for i, sel in enumerate((small_selection, again)):
        write_table(sel.output(pool, "coherence"), tmp_path / f"run{i}.csv")
    assert (tmp_path / "run0.csv").read_bytes() == (tmp_path / "run1.csv").read_bytes()
    other = select_groups(training, pool, KEY, settings=SequentialSettings(seed=1, guard=GUARD_OFF), refine=False)
    assert not np.array_equal(other.stages["coherence"].groups, again.stages["coherence"].groups)
    # integer keys: the same groups in the same order give the same selection
    codes, uniques = pd.factorize(pd.concat([training[KEY], pool[KEY]]), sort=True)
    as_int = dict(zip(uniques, range(len(uniques))))
    t_int = training.assign(**{KEY: training[KEY].map(as_int).astype(np.int64)})
    p_int = pool.assign(**{KEY: pool[KEY].map(as_int).astype(np.int64)})
    sel_int = select_groups(t_int, p_int, KEY, settings=SequentialSettings(seed=0, guard=GUARD_OFF))
    for name in ("random", "coherence", "refined"):
        assert np.array_equal(sel_int.stages[name].groups, small_selection.stages[name].groups)
        assert sel_int.stages[name].objective == small_selection.stages[name].objective
    out = sel_int.output(p_int)
    assert out[KEY].dtype == np.int64


def test_single_row_groups(prize):
    from synth_core.metrics import accuracy
    from synth_core.select.sequential import SequentialSettings, select_groups

    base = first_groups(prize["training"], 120)
    pos = base.groupby(KEY).cumcount()
    short = base[KEY].isin(base[KEY].unique()[:40])
    training = base[~short | (pos == 0)].reset_index(drop=True)  # 40 groups of one row
    noise = noisy_groups(first_groups(prize["holdout"], 400), KEY, 300, seed=4)
    noise_pos = noise.groupby(KEY).cumcount()
    noise = noise[~noise[KEY].isin(noise[KEY].unique()[:100]) | (noise_pos == 0)]
    pool = shuffle_groups(pd.concat([training, noise], ignore_index=True), seed=5)
    sel = select_groups(training, pool, KEY, settings=SequentialSettings(seed=1, guard=GUARD_OFF))
    assert sel.objectives()["refined"] < 1e-9
    out = sel.output(pool)
    assert (out.groupby(KEY).size() == 1).sum() == 40
    assert (accuracy(training, out, group_key=KEY, seed=0).to_dict()
            == accuracy(training, training, group_key=KEY, seed=0).to_dict())


def test_coherence_stage_improves_the_metric_coherence(prize):
    from synth_core.metrics import accuracy
    from synth_core.select.sequential import build_problem
    from synth_core.select.sequential._coherence import coherence_subset

    training = first_groups(prize["training"], 600)
    pool = noisy_groups(first_groups(prize["holdout"], 3000), KEY, 2400, seed=6)
    p = build_problem(training, pool, KEY)
    res = coherence_subset(p, 600, seed=0)
    again = coherence_subset(p, 600, seed=0)
    assert np.array_equal(res.groups, again.groups)
    assert res.objective < 0.4 * res.objective_start
    acc = {}
    for name, groups in (("random", res.start), ("coherence", res.groups)):
        sub = pool.iloc[p.pool.layout.rows_of(groups)]
        acc[name] = accuracy(training, sub, group_key=KEY, seed=0).to_dict()
    assert acc["coherence"]["coherence"] > acc["random"]["coherence"] + 0.02


# --------------------------------------------------------------------------------------------
# input errors and the CLI


def test_bad_inputs(small):
    from synth_core.select.sequential import select_groups

    training, pool = small
    cases = [
        (training.drop(columns=KEY), pool, {}, f"group key '{KEY}' not found in the training table"),
        (training, pool.drop(columns=KEY), {}, f"group key '{KEY}' not found in the pool table"),
        (training, pool.drop(columns="mary"), {}, "pool table lacks training column 'mary'"),
        (training, pool, {"n_target": 5000}, "n_target 5,000 exceeds the pool's 1,200 groups"),
        (training, pool, {"n_target": 0}, "n_target must be at least 1"),
    ]
    for trn, pl, kw, message in cases:
        with pytest.raises(InputError) as info:
            select_groups(trn, pl, KEY, **kw)
        assert message in str(info.value) and "\n" not in str(info.value)


def test_cli_sequential_select(small, prize, tmp_path, capsys):
    from synth_core.cli import main

    training, pool = small
    paths = {name: tmp_path / f"{name}.csv" for name in ("training", "pool", "holdout")}
    training.to_csv(paths["training"], index=False)
    pool.to_csv(paths["pool"], index=False)
    first_groups(prize["holdout"], 300).to_csv(paths["holdout"], index=False)
    out = tmp_path / "out.parquet"
    argv = ["select", "--training", str(paths["training"]), "--pool", str(paths["pool"]), "--output", str(out),
            "--holdout", str(paths["holdout"]), "--group-key", KEY, "--seed", "0", "--no-privacy-guard", "--json"]
    # the guard off, the search recovers the training copies: the privacy gate refuses them
    assert main(argv) == 3
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    stages = {s["stage"]: s for s in result["stages"]}
    assert list(stages) == ["random", "coherence", "refined"]
    assert stages["refined"]["groups"] == 300 and stages["refined"]["objective"] < 1e-9
    assert stages["refined"]["accuracy"]["overall"] > stages["random"]["accuracy"]["overall"]
    assert "privacy" in stages["refined"] and "privacy" not in stages["coherence"]  # ends only
    assert result["checks"]["privacy_gate"]["passed"] is False and result["output"] is None
    assert not out.exists() and "check failed: privacy_gate" in captured.err
    # --force writes it anyway, and still says so in the status
    assert main(argv + ["--force"]) == 3
    written = pd.read_parquet(out)
    assert written[KEY].nunique() == 300 and set(written[KEY]) == set(training[KEY])
    capsys.readouterr()

    # the table form, without a holdout (no privacy lines, the privacy gate not evaluated); a bad
    # size is a one-line error
    from synth_core.cli._select import run_sequential_select

    args = types.SimpleNamespace(training=paths["training"], pool=paths["pool"], output=tmp_path / "o.csv",
                                 holdout=None, group_key=KEY, size=50, seed=0, json=False, privacy_guard=False)
    assert run_sequential_select(args) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:4] == ["stage", "groups", "rows", "objective"]
    assert "refined" in text and "privacy (" not in text and "wrote 50 groups" in text
    assert "privacy_gate    not evaluated (needs --holdout)" in text
    assert main(argv[:-1] + ["--size", "99999"]) == 2
    assert "exceeds the pool's 1,200 groups" in capsys.readouterr().err


def test_group_refinement_identical_for_any_thread_count_and_speculation(small):
    """Group refinement may compute gains ahead and evaluate a removal candidate's swaps in
    parallel calls (``speculate``); the swaps, the trace and the counters are the same on one
    thread or two, with or without it, stale rounds included."""
    from synth_core.select.sequential import build_problem, random_groups
    from synth_core.select.sequential._group_refine import refine_groups
    from tests.threads import runs_by_threads

    training, pool = small
    p = build_problem(training.iloc[:700], pool.iloc[:3000], KEY, 40)
    start = random_groups(p.n_pool, 40, 7)
    opts = dict(max_swaps=150, swaps_per_round=20, refresh_every=2, top_candidates=60, all_every=2, tol=0.0)
    runs = runs_by_threads(lambda speculate: refine_groups(p, start, speculate=speculate, **opts))
    base = runs[1, False]
    assert base.n_swaps > 30 and base.n_recomputations > 100 and base.n_ahead == 0
    assert sum(1 for row in base.rounds if row[0] == 0) >= 2  # stale rounds happened
    for key, r in runs.items():
        assert np.array_equal(r.swaps, base.swaps), key
        assert np.array_equal(r.trace, base.trace), key
        assert np.array_equal(r.groups, base.groups) and np.array_equal(r.counts, base.counts), key
        assert (r.n_recomputations, r.n_evaluations, r.n_rounds) == (
            base.n_recomputations, base.n_evaluations, base.n_rounds), key
        assert (r.n_ahead >= r.n_recomputations) if key[1] else r.n_ahead == 0, key


def test_sequential_output_uses_the_same_conversion():
    from synth_core.select.sequential import select_groups

    rng = np.random.default_rng(0)
    training = pd.DataFrame({"g": np.repeat(np.arange(30), 3), "v": rng.integers(0, 5, 90), "t": "x"})
    pool = pd.DataFrame({"g": np.repeat(np.arange(90), 3), "v": rng.integers(0, 5, 270).astype(float), "t": "x"})
    sel = select_groups(training, pool, "g", 20, coherence=False, refine=False)
    assert sel.output(pool).dtypes.to_dict() == training.dtypes.to_dict()
    pool.loc[sel.layout.rows_of(sel.final.groups)[0], "v"] = 1.5
    with pytest.raises(InputError, match="column 'v' has non-integer values"):
        sel.output(pool)
