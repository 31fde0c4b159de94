"""The DP marginal model: it spends exactly its budget, learns the tables the metric compares when the
budget allows, and its samples are reproducible."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synth_core.dp import (
    MarginalSettings,
    declared_domain,
    fit_marginal_model,
    marginal_record,
    rho_to_epsilon,
    sample_marginal_model,
)
from synth_core.dp._marginal import coarse_codes
from synth_core.errors import InputError
from synth_core.metrics._evaluate import evaluate


def _correlated(n: int, seed: int) -> pd.DataFrame:
    """Three strongly linked columns and one independent one."""
    rng = np.random.default_rng(seed)
    level = rng.integers(0, 4, n)
    return pd.DataFrame({
        "level": np.array(["a", "b", "c", "d"])[level],
        "hours": (20 + 8 * level + rng.integers(0, 6, n)).astype(np.int64),
        "pay": np.round(1000.0 * (1 + level) * rng.lognormal(0.0, 0.1, n), 2),
        "coin": rng.choice(["h", "t"], n),
    })


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    training = _correlated(2000, 0)
    folder = tmp_path_factory.mktemp("marginal") / "model"
    record = fit_marginal_model(training, 8.0, 1e-6, folder, settings=MarginalSettings(rounds=3, iters=300, seed=0))
    return training, folder, record


def test_the_budget_is_spent_exactly_and_recorded(fitted):
    _, folder, rec = fitted
    assert rec["epsilon"] == 8.0 and rec["delta"] == 1e-6 and rec["domain"] == "private"
    # ρ at half of δ (the other half is the domain threshold's) states ε = 8 exactly
    assert rho_to_epsilon(rec["rho"], 5e-7) == pytest.approx(8.0)
    spent = rec["domain_release"]["rho"] + rec["one_way"]["rho"] + sum(
        1.0 / (2.0 * s * s) / (1.0 - 0.1) for s in rec["sigmas"])
    assert spent == pytest.approx(rec["rho"], rel=1e-9)
    assert rec["rounds"] == 3 and len(rec["measured"]) == 3 and len(rec["log"]) == 3
    stored = marginal_record(folder)
    assert stored["columns"] == ["level", "hours", "pay", "coin"] and stored["rho"] == rec["rho"]


def test_the_model_keeps_the_links_a_product_of_margins_loses(fitted):
    training, folder, _ = fitted
    holdout = _correlated(2000, 1)
    sample = sample_marginal_model(folder, 2000, seed=5)
    independent = pd.DataFrame({c: sample[c].sample(frac=1.0, random_state=i).to_numpy()
                                for i, c in enumerate(sample.columns)})
    linked = evaluate(training, sample, holdout, privacy=False).accuracy.to_dict()["bivariate"]
    broken = evaluate(training, independent, holdout, privacy=False).accuracy.to_dict()["bivariate"]
    assert linked > 0.85 and linked > broken + 0.15


def test_samples_are_reproducible(fitted, tmp_path):
    _, folder, _ = fitted
    a = sample_marginal_model(folder, 500, seed=3)
    assert a.equals(sample_marginal_model(folder, 500, seed=3))
    assert not a.equals(sample_marginal_model(folder, 500, seed=4))
    with pytest.raises(InputError, match="holds no marginal model"):
        sample_marginal_model(tmp_path, 10, seed=0)


def test_a_declared_domain_is_used_as_given(tmp_path):
    training = _correlated(600, 2)
    domain = declared_domain(training)
    record = fit_marginal_model(training, 4.0, 1e-6, tmp_path / "m", domain=domain,
                                settings=MarginalSettings(rounds=1, iters=100))
    assert record["domain"] == "declared" and record["domain_release"] is None
    assert rho_to_epsilon(record["rho"], 1e-6) == pytest.approx(4.0)


def test_coarse_codes_follow_the_metric_quantiles_and_top_categories():
    counts = np.array([50.0, 50, 50, 50, 200, 0, 0, 600])
    mapping = coarse_codes(counts, ordinal=True, n_values=8, bins=4)
    assert mapping.tolist() == sorted(mapping.tolist()) and mapping.max() <= 3
    assert mapping[7] != mapping[4]  # the big value is a group of its own
    cats = coarse_codes(np.array([5.0, 90, 1, 40, 3, 7]), ordinal=False, n_values=6, bins=2)
    assert cats[1] != cats[3] and len({cats[0], cats[2], cats[4], cats[5]}) == 1
    with_missing = coarse_codes(np.array([1.0, 2, 3, 9]), ordinal=True, n_values=3, bins=10)
    assert with_missing[3] == with_missing[:3].max() + 1


@pytest.mark.parametrize("bad", [{"domain_share": 0}, {"one_way_share": 1.0},
                                 {"domain_share": 0.5, "one_way_share": 0.5}, {"rounds": -1}, {"refit_every": 0}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(InputError):
        MarginalSettings(**bad)
