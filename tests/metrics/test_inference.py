"""Inference risks (attribute inference, linkability, singling out) against a control set: the search by
hand, the risk's formula, determinism, and the teeth on census (a fair table against one that
holds copies of training rows)."""

from __future__ import annotations

import numpy as np
import pytest

from synth_core.metrics._inference import _count_fits, _describe, _nearest, _risk, inference_risks, singling_out
from synth_core.metrics._membership import Encoded


def _units(rng, n, n_cat=3, n_num=3, missing=0.1) -> Encoded:
    cat = rng.integers(0, 4, size=(n, n_cat)).astype(np.int64)
    num = rng.random((n, n_num))
    num[rng.random((n, n_num)) < missing] = np.nan
    return Encoded(cat, num)


def _brute_nearest(q: Encoded, r: Encoded, use_cat, use_num) -> np.ndarray:
    d = (q.cat[:, None, use_cat] != r.cat[None, :, use_cat]).sum(-1).astype(float)
    a, b = q.num[:, None, use_num], r.num[None, :, use_num]
    both = ~np.isnan(a) & ~np.isnan(b)
    d += np.where(both, (a - b) ** 2, 0.0).sum(-1) + (np.isnan(a) != np.isnan(b)).sum(-1)
    return d.argmin(axis=1)  # the first of equals, as the kernel


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nearest_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    q, r = _units(rng, 60), _units(rng, 300)
    for use_cat, use_num in (([0, 1, 2], [0, 1, 2]), ([1], [0, 2]), ([], [1]), ([0, 2], [])):
        use_cat, use_num = np.array(use_cat, np.int64), np.array(use_num, np.int64)
        assert np.array_equal(_nearest(q, r, use_cat, use_num), _brute_nearest(q, r, use_cat, use_num))


def test_risk_formula_by_hand():
    risk, var = _risk(0.6, 0.5, 1_000)
    assert risk == pytest.approx(0.2)
    # d/dm = 1 / 0.5, d/dc = (0.6 - 1) / 0.25
    assert var == pytest.approx(0.24 / 1_000 / 0.25 + 0.25 / 1_000 * 1.6**2)
    assert _risk(0.5, 0.5, 100)[0] == 0.0 and _risk(0.4, 0.5, 100)[0] < 0


def test_copies_raise_both_risks_and_fair_units_do_not():
    rng = np.random.default_rng(3)
    population = _units(rng, 6_000, n_cat=4, n_num=4, missing=0.0)
    take = lambda rows: Encoded(population.cat[rows], population.num[rows])  # noqa: E731
    members, controls, fresh = take(np.arange(2_000)), take(np.arange(2_000, 4_000)), take(np.arange(4_000, 6_000))
    fair = inference_risks(members, controls, fresh, seed=0)
    copied = Encoded(np.vstack([fresh.cat[:1_600], members.cat[:400]]),
                     np.vstack([fresh.num[:1_600], members.num[:400]]))
    leaky = inference_risks(members, controls, copied, seed=0)
    for name in ("attribute_inference", "linkability"):
        assert fair[name].risk_ci[0] <= 0 <= fair[name].risk_ci[1], (name, fair[name])
        assert leaky[name].risk_ci[0] > 0.05, (name, leaky[name])
    assert leaky["linkability"].members_rate > 0.15 > leaky["linkability"].controls_rate
    assert inference_risks(members, controls, copied, seed=0) == leaky  # same seed, same figures
    assert inference_risks(members, controls, copied, seed=1) != leaky
    assert inference_risks(members, controls, Encoded(fresh.cat[:0], fresh.num[:0])) == {}


def _brute_description(s: Encoded, i: int, order, window) -> int:
    """Length of the shortest prefix of ``order`` whose values fit no other unit (0: none does)."""
    alive = np.ones(s.n, dtype=bool)
    alive[i] = False
    for step, col in enumerate(order):
        if col < s.cat.shape[1]:
            fit = s.cat[:, col] == s.cat[i, col]
        else:
            a, b = s.num[i, col - s.cat.shape[1]], s.num[:, col - s.cat.shape[1]]
            fit = (np.isnan(a) & np.isnan(b)) if np.isnan(a) else (~np.isnan(b) & (np.abs(b - a) <= window))
        alive &= fit
        if not alive.any():
            return step + 1
    return 0


@pytest.mark.parametrize("seed", [0, 1])
def test_descriptions_and_their_fits_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    s, t = _units(rng, 400, n_cat=2, n_num=2), _units(rng, 300, n_cat=2, n_num=2)
    queries = rng.choice(s.n, 50, replace=False).astype(np.int64)
    order = np.argsort(rng.random((50, 4)), axis=1).astype(np.int64)
    length = np.zeros(50, dtype=np.int64)
    _describe(s.cat, s.num, queries, order, 0.05, length)
    assert [_brute_description(s, q, o, 0.05) for q, o in zip(queries, order)] == length.tolist()
    assert 0 < (length > 0).sum() < 50  # some units can be singled out, some cannot
    fits = np.zeros(50, dtype=np.int64)
    _count_fits(s.cat, s.num, queries, order, length, 0.05, t.cat, t.num, fits)
    for k, (q, o, n) in enumerate(zip(queries, order, length)):
        mask = np.ones(t.n, dtype=bool)
        for col in o[:n]:
            if col < 2:
                mask &= t.cat[:, col] == s.cat[q, col]
            else:
                a, b = s.num[q, col - 2], t.num[:, col - 2]
                mask &= (np.isnan(a) & np.isnan(b)) if np.isnan(a) else (~np.isnan(b) & (np.abs(b - a) <= 0.05))
        assert fits[k] == min(int(mask.sum()), 2)


def test_copies_can_be_singled_out_and_fair_units_cannot():
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        population = _units(rng, 6_000, n_cat=4, n_num=4, missing=0.0)
        take = lambda rows: Encoded(population.cat[rows], population.num[rows])  # noqa: E731
        members, controls, fresh = take(np.arange(2_000)), take(np.arange(2_000, 4_000)), take(np.arange(4_000, 6_000))
        fair = singling_out(members, controls, fresh, seed=0)
        assert fair.risk_ci[0] <= 0 <= fair.risk_ci[1], fair
        copied = Encoded(np.vstack([fresh.cat[400:], members.cat[:400]]),
                         np.vstack([fresh.num[400:], members.num[:400]]))
        leaky = singling_out(members, controls, copied, seed=0)
        assert leaky.risk_ci[0] > 0.05 and leaky.members_rate > leaky.controls_rate + 0.08, leaky
        assert singling_out(members, controls, copied, seed=0) == leaky
    assert singling_out(members, controls, Encoded(fresh.cat[:1], fresh.num[:1])) is None
