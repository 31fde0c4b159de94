"""Selection core: features, objective, MI, IPF, trimming, swap refinement."""

from __future__ import annotations

from math import log

import numpy as np
import pytest

from synth_core.errors import InputError
from synth_core.select import _features as features
from synth_core.select import _mi as mi
from synth_core.select import _objective as obj
from synth_core.select.flat import _ipf as ipf
from synth_core.select.flat import _refine as refine
from synth_core.select.flat import _trim as trim

N_BINS = np.array([4, 3, 5, 4, 3, 4])


def latent_codes(n: int, rng: np.random.Generator, noise: float = 0.25) -> np.ndarray:
    """Codes with structure: a latent class drives every column, plus uniform noise."""
    z = rng.integers(0, 3, n)
    out = np.empty((n, N_BINS.size), dtype=np.uint8)
    for j, nb in enumerate(N_BINS):
        noisy = rng.random(n) < noise
        out[:, j] = np.where(noisy, rng.integers(0, nb, n), (z + j) % nb)
    return out


def uniform_codes(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.stack([rng.integers(0, nb, n) for nb in N_BINS], axis=1).astype(np.uint8)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(123)
    train = latent_codes(1500, rng)
    other = uniform_codes(3000, rng)
    pool = np.ascontiguousarray(np.concatenate([train, other]))
    pairs = mi.top_pairs(train, N_BINS).pairs
    triples = mi.top_triples(train, N_BINS).triples
    fs = features.build_feature_set(N_BINS, pairs, triples)
    return {"train": train, "pool": pool, "fs": fs, "pairs": pairs}


def pair_l1(codes, rows, train, pairs, weights=None):
    """Mean over pairs of the L1 distance between the normalised pair tables."""
    fs = features.build_feature_set(N_BINS, pairs, include_uni=False)
    target = obj.target_counts(train, fs, 1.0)
    if weights is not None:
        counts = obj.cell_counts(codes, fs, weights=weights)
    else:
        counts = obj.subset_counts(codes, rows, fs)
    return obj.feature_errors(counts, target, fs)


# ---------------------------------------------------------------------------------- features


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


# --------------------------------------------------------------------------------- objective


def test_objective_matches_hand_computation():
    fs = features.build_feature_set(np.array([2, 2]), [(0, 1)])
    train = np.array([[0, 0], [0, 1], [1, 1], [1, 1]], dtype=np.uint8)
    subset = np.array([[0, 0], [1, 1]], dtype=np.uint8)
    target = obj.target_counts(train, fs, 2)
    np.testing.assert_allclose(target, [1, 1, 0.5, 1.5, 0.5, 0.5, 0, 1])
    counts = obj.cell_counts(subset, fs)
    # uni0: |.5-.5|+|.5-.5| = 0; uni1: |.5-.25|+|.5-.75| = .5; pair: .25+.25+0+.5... per cell
    # pair q = [.5, 0, 0, .5], p = [.25, .25, 0, .5] -> .25 + .25 = .5
    errs = obj.feature_errors(counts, target, fs)
    np.testing.assert_allclose(errs, [0.0, 0.5, 0.5])
    assert obj.objective(counts, target, fs) == pytest.approx(0.5 * (0 + 0.5) / 2 + 0.5 * 0.5)
    np.testing.assert_allclose(obj.feature_accuracies(counts, target, fs), [1.0, 0.75, 0.75])
    assert obj.phase_accuracies(counts, target, fs) == {"uni": pytest.approx(0.875), "bi": pytest.approx(0.75)}
    # equal sizes: objective == count_error / N_target
    assert obj.count_error(counts, target, fs) / 2 == pytest.approx(obj.objective(counts, target, fs))


def test_weighted_target_equals_replicated_rows():
    rng = np.random.default_rng(5)
    fs = features.build_feature_set(N_BINS, [(0, 1), (2, 3)], [(0, 1, 2)])
    train = uniform_codes(40, rng)
    reps = rng.integers(1, 4, 40)
    weighted = obj.target_counts(train, fs, 100, weights=reps.astype(float))
    replicated = obj.target_counts(np.repeat(train, reps, axis=0), fs, 100)
    np.testing.assert_allclose(weighted, replicated)


# ------------------------------------------------------------------------------------------ MI


def test_mi_equals_hand_computation_and_ranking():
    # columns 0,1: table [[3,1],[1,3]]; column 2 independent of both by construction
    base = np.array([[0, 0]] * 3 + [[0, 1]] + [[1, 0]] + [[1, 1]] * 3)
    codes = np.concatenate([np.column_stack([base, np.zeros(8)]), np.column_stack([base, np.ones(8)])])
    codes = codes.astype(np.uint8)
    nb = np.array([2, 2, 2])
    expected = 2 * (3 / 8) * log((3 / 8) / 0.25) + 2 * (1 / 8) * log((1 / 8) / 0.25)
    m = mi.pairwise_mi(codes, nb)
    assert m[0, 1] == pytest.approx(expected, abs=1e-12)
    assert m[1, 0] == m[0, 1]
    assert m[0, 2] == pytest.approx(0.0, abs=1e-12) and m[1, 2] == pytest.approx(0.0, abs=1e-12)
    ranking = mi.top_pairs(codes, nb)
    np.testing.assert_array_equal(ranking.pairs, [[0, 1], [0, 2], [1, 2]])  # tie (0,2)/(1,2) by index
    assert ranking.mi[0] == pytest.approx(expected)
    assert mi.top_pairs(codes, nb, k=1).pairs.shape == (1, 2)
    # weights act like replicated rows
    w = np.arange(1, 17, dtype=float) % 3 + 1
    mw = mi.pairwise_mi(codes, nb, weights=w)
    mr = mi.pairwise_mi(np.repeat(codes, w.astype(int), axis=0), nb)
    np.testing.assert_allclose(mw, mr, atol=1e-12)


def test_mi_of_independent_columns_is_near_zero():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, (200_000, 3)).astype(np.uint8)
    m = mi.pairwise_mi(codes, np.array([4, 4, 4]))
    # plug-in bias ~ (4-1)^2 / (2 n) = 2.3e-5
    assert m[np.triu_indices(3, 1)].max() < 2e-4


