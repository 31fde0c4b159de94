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
