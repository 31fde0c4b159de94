"""synth_core.select.flat._pipeline: the stages chained (MI pairs, IPF, trimming, refinement), their
budgets by problem size, and determinism under a seed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from synth_core.select import _features as features
from synth_core.select import _objective as obj
from synth_core.select.flat import _ipf as ipf
from synth_core.select.flat import _refine as refine
from synth_core.select.flat import _trim as trim
from tests.select.codes import N_BINS


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
    # a round ends after pool rows / 128 failed candidates; the rounds' failure tails stay within 40,960
    assert plan_census == select.RefinePlan(max_rounds=10, prefilter=None, max_reevals=16, max_fail=3_906)
    assert plan_small.max_fail == 1_953 and plan_big.max_fail == 512
    tiny = problem(60_000, 15, 3_000, features.all_pairs(15))
    assert select.refine_plan(tiny, settings) == select.RefinePlan(max_rounds=20, prefilter=None, max_reevals=16)
    assert select.trim_exact(big, 125_000, settings) and select.trim_exact(census, 30_526, settings)
    assert not select.trim_exact(big, 200_000, select.SelectionSettings(trim_exact=False))
    assert select.refine_plan(big, select.SelectionSettings(refine_prefilter=0)).prefilter is None
    assert select.refine_plan(big, select.SelectionSettings(max_rounds=0)).max_rounds == 0


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


def test_ipf_keeps_the_start_when_raking_makes_the_draw_worse():
    """24 columns of 8 categories, 80 training rows: every pair table is sparse, raking zeroes
    almost every pool row and the rows drawn from its weights fit worse than a uniform draw."""
    from synth_core.select.flat import _pipeline as select
    from synth_core.select.flat._ipf import integerise

    rng = np.random.default_rng(1)
    training = pd.DataFrame({f"c{i}": rng.integers(0, 8, 80).astype(str) for i in range(24)})
    pool = pd.DataFrame({f"c{i}": rng.integers(0, 8, 1500).astype(str) for i in range(24)})
    settings = select.SelectionSettings()
    problem = select.stage_mi_pairs(select.make_problem(training, pool, 150), settings)
    uniform = integerise(np.ones(problem.n_pool), 150, settings.seed, oversize=settings.oversize)
    ipf = select.stage_ipf(problem, settings)
    assert ipf.objectives[-1] > ipf.objectives[0]  # the raking went wrong here ...
    assert problem.objective_of(ipf.rows) <= problem.objective_of(uniform)  # ... and IPF kept its start
    assert ipf.kept_sweep == 0 and np.array_equal(ipf.rows, uniform)


def test_wide_tables_keep_the_top_pairs_by_mutual_information():
    from synth_core.select import _mi as mi
    from synth_core.select.flat import _pipeline as select
    assert mi.default_pair_count(15) == 105 and mi.default_pair_count(80) == 3160
    assert mi.default_pair_count(300) == mi.DEFAULT_MAX_PAIRS == 3160
    rng = np.random.default_rng(0)
    base = rng.integers(0, 4, 200)
    training = pd.DataFrame({f"c{i:02d}": (base + (rng.random(200) < i / 90) * rng.integers(0, 4, 200)) % 4
                             for i in range(90)})  # 4,005 pairs; dependence falls with the index
    problem = select.stage_mi_pairs(select.make_problem(training, training, 100), select.SelectionSettings())
    assert len(problem.pairs) == 3160 and problem.feature_set.n_features == 90 + 3160
    assert np.all(np.diff(problem.pair_mi) <= 0)
    everything = mi.pairwise_mi(problem.train_codes, problem.binner.n_codes)[np.triu_indices(90, 1)]
    assert problem.pair_mi[-1] >= np.sort(everything)[::-1][3159]