def test_top_triples_all_when_few_else_top_k(data):
    train = data["train"]
    m = mi.pairwise_mi(train, N_BINS)
    tr = mi.top_triples(train, N_BINS)
    assert tr.triples.shape == (20, 3)  # C(6, 3) <= 2000 -> all
    a, b, c = tr.triples.T
    np.testing.assert_allclose(tr.score, m[a, b] + m[a, c] + m[b, c])
    assert np.all(np.diff(tr.score) <= 0)
    few = mi.top_triples(None, N_BINS, mi_matrix=m, max_default=5)
    np.testing.assert_array_equal(few.triples, tr.triples[:5])


# ----------------------------------------------------------------------------------------- IPF


def test_ipf_fits_pair_tables_when_pool_contains_a_perfect_subset(data):
    train, pool, pairs = data["train"], data["pool"], data["pairs"]
    n_train = train.shape[0]
    res = ipf.fit_weights(pool, train, N_BINS, pairs, total=n_train, tol=1e-3, max_sweeps=50)
    assert res.converged and res.stop_reason == "converged"
    assert res.weights.sum() == pytest.approx(n_train)
    assert res.errors[-1] < res.errors[0] / 20
    # weighted pair tables match the training tables: L1 per pair < 0.002 (mean) / 0.005 (max)
    # (a random pool subset is at ~0.6)
    l1_w = pair_l1(pool, None, train, pairs, weights=res.weights)
    assert l1_w.mean() < 0.002 and l1_w.max() < 0.005

    rows = ipf.integerise(res.weights, n_train, np.random.default_rng(3), oversize=1.0)
    assert rows.shape == (n_train,) and np.all(np.diff(rows) > 0)
    rand = np.sort(np.random.default_rng(4).choice(pool.shape[0], n_train, replace=False))
    l1_int = pair_l1(pool, rows, train, pairs).mean()
    l1_rand = pair_l1(pool, rand, train, pairs).mean()
    assert l1_int < 0.3 * l1_rand
    # training rows (a third of the pool) are strongly over-represented
    assert np.mean(rows < n_train) > 0.55


