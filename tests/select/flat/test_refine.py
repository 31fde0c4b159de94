"""synth_core.select.flat._refine: the swap refinement, its exact books, budgets and progress."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from synth_core.errors import InputError
from synth_core.select import _features as features
from synth_core.select import _mi as mi
from synth_core.select import _objective as obj
from synth_core.select.flat import _refine as refine
from tests.select.codes import N_BINS, latent_codes, uniform_codes


def _swap_fixture():
    """Training rows T; subset = T minus 6 rows plus 6 foreign rows; pool = T + foreign rows.
    Swapping the foreign rows for the missing training rows reaches objective 0."""
    rng = np.random.default_rng(21)
    train = latent_codes(400, rng, noise=0.1)
    foreign = uniform_codes(40, rng)
    pool = np.ascontiguousarray(np.concatenate([train, foreign]))
    missing = np.array([3, 50, 120, 200, 310, 399])
    subset = np.concatenate([np.setdiff1d(np.arange(400), missing), 400 + np.arange(6)])
    pairs = mi.top_pairs(train, N_BINS, k=8).pairs
    fs = features.build_feature_set(N_BINS, pairs, mi.top_triples(train, N_BINS, k=6).triples)
    target = obj.target_counts(train, fs, subset.size)
    return pool, subset, fs, target


def test_refine_strictly_improves_and_incremental_objective_is_exact():
    pool, subset, fs, target = _swap_fixture()
    start = obj.objective(obj.subset_counts(pool, subset, fs), target, fs)
    assert start > 0.01
    events = []

    def check(ev: refine.SwapEvent):
        fresh = obj.subset_counts(pool, ev.rows, fs)
        np.testing.assert_array_equal(ev.counts, fresh)
        assert ev.objective == pytest.approx(obj.objective(fresh, target, fs), rel=1e-9, abs=1e-12)
        assert ev.gain > 0
        events.append(ev.objective)

    res = refine.refine_swaps(pool, subset, fs, target, callback=check, verify=True)
    assert res.n_swaps >= 1 and len(events) == res.n_swaps
    assert np.all(np.diff(res.trace) < 0)  # every accepted swap strictly lowers the objective
    assert res.objective < start
    assert res.objective == pytest.approx(0.0, abs=1e-12)  # the perfect subset was found
    assert res.stop_reason == "no_improving_swap"
    assert res.rows.size == subset.size and np.unique(res.rows).size == subset.size
    np.testing.assert_array_equal(res.counts, obj.subset_counts(pool, res.rows, fs))


def test_refine_without_improving_swap_changes_nothing():
    pool, _, fs, _ = _swap_fixture()
    perfect = np.arange(400)
    target = obj.target_counts(pool[:400], fs, 400)
    res = refine.refine_swaps(pool, perfect, fs, target)
    assert res.n_swaps == 0 and res.stop_reason == "no_improving_swap"
    np.testing.assert_array_equal(res.rows, perfect)


def test_refine_weighted_rows_and_sampled_candidates_stay_consistent():
    pool, subset, fs, target = _swap_fixture()
    rw = np.random.default_rng(3).choice([0.5, 1.0, 1.5], size=pool.shape[0])
    res = refine.refine_swaps(pool, subset, fs, target, row_weights=rw, candidate_sample=100, verify=True)
    start = obj.count_error(obj.subset_counts(pool, subset, fs, weights=rw), target, fs)
    assert res.n_swaps >= 1
    assert res.count_error < start
    assert res.count_error == pytest.approx(
        obj.count_error(obj.subset_counts(pool, res.rows, fs, weights=rw), target, fs), rel=1e-9
    )


def test_refine_budget_in_swaps():
    pool, subset, fs, target = _swap_fixture()
    res = refine.refine_swaps(pool, subset, fs, target, max_swaps=2)
    assert res.n_swaps == 2 and res.stop_reason == "max_swaps" and res.swaps.shape == (2, 2)
    assert np.all(np.isin(res.swaps[:, 0], subset)) and not np.any(np.isin(res.swaps[:, 1], subset))
    # a short addition list (n_add) still finds improving swaps, with consistent books
    few = refine.refine_swaps(pool, subset, fs, target, n_add=3, verify=True)
    assert few.n_swaps >= 1 and few.trace[-1] < few.trace[0]


def test_refine_directed_prefilter_keeps_exact_books_and_improves():
    pool, subset, fs, target = _swap_fixture()
    start = obj.count_error(obj.subset_counts(pool, subset, fs), target, fs)
    res = refine.refine_swaps(pool, subset, fs, target, prefilter=50, max_reevals=2, verify=True)
    assert res.n_swaps >= 1 and res.count_error < start
    again = refine.refine_swaps(pool, subset, fs, target, prefilter=50, max_reevals=2)
    np.testing.assert_array_equal(res.swaps, again.swaps)
    assert np.all(np.diff(res.trace) < 0)
    assert res.count_error == pytest.approx(obj.count_error(obj.subset_counts(pool, res.rows, fs), target, fs),
                                            rel=1e-9)
    # a prefilter as large as the pool changes nothing
    full = refine.refine_swaps(pool, subset, fs, target)
    same = refine.refine_swaps(pool, subset, fs, target, prefilter=pool.shape[0])
    np.testing.assert_array_equal(full.rows, same.rows)
    with pytest.raises(InputError):
        refine.refine_swaps(pool, subset, fs, target, prefilter=0)


def test_refine_result_does_not_depend_on_the_search_chunk(monkeypatch):
    """The kernel is called in chunks only so the loop can log progress."""
    pool, subset, fs, target = _swap_fixture()
    whole = refine.refine_swaps(pool, subset, fs, target)
    monkeypatch.setattr(refine, "SEARCH_CHUNK", 1)
    chunked = refine.refine_swaps(pool, subset, fs, target)
    np.testing.assert_array_equal(whole.swaps, chunked.swaps)
    np.testing.assert_array_equal(whole.trace, chunked.trace)


def _mixed_problem():
    """A pool of latent-structure rows and uniform noise, a pair-and-triple objective fitted on a
    sample of the same structure, and a seeded 300-row start: (pool, feature set, target, start)."""
    rng = np.random.default_rng(8)
    train = latent_codes(1500, rng, noise=0.3)
    pool = np.ascontiguousarray(np.concatenate([latent_codes(3000, rng, noise=0.6), uniform_codes(1000, rng)]))
    fs = features.build_feature_set(N_BINS, mi.top_pairs(train, N_BINS, k=10).pairs,
                                    mi.top_triples(train, N_BINS, k=8).triples)
    target = obj.target_counts(train, fs, 300)
    return pool, fs, target, np.sort(rng.choice(pool.shape[0], size=300, replace=False))


def test_refine_pair_screen_changes_nothing_but_the_work(monkeypatch):
    """The search screens pairs by removal gain + addition gain - shared cells and evaluates
    exactly only those that may beat the best (kernels.swap_search): the swaps, their gains and
    every counter are those of the search that evaluates every pair exactly, with column masks
    or with compared cells."""
    from synth_core.select import _kernels as kernels

    pool, fs, target, start = _mixed_problem()
    screened = {}
    result = refine._FlatSearch.result

    def keep_screened(self, *args):
        screened["n"] = self.n_screened
        return result(self, *args)

    monkeypatch.setattr(refine._FlatSearch, "result", keep_screened)
    masked = refine.refine_swaps(pool, start, fs, target, max_rounds=6, max_fail=64)
    n_masked = screened["n"]
    monkeypatch.setattr(kernels, "feature_masks", lambda *a: np.zeros(0, dtype=np.int64))
    compared = refine.refine_swaps(pool, start, fs, target, max_rounds=6, max_fail=64)
    monkeypatch.setattr(refine._FlatSearch, "screen_margin", property(lambda self: -1.0))
    exact = refine.refine_swaps(pool, start, fs, target, max_rounds=6, max_fail=64)
    assert exact.n_swaps > 50 and n_masked > exact.n_swaps and screened["n"] == 0
    for res in (masked, compared):
        np.testing.assert_array_equal(res.swaps, exact.swaps)
        np.testing.assert_array_equal(res.trace, exact.trace)
        np.testing.assert_array_equal(res.rows, exact.rows)
        assert (res.n_recomputations, res.n_evaluations, res.n_rounds) == (
            exact.n_recomputations, exact.n_evaluations, exact.n_rounds)


def test_feature_masks_name_each_features_columns():
    from synth_core.select import _kernels as kernels

    fs = features.build_feature_set(N_BINS, [(0, 2), (1, 3)], [(0, 1, 4)])
    masks = kernels.feature_masks(fs.cols, fs.arity, len(N_BINS))
    expected = [1 << c for c in range(len(N_BINS))] + [0b101, 0b1010, 0b10011]
    assert masks.tolist() == expected
    assert kernels.feature_masks(fs.cols, fs.arity, 64).size == 0  # too wide: cells are compared


def test_refine_swaps_identical_for_any_thread_count_and_speculation():
    """The search may compute gains ahead in parallel calls (``speculate``); the swaps, their
    order, the trace and the counters are the same on one thread or two, with or without it."""
    from tests.threads import runs_by_threads

    pool, fs, target, start = _mixed_problem()
    runs = runs_by_threads(
        lambda speculate: refine.refine_swaps(pool, start, fs, target, max_rounds=6, speculate=speculate))
    base = runs[1, False]
    assert base.n_swaps > 50 and base.n_recomputations > 1000 and base.n_ahead == 0
    for key, res in runs.items():
        np.testing.assert_array_equal(res.swaps, base.swaps, err_msg=str(key))
        np.testing.assert_array_equal(res.trace, base.trace, err_msg=str(key))
        np.testing.assert_array_equal(res.rows, base.rows, err_msg=str(key))
        assert (res.n_recomputations, res.n_evaluations, res.n_rounds) == (
            base.n_recomputations, base.n_evaluations, base.n_rounds), key
        # speculation ran: at least as many gains computed ahead as recomputations it served
        assert (res.n_ahead >= res.n_recomputations) if key[1] else res.n_ahead == 0, key


def test_refinement_eta_respects_the_round_cap(monkeypatch, caplog):
    from synth_core.select import _progress as progress
    from synth_core.select._features import build_feature_set
    from synth_core.select._objective import target_counts
    from synth_core.select.flat._refine import refine_swaps

    monkeypatch.setattr(progress, "DEFAULT_EVERY_S", 0.0)
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 5, (3000, 4)).astype(np.uint8)
    train = np.minimum(rng.geometric(0.4, (500, 4)) - 1, 4).astype(np.uint8)
    fs = build_feature_set(np.full(4, 5), [(0, 1), (2, 3)])
    with caplog.at_level(logging.INFO, logger="synth_core.select.flat._refine"):
        refine_swaps(codes, np.arange(300), fs, target_counts(train, fs, 300), max_swaps=1_000_000, max_rounds=2,
                     swaps_per_round=256)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refine: ")]
    assert lines and all("/512 swaps" in line and "rounds_done=" in line for line in lines)
