"""``synth select --epsilon``: differentially private selection through the real CLI."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest

from synth_core.cli import main
from synth_core.dp import PrivacyBudget


@pytest.fixture(scope="module")
def files(tmp_path_factory, census_paths):
    root = tmp_path_factory.mktemp("select_dp")
    training = pd.read_csv(census_paths["training"]).sample(n=2000, random_state=0).reset_index(drop=True)
    rng = np.random.default_rng(5)
    pool = pd.read_csv(census_paths["holdout"]).sample(n=10_000, random_state=2, replace=True).reset_index(drop=True)
    pool["age"] = pool["age"] + rng.integers(-6, 7, len(pool))
    paths = {"root": root, "training": root / "training.csv", "pool": root / "pool.parquet"}
    training.to_csv(paths["training"], index=False)
    pool.to_parquet(paths["pool"])
    return paths


def _run(files, out, *extra):
    return main(["select", "--training", str(files["training"]), "--pool", str(files["pool"]), "--output", str(out),
                 "--size", "1500", "--force", *extra])


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_dp_select_reports_the_budget_and_is_deterministic(files, capsys):
    root = files["root"]
    assert _run(files, root / "plain.csv", "--no-privacy-guard") in (0, 3)
    capsys.readouterr()
    assert _run(files, root / "dp0.csv", "--epsilon", "4", "--delta", "1e-6", "--json") in (0, 3)
    report = json.loads(capsys.readouterr().out)
    assert _run(files, root / "dp1.csv", "--epsilon", "4", "--delta", "1e-6") in (0, 3)
    text = capsys.readouterr().out
    assert _run(files, root / "dp_seed1.csv", "--epsilon", "4", "--seed", "1") in (0, 3)
    capsys.readouterr()
    assert _digest(root / "dp0.csv") == _digest(root / "dp1.csv")
    assert _digest(root / "dp0.csv") != _digest(root / "dp_seed1.csv")
    assert _digest(root / "dp0.csv") != _digest(root / "plain.csv")
    dp = report["differential_privacy"]
    budget = PrivacyBudget(4.0, 1e-6, generator="engine")
    assert dp["selection_rho"] == pytest.approx(budget.selection_rho)
    # a pool file of unknown provenance: selection's own guarantee, never the budget's total
    assert dp["epsilon"] is None and dp["generator_source"] is None
    assert dp["selection_epsilon"] == pytest.approx(2.0) and dp["selection_delta"] == pytest.approx(5e-7)
    assert dp["selection_sigma"] == pytest.approx(math.sqrt(dp["tables"]) / math.sqrt(2 * dp["selection_rho"]))
    assert dp["tables"] == 15 + 105  # census: 15 columns' margins + all their pairs, no triples in DP mode
    assert report["guard"] is None and dp["privacy_guard"] == "off"
    assert len(pd.read_csv(root / "dp0.csv")) == 1500
    assert "differential privacy: (ε, δ) = (2, 5e-07) for selection's use of training only" in text
    assert "depends on how the pool was made" in text and "σ = " in text and "ρ = " in text
    assert "(4, 1e-06) for the output" not in text


def test_a_stated_generator_epsilon_is_composed_on_its_condition(files, capsys):
    out = files["root"] / "stated.csv"
    assert _run(files, out, "--epsilon", "4", "--generator-epsilon", "1.5", "--json") in (0, 3)
    dp = json.loads(capsys.readouterr().out)["differential_privacy"]
    assert dp["generator_source"] == "stated" and dp["generator_epsilon"] == 1.5
    assert dp["epsilon"] == pytest.approx(3.5) and dp["delta"] == pytest.approx(1e-6)
    assert dp["statement"].startswith("(ε, δ) = (3.5, 1e-06) for the output if the pool is DP as stated")


def test_dp_select_without_size_uses_the_noisy_count(files, capsys):
    out = files["root"] / "dp_n.csv"
    assert main(["select", "--training", str(files["training"]), "--pool", str(files["pool"]), "--output", str(out),
                 "--epsilon", "8", "--force", "--json"]) in (0, 3)
    dp = json.loads(capsys.readouterr().out)["differential_privacy"]
    n = len(pd.read_csv(out))
    assert dp["size_from"] == "noisy estimate" and n == round(dp["noisy_n"])
    assert n != 2000 or abs(dp["noisy_n"] - 2000) < 0.5
    assert abs(n - 2000) < 5 * dp["selection_sigma"]


@pytest.mark.parametrize("args,option", [
    (["--epsilon", "0"], "--epsilon"), (["--epsilon", "-2"], "--epsilon"), (["--epsilon", "nan"], "--epsilon"),
    (["--epsilon", "1", "--delta", "1.5"], "--delta"), (["--epsilon", "1", "--delta", "0"], "--delta"),
    (["--epsilon", "1", "--dp-selection-share", "1"], "--dp-selection-share"), (["--delta", "1e-6"], "--delta"),
    (["--epsilon", "1", "--generator-epsilon", "-1"], "--generator-epsilon"),
    (["--epsilon", "1", "--group-key", "age"], "--epsilon"),
])
def test_dp_select_refuses_bad_budgets(files, capsys, args, option):
    out = files["root"] / "refused.csv"
    assert main(["select", "--training", str(files["training"]), "--pool", str(files["pool"]), "--output", str(out),
                 *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and option in err
    assert not out.exists()