def test_ipf_zero_target_cells_drive_weights_to_zero():
    rng = np.random.default_rng(2)
    train = uniform_codes(500, rng)
    train[:, 1] = np.where(train[:, 0] == 0, 0, train[:, 1])  # (0, b>0) never occurs
    pool = uniform_codes(2000, rng)
    res = ipf.fit_weights(pool, train, N_BINS, [(0, 1)], max_sweeps=5)
    impossible = (pool[:, 0] == 0) & (pool[:, 1] > 0)
    assert np.all(res.weights[impossible] == 0)
    assert res.weights[~impossible].min() > 0


def test_integerise_properties():
    rng = np.random.default_rng(0)
    w = rng.random(10_000) ** 3
    w[:50] = 1e3  # heavy rows: capped at one use, taken for certain
    w[50:2000] = 0.0
    rows = ipf.integerise(w, 2000, 11, oversize=1.25)
    assert rows.shape == (2500,) and np.unique(rows).size == 2500
    assert np.all(np.isin(np.arange(50), rows))
    assert not np.any((rows >= 50) & (rows < 2000))
    # expectation-preserving: inclusion frequency ~ min(1, c w)
    pi = ipf.inclusion_probabilities(w, 2500)
    assert pi.sum() == pytest.approx(2500) and pi.max() == 1.0
    hits = np.zeros(w.size)
    for s in range(200):
        hits[ipf.integerise(w, 2000, s, oversize=1.25)] += 1
    big = pi > 0.3
    np.testing.assert_allclose(hits[big] / 200, pi[big], atol=0.15)
    assert abs(hits.sum() / 200 - 2500) < 1e-9
    # fewer positive rows than needed: all positive rows plus a random fill
    w2 = np.zeros(100)
    w2[:10] = 1.0
    rows2 = ipf.integerise(w2, 20, 0, oversize=1.0)
    assert rows2.size == 20 and np.all(np.isin(np.arange(10), rows2))


# ---------------------------------------------------------------------------------------- trim


def test_removal_and_addition_gains_are_exact_objective_changes(data):
    pool, fs = data["pool"], data["fs"]
    rng = np.random.default_rng(8)
    subset = np.sort(rng.choice(pool.shape[0], 800, replace=False))
    target = obj.target_counts(data["train"], fs, 700)
    counts = obj.subset_counts(pool, subset, fs)
    base = obj.count_error(counts, target, fs)
    gains = obj.removal_gains(pool, subset, fs, counts, target)
    for i in (0, 17, 400, 799):
        after = obj.subset_counts(pool, np.delete(subset, i), fs)
        assert gains[i] == pytest.approx(base - obj.count_error(after, target, fs), abs=1e-12)
    outside = np.setdiff1d(np.arange(pool.shape[0]), subset)[[0, 5, 900]]
    add = obj.addition_gains(pool, outside, fs, counts, target)
    for g, r in zip(add, outside):
        after = obj.subset_counts(pool, np.append(subset, r), fs)
        assert g == pytest.approx(base - obj.count_error(after, target, fs), abs=1e-12)
    # weighted rows: the row's weight replaces 1
    rw = rng.random(pool.shape[0]) + 0.5
    wcounts = obj.subset_counts(pool, subset, fs, weights=rw)
    wbase = obj.count_error(wcounts, target, fs)
    wg = obj.removal_gains(pool, subset, fs, wcounts, target, row_weights=rw)
    after = obj.subset_counts(pool, subset[1:], fs, weights=rw)
    assert wg[0] == pytest.approx(wbase - obj.count_error(after, target, fs), abs=1e-12)


def test_trim_reaches_target_and_beats_random(data):
    pool, fs, train = data["pool"], data["fs"], data["train"]
    n_target = 1200
    res_ipf = ipf.fit_weights(pool, train, N_BINS, data["pairs"], total=1500)
    over = ipf.integerise(res_ipf.weights, n_target, 5, oversize=1.25)
    assert over.size == 1500
    target = obj.target_counts(train, fs, n_target)
    res = trim.trim_to_size(pool, over, fs, target, n_target)
    assert res.rows.shape == (n_target,)
    assert np.all(np.isin(res.rows, over)) and np.all(np.diff(res.rows) > 0)
    assert res.removed.size == 300 and np.intersect1d(res.removed, res.rows).size == 0
    # reported counts / objective / incremental error agree with a recomputation
    fresh = obj.subset_counts(pool, res.rows, fs)
    np.testing.assert_array_equal(res.counts, fresh)
    assert res.objective == pytest.approx(obj.objective(fresh, target, fs))
    assert res.count_error == pytest.approx(obj.count_error(fresh, target, fs), rel=1e-9)
    assert res.count_error / n_target == pytest.approx(res.objective, rel=1e-9)
    rand_objs = [
        obj.objective(obj.subset_counts(pool, np.random.default_rng(s).choice(over, n_target, replace=False), fs),
                      target, fs)
        for s in range(5)
    ]
    assert res.objective < 0.5 * min(rand_objs)
    assert np.all(np.diff(res.trace) < 0)  # every batch lowers the count error


