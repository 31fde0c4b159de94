"""The zCDP accountant against the closed form, and the Gaussian mechanism's noise scale."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synth_core.dp import (
    NoisyTargets,
    PrivacyBudget,
    PrivacyStatement,
    compose_rho,
    epsilon_to_rho,
    gaussian_release,
    gaussian_rho,
    gaussian_sigma,
    noise_rng,
    rho_to_epsilon,
)
from synth_core.errors import InputError
from synth_core.select._features import build_feature_set


@pytest.mark.parametrize("rho,delta", [(0.01, 1e-6), (0.5, 1e-5), (2.0, 1e-9), (0.0, 1e-6)])
def test_rho_to_epsilon_is_the_closed_form(rho, delta):
    assert rho_to_epsilon(rho, delta) == pytest.approx(rho + 2 * math.sqrt(rho * math.log(1 / delta)), rel=1e-12)


@pytest.mark.parametrize("eps,delta", [(1.0, 1e-6), (4.0, 1e-6), (16.0, 1e-6), (0.1, 1e-3), (50.0, 1e-12)])
def test_epsilon_to_rho_inverts_the_closed_form(eps, delta):
    rho = epsilon_to_rho(eps, delta)
    assert rho > 0
    assert rho_to_epsilon(rho, delta) == pytest.approx(eps, rel=1e-10)
    # the largest such rho: a little more overspends
    assert rho_to_epsilon(rho * 1.001, delta) > eps


def test_known_values():
    # ε = 1, δ = 1e-6: √ρ = √(L+1) − √L with L = 6 ln 10
    L = 6 * math.log(10)
    assert epsilon_to_rho(1.0, 1e-6) == pytest.approx((math.sqrt(L + 1) - math.sqrt(L)) ** 2, rel=1e-12)
    assert epsilon_to_rho(1.0, 1e-6) == pytest.approx(0.01749, abs=1e-4)


def test_composition_and_gaussian_conversions():
    assert compose_rho(0.1, 0.2, 0.05) == pytest.approx(0.35)
    sigma = gaussian_sigma(0.125, math.sqrt(16))
    assert sigma == pytest.approx(4 / math.sqrt(0.25))
    assert gaussian_rho(sigma, 4.0) == pytest.approx(0.125)
    with pytest.raises(InputError):
        gaussian_sigma(0.0, 1.0)
    with pytest.raises(InputError):
        compose_rho(0.1, -0.1)


def test_budget_split_and_composed_statement():
    b = PrivacyBudget(epsilon=4.0, delta=1e-6, generator="engine")
    assert b.selection_share == 0.5
    assert b.selection_epsilon + b.generator_epsilon == pytest.approx(4.0)
    assert b.selection_delta + b.generator_delta == pytest.approx(1e-6)
    assert rho_to_epsilon(b.selection_rho, b.selection_delta) == pytest.approx(2.0, rel=1e-10)
    s = PrivacyStatement(b.selection_rho, b.selection_delta, 1.0, generator_epsilon=1.7, generator_delta=5e-7)
    assert s.epsilon == pytest.approx(3.7, rel=1e-9)
    assert s.delta == pytest.approx(1e-6)
    assert PrivacyStatement(b.selection_rho, b.selection_delta, 1.0, None, None).epsilon is None


def test_a_statement_says_what_it_covers_by_where_the_generators_spend_comes_from():
    b = PrivacyBudget(epsilon=1.0, delta=1e-6, generator="engine")
    gen = (b.generator_epsilon, b.generator_delta)
    unknown = PrivacyStatement(b.selection_rho, b.selection_delta, 1.0, None, None, generator_budget=gen)
    # the pool's provenance unknown: selection's own guarantee, never the budget's total
    assert unknown.headline().startswith("(ε, δ) = (0.5, 5e-07) for selection's use of training only")
    assert "depends on how the pool was made" in unknown.headline() and "(1, 1e-06)" in unknown.headline()
    recorded = PrivacyStatement(b.selection_rho, b.selection_delta, 1.0, *gen, generator_source="pool record")
    assert recorded.headline().startswith("(ε, δ) = (1, 1e-06) for the output: generator (0.5, 5e-07, recorded")
    stated = PrivacyStatement(b.selection_rho, b.selection_delta, 1.0, *gen, generator_source="stated")
    assert stated.headline().startswith("(ε, δ) = (1, 1e-06) for the output if the pool is DP as stated")
    assert "not verified" in stated.covers
    assert recorded.to_dict()["statement"] == recorded.headline()
    with pytest.raises(InputError):
        PrivacyStatement(b.selection_rho, b.selection_delta, 1.0, 0.5, None)
    with pytest.raises(InputError):
        PrivacyStatement(b.selection_rho, b.selection_delta, 1.0, *gen, generator_source="a rumour")


@pytest.mark.parametrize("bad", [{"epsilon": 0}, {"epsilon": -1}, {"epsilon": float("inf")}, {"epsilon": 1, "delta": 0},
                                 {"epsilon": 1, "delta": 1.0}, {"epsilon": 1, "selection_share": 1.0},
                                 {"epsilon": 1, "selection_share": 0}, {"epsilon": 1, "sigma": 2}, {"delta": 1e-6},
                                 {"epsilon": "4"}])
def test_budget_refuses_bad_settings(bad):
    with pytest.raises(InputError):
        PrivacyBudget.from_dict(bad)


def test_the_marginal_model_spends_the_whole_budget_and_selection_none():
    b = PrivacyBudget.from_dict({"epsilon": 2, "delta": 1e-6})
    assert b.generator == "marginal" and not b.selection_spends
    assert (b.generator_epsilon, b.generator_delta) == (2.0, 1e-6)
    assert b.selection_rho == b.selection_epsilon == b.selection_delta == 0.0
    s = PrivacyStatement(b.selection_rho, b.selection_delta, 0.0, b.generator_epsilon, b.generator_delta,
                         generator_source="marginal model")
    assert s.epsilon == 2.0 and s.delta == 1e-6
    assert s.headline().startswith("(ε, δ) = (2, 1e-06) for the output: generator (2, 1e-06, spent by this run's "
                                   "DP marginal model) + selection (0, 0")
    # a share for selection means the engine's split; with the marginal model it is refused
    assert PrivacyBudget.from_dict({"epsilon": 2, "selection_share": 0.25}).generator == "engine"
    with pytest.raises(InputError, match="selection_share applies to generator: engine only"):
        PrivacyBudget.from_dict({"epsilon": 2, "selection_share": 0.25, "generator": "marginal"})
    with pytest.raises(InputError, match="privacy generator must be one of marginal, engine"):
        PrivacyBudget.from_dict({"epsilon": 2, "generator": "gan"})


def test_budget_absent_means_non_dp():
    assert PrivacyBudget.from_dict(None) is None
    assert PrivacyBudget.from_dict({"epsilon": 4, "delta": 1e-6}) == PrivacyBudget(4, 1e-6)


def _noise_std(rho: float, n_tables: int, draws: int, seed: int) -> tuple[float, float]:
    counts = np.zeros(draws)
    noisy, sigma, delta = gaussian_release(counts, n_tables, rho, np.random.default_rng(seed))
    assert delta == pytest.approx(math.sqrt(n_tables))
    return float(np.sqrt(np.mean(noisy ** 2))), sigma  # the mean is known (0): the RMS estimates σ


@pytest.mark.parametrize("rho,n_tables", [(0.01, 575), (0.5, 120), (4.0, 1)])
def test_released_noise_has_the_accountants_sigma(rho, n_tables):
    """The empirical noise scale equals Δ/√(2ρ): with 200k draws the RMS is within 1 % of σ (its
    relative standard error is 1/√(2·200k) = 0.16 %), so a σ 10 % off (a different ρ or Δ) fails."""
    rms, sigma = _noise_std(rho, n_tables, 200_000, seed=7)
    assert sigma == pytest.approx(math.sqrt(n_tables) / math.sqrt(2 * rho))
    assert abs(rms / sigma - 1) < 0.01
    assert abs(rms / (1.1 * sigma) - 1) > 0.05 and abs(rms / (0.9 * sigma) - 1) > 0.05
    # chi-square: sum (x/σ)² over N draws ~ χ²_N: within 5 standard deviations (√(2N))
    n = 200_000
    chi2 = n * (rms / sigma) ** 2
    assert abs(chi2 - n) < 5 * math.sqrt(2 * n)
    assert abs(n * (rms / (1.1 * sigma)) ** 2 - n) > 5 * math.sqrt(2 * n)


def test_noisy_targets_noise_and_post_processing():
    """Targets of real tables: the released noise (release − true counts) has the stated σ, the
    clipped counts are non-negative, the total estimate is close to n, draws depend on the seed only."""
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, size=(5_000, 5)).astype(np.uint8)
    fs = build_feature_set([4] * 5, [(0, 1), (1, 2), (3, 4)], [(0, 1, 2)])
    from synth_core.select._objective import cell_counts

    true = cell_counts(codes, fs)
    noise = []
    for seed in range(40):
        noisy, sigma, delta = gaussian_release(true, fs.n_features, 0.05, noise_rng(seed))
        t = NoisyTargets.from_release(fs, noisy, 0.05, sigma, delta)
        assert t.counts.min() >= 0
        assert abs(t.n - 5_000) < 6 * sigma
        noise.append(noisy - true)
    noise = np.concatenate(noise)
    assert sigma == pytest.approx(math.sqrt(fs.n_features / 0.1))
    assert abs(noise.std() / sigma - 1) < 0.03
    a = gaussian_release(true, fs.n_features, 0.05, noise_rng(3))[0]
    assert np.array_equal(a, gaussian_release(true, fs.n_features, 0.05, noise_rng(3))[0])
    assert not np.array_equal(a, gaussian_release(true, fs.n_features, 0.05, noise_rng(4))[0])
    p = NoisyTargets.from_release(fs, a, 0.05, sigma, delta).target(100)
    assert np.allclose(np.add.reduceat(p, fs.offsets), 100)


def test_projection_removes_the_noise_mass_of_empty_cells():
    """A table with a few full cells and many empty ones: clipping keeps about 0.4 σ per empty cell,
    the projection gives the full cells back their share."""
    from synth_core.dp._mechanism import _onto_simplex

    rng = np.random.default_rng(1)
    true = np.zeros(100)
    true[:5] = 200.0
    noisy = true + rng.normal(0, 30, 100)
    proj = _onto_simplex(noisy, 1000.0)
    assert proj.min() >= 0 and proj.sum() == pytest.approx(1000.0)
    clipped = np.maximum(noisy, 0)
    err = lambda x: np.abs(x / x.sum() - true / true.sum()).sum()  # noqa: E731
    assert err(proj) < 0.5 * err(clipped)
    assert np.allclose(_onto_simplex(np.array([3.0, 1.0, 0.0]), 4.0), [3.0, 1.0, 0.0])
