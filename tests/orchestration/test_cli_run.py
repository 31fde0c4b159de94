"""Running one dataset from the command line: ``dg`` on the project's definitions, and the
refusals of ``make run`` / ``python -m synth_orchestration.demo`` (one line, exit 2, nothing run).
No model is trained here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DG = Path(sys.executable).parent / "dg"


def _run(argv: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    # the project's venv as the active one: dg warns otherwise
    env = {**os.environ, "VIRTUAL_ENV": str(Path(sys.executable).parent.parent)}
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _one_line_refusal(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    return lines[0]


@pytest.fixture(scope="module")
def dg_cli() -> Path:
    if not DG.exists():
        pytest.skip("dg (dagster-dg-cli) is not installed in this environment")
    return DG


def test_dg_check_defs_loads_the_definitions(dg_cli):
    run = _run([str(dg_cli), "check", "defs"])
    assert run.returncode == 0, run.stderr
    assert "All definitions loaded successfully" in run.stdout + run.stderr


def test_dg_list_defs_lists_both_graphs_and_jobs(dg_cli):
    run = _run([str(dg_cli), "list", "defs", "--json"])
    assert run.returncode == 0, run.stderr
    for name in ("flat/refined_output", "sequential/refined_output", "flat_pipeline", "sequential_pipeline"):
        assert name in run.stdout


@pytest.fixture(scope="module")
def make() -> str:
    path = shutil.which("make")
    if path is None:
        pytest.skip("GNU make is not installed")
    return path


def test_make_run_without_dataset_says_how_to_call_it(make):
    line = _one_line_refusal(_run([make, "--no-print-directory", "run"]))
    assert "make run DATASET=NAME" in line


def test_make_run_with_unknown_dataset_names_the_known_ones(make):
    line = _one_line_refusal(_run([make, "--no-print-directory", "run", "DATASET=no_such_dataset"]))
    assert "unknown dataset 'no_such_dataset'" in line
    assert "known: " in line and "tiny_flat" in line  # the tests' datasets file (SYNTH_DATASETS)


def test_runner_refuses_an_unknown_dataset_in_one_line():
    run = _run([sys.executable, "-m", "synth_orchestration.demo", "--dataset", "no_such_dataset"])
    assert _one_line_refusal(run).startswith("demo: unknown dataset 'no_such_dataset'")


def test_runner_refuses_a_kind_that_is_not_the_datasets():
    run = _run([sys.executable, "-m", "synth_orchestration.demo", "--label", "run", "--kind", "flat",
                "--dataset", "tiny_seq"])
    assert _one_line_refusal(run) == "run: dataset 'tiny_seq' is sequential, not flat"


def test_runner_check_takes_the_kind_from_the_datasets_file():
    for name in ("tiny_flat", "tiny_seq"):
        run = _run([sys.executable, "-m", "synth_orchestration.demo", "--check", "--dataset", name])
        assert run.returncode == 0 and run.stdout == "", run.stdout + run.stderr
    bad = _run([sys.executable, "-m", "synth_orchestration.demo", "--label", "run", "--check", "--dataset", "nope"])
    assert bad.returncode == 2 and bad.stdout.startswith("run: unknown dataset 'nope'")