def test_trim_batch_mode_reaches_target_and_keeps_exact_books(data):
    pool, fs, train = data["pool"], data["fs"], data["train"]
    # 1,200 training rows + 300 rows of the other distribution
    over = np.concatenate([np.arange(1200), 1500 + np.arange(300)])
    target = obj.target_counts(train, fs, 1000)
    exact = trim.trim_to_size(pool, over, fs, target, 1000)
    batch = trim.trim_to_size(pool, over, fs, target, 1000, exact=False, batch_fraction=0.3)
    assert batch.rows.shape == (1000,) and batch.n_reevaluations == 500
    fresh = obj.subset_counts(pool, batch.rows, fs)
    np.testing.assert_array_equal(batch.counts, fresh)
    assert batch.count_error == pytest.approx(obj.count_error(fresh, target, fs), rel=1e-9)
    rand = obj.objective(obj.subset_counts(pool, np.random.default_rng(6).choice(over, 1000, replace=False), fs),
                         target, fs)
    assert exact.objective <= batch.objective < 0.5 * rand


def test_trim_lazy_greedy_equals_naive_greedy():
    """Batches + lazy evaluation give exactly the one-row-at-a-time greedy sequence."""
    rng = np.random.default_rng(9)
    fs = features.build_feature_set(N_BINS, [(0, 1), (2, 3), (1, 4)], [(0, 1, 2)])
    train = latent_codes(300, rng)
    pool = np.concatenate([latent_codes(60, rng, noise=0.5), uniform_codes(60, rng)])
    target = obj.target_counts(train, fs, 70)
    subset = np.arange(pool.shape[0])
    res = trim.trim_to_size(pool, subset, fs, target, 70, batch_fraction=0.5)
    alive = list(subset)
    order = []
    while len(alive) > 70:
        counts = obj.subset_counts(pool, np.array(alive), fs)
        g = obj.removal_gains(pool, np.array(alive), fs, counts, target)
        k = int(np.argmax(g))  # first maximum = smallest row (alive is sorted)
        order.append(alive.pop(k))
    np.testing.assert_array_equal(res.removed, order)


# -------------------------------------------------------------------------------------- refine


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
    assert res.count_error == pytest.approx(obj.count_error(obj.subset_counts(pool, res.rows, fs), target, fs), rel=1e-9)
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


def test_partial_gains_sum_to_the_full_gains(data):
    pool, fs = data["pool"], data["fs"]
    subset = np.arange(900)
    target = obj.target_counts(data["train"], fs, 900)
    resid = obj.subset_counts(pool, subset, fs) - target
    full = np.empty(pool.shape[0])
    obj.gains_from_resid(pool, fs, resid, np.zeros(0), +1, full)
    parts = np.zeros(pool.shape[0])
    for arity in (1, 2, 3):
        out = np.empty(pool.shape[0])
        obj.partial_gains(pool, fs, resid, np.zeros(0), +1, np.flatnonzero(fs.arity == arity), out)
        parts += out
    np.testing.assert_allclose(parts, full, atol=1e-12)


def test_default_triple_count_by_width():
    assert mi.default_triple_count(6) == 20
    assert mi.default_triple_count(23) == 1771  # all while C(d, 3) <= 2,000
    assert mi.default_triple_count(24) == 2000
    assert mi.default_triple_count(50) == 2000  # C(50, 3) = 19,600
    assert mi.default_triple_count(51) == 0
    assert mi.default_triple_count(80) == 0
    m = np.random.default_rng(0).random((60, 60))
    m = m + m.T
    assert mi.top_triples(None, np.full(60, 4), mi_matrix=m).triples.shape == (0, 3)
    assert mi.top_triples(None, np.full(60, 4), k=7, mi_matrix=m).triples.shape == (7, 3)


def test_progress_lines_are_rate_limited():
    import logging

    from synth_core.select._progress import Progress

    now = [0.0]
    records = []

    class Sink(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("test.progress")
    logger.setLevel(logging.INFO)
    logger.addHandler(Sink())
    p = Progress(logger, "work", total=100, unit="items", every_s=5.0, clock=lambda: now[0])
    for step in range(1, 101):
        now[0] = step * 0.5  # one item every half second
        p.update(step, objective=0.25)
    assert len(records) == 10  # one line per 5 s of 50 s
    assert records[0] == "work: 10/100 items (10%), 2.0 items/s, 5 s, ETA 45 s, objective=0.25"


def test_budgets_follow_problem_size():
    from synth_core.select.flat import _pipeline as select
    def problem(n_pool, n_cols, n_target, pairs):
        fs = features.build_feature_set(np.full(n_cols, 11), pairs)
        return select.SelectionProblem(binner=None, train_codes=None, pool_codes=np.zeros((n_pool, 1), np.uint8),
                                       n_target=n_target, columns=[], pairs=np.asarray(pairs), feature_set=fs)

    wide_pairs = features.all_pairs(80)
    settings = select.SelectionSettings()
    big = problem(2_500_000, 80, 100_000, wide_pairs)
    small = problem(250_000, 80, 100_000, wide_pairs)
    census = problem(500_000, 15, 24_421, features.all_pairs(15))
    assert select.ipf_sweeps(big, settings) == 5 and select.ipf_sweeps(small, settings) == 20
    assert select.ipf_sweeps(census, settings) == 20
    plan_big, plan_small, plan_census = (select.refine_plan(p, settings) for p in (big, small, census))
    assert plan_big.prefilter == 308_642 and plan_big.max_reevals == 2 and 1 <= plan_big.max_rounds < 20
    assert plan_small.prefilter is None and plan_small.max_reevals == 16 and plan_small.max_rounds == 17
    assert plan_census == select.RefinePlan(max_rounds=20, prefilter=None, max_reevals=16)
    assert select.trim_exact(big, 125_000, settings) and select.trim_exact(census, 30_526, settings)
    assert not select.trim_exact(big, 200_000, select.SelectionSettings(trim_exact=False))
    assert select.refine_plan(big, select.SelectionSettings(refine_prefilter=0)).prefilter is None
    assert select.refine_plan(big, select.SelectionSettings(max_rounds=0)).max_rounds == 0


# ------------------------------------------------------------------------------- determinism


def test_pipeline_is_deterministic_under_a_seed(data):
    pool, fs, train = data["pool"], data["fs"], data["train"]
    target = obj.target_counts(train, fs, 1000)

    def run(seed):
        res = ipf.fit_weights(pool, train, N_BINS, data["pairs"], total=1250)
        over = ipf.integerise(res.weights, 1000, seed)
        t = trim.trim_to_size(pool, over, fs, target, 1000)
        r = refine.refine_swaps(pool, t.rows, fs, target, max_swaps=200)
        return res.weights, over, t.rows, r.rows, r.trace

    first, second = run(7), run(7)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    other = run(8)
    assert not np.array_equal(first[1], other[1])


def test_refine_swaps_identical_for_any_thread_count_and_speculation():
    """The search may compute gains ahead in parallel calls (``speculate``); the swaps, their
    order, the trace and the counters are the same on one thread or two, with or without it."""
    from tests.threads import runs_by_threads

    rng = np.random.default_rng(8)
    train = latent_codes(1500, rng, noise=0.3)
    pool = np.ascontiguousarray(np.concatenate([latent_codes(3000, rng, noise=0.6), uniform_codes(1000, rng)]))
    fs = features.build_feature_set(N_BINS, mi.top_pairs(train, N_BINS, k=10).pairs,
                                    mi.top_triples(train, N_BINS, k=8).triples)
    target = obj.target_counts(train, fs, 300)
    start = np.sort(rng.choice(pool.shape[0], size=300, replace=False))
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
