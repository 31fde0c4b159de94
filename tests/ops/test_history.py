"""``synth history``: a real DuckDB store seeded through MetricStore, read back through the CLI."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from synth_core.cli import main
from synth_core.ops import MetricStore
from synth_core.ops._history import default_store_path, load_history, run_history

REPO_ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 3, 3, 3, 0)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _record_run(store: MetricStore, run_id: str, dataset: str, when: datetime, overall: float, dcr: float,
                *, kind: str = "flat", published: bool = True) -> None:
    """What one pipeline run leaves in the store (the figures history reads, plus some it ignores)."""
    store.append(run_id, dataset, f"{kind}/candidate_pool", {"accuracy_overall": overall - 0.05, "elapsed_s": 3.0},
                 recorded_at=when - timedelta(minutes=5))
    store.append(run_id, dataset, f"{kind}/refined_output", {
        "accuracy_overall": overall + 0.01,  # against training only: not what history shows
        "eval_overall": overall, "eval_random_overall": overall - 0.04, "eval_overall_max": 0.97,
        "dcr_share": dcr, "nndr_ratio": 0.98, "exact_copy_training": 0.0, "exact_copy_holdout": 0.0,
    }, recorded_at=when)
    if published:
        store.append(run_id, dataset, f"{kind}/quality_report", {"published": 1.0},
                     recorded_at=when + timedelta(minutes=1))


@pytest.fixture()
def seeded(tmp_path) -> Path:
    path = tmp_path / "state" / "metrics.duckdb"
    store = MetricStore(path)
    _record_run(store, "aaaaaaaa-1111", "census", T0, 0.9312, 0.5011)
    _record_run(store, "bbbbbbbb-2222", "census", T0 + timedelta(days=7), 0.9400, 0.4987)
    _record_run(store, "cccccccc-3333", "census", T0 + timedelta(days=14), 0.9100, 0.5350, published=False)
    _record_run(store, "dddddddd-4444", "wages", T0 + timedelta(days=1), 0.8800, 0.5100, kind="sequential")
    store.append("eeeeeeee-5555", "census", "flat/source_data", {"training_rows": 100.0},  # a run that failed early
                 recorded_at=T0 + timedelta(days=20))
    return path


def _lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()]


def test_prints_one_row_per_finished_run_oldest_first(seeded, capsys):
    assert main(["history", "--store", str(seeded)]) == 0
    lines = _lines(capsys.readouterr().out)
    header, rows = lines[0], lines[2:]
    for title in ("time (UTC)", "dataset", "run", "accuracy", "random", "dcr_share", "nndr_ratio", "exact_copy",
                  "published"):
        assert title in header
    assert [r.split()[4] for r in rows] == ["aaaaaaaa", "dddddddd", "bbbbbbbb", "cccccccc"]
    first = rows[0].split()
    assert first[:5] == ["2025-03-03", "03:00", "census", "flat", "aaaaaaaa"]
    assert first[5:] == ["0.9312", "0.8912", "0.5011", "0.9800", "0.000000", "yes"]
    assert rows[1].split()[2:4] == ["wages", "sequential"]
    assert rows[3].split()[-1] == "no"  # gate failed: never published
    assert "eeeeeeee" not in "\n".join(lines)


def test_dataset_filter_and_plot(seeded, tmp_path, capsys):
    plot = tmp_path / "plots" / "trend.png"
    assert main(["history", "--store", str(seeded), "--dataset", "census", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    rows = _lines(out)[2:-1]
    assert len(rows) == 3 and all(" census " in r for r in rows)
    assert f"plot: {plot}" in out
    data = plot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    assert not list(plot.parent.glob(".*.tmp"))  # atomic write left no temp file


def test_unknown_dataset_and_missing_store_are_one_line_errors(seeded, tmp_path, capsys):
    assert main(["history", "--store", str(seeded), "--dataset", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("synth history: error:") and "'nope'" in err and "census" in err and "\n" not in err

    missing = tmp_path / "nowhere" / "metrics.duckdb"
    assert main(["history", "--store", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"synth history: error: metric store not found: {missing} (run a pipeline first, or pass --store)"
    assert not missing.exists()


def test_a_file_that_is_no_store_is_a_one_line_error(tmp_path, capsys):
    bogus = tmp_path / "metrics.duckdb"
    bogus.write_text("run_id,dataset\nr1,census\n")
    assert main(["history", "--store", str(bogus)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"synth history: error: cannot read metric store {bogus}") and "\n" not in err


def test_store_without_finished_runs(tmp_path, capsys):
    path = tmp_path / "metrics.duckdb"
    MetricStore(path).append("r1", "census", "flat/source_data", {"training_rows": 10.0})
    plot = tmp_path / "trend.png"
    assert main(["history", "--store", str(path), "--plot", str(plot)]) == 0
    captured = capsys.readouterr()
    assert "no finished run" in captured.out and not plot.exists()


def test_default_store_follows_synth_state_dir(seeded, monkeypatch, capsys):
    monkeypatch.setenv("SYNTH_STATE_DIR", str(seeded.parent))
    assert default_store_path() == seeded
    assert run_history(argparse.Namespace(dataset="wages", store=None, plot=None)) == 0
    assert "dddddddd" in capsys.readouterr().out
    monkeypatch.delenv("SYNTH_STATE_DIR")
    assert default_store_path() == REPO_ROOT / ".synth" / "metrics.duckdb"


# --- several writer processes, read through `synth history` ---------------------------------------


def _pipeline_writer(path: str, worker: int, runs: int, barrier) -> None:
    store = MetricStore(path)
    barrier.wait(timeout=60)
    for i in range(runs):
        when = T0 + timedelta(hours=worker, minutes=i)
        _record_run(store, f"w{worker}r{i:02d}-{worker * 100 + i:04d}", f"ds{worker}", when,
                    0.9 + worker / 100 + i / 10_000, 0.5)


def test_parallel_writers_lose_no_run(tmp_path):
    path = tmp_path / "metrics.duckdb"
    ctx = multiprocessing.get_context("spawn")
    workers, runs = 4, 8
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=_pipeline_writer, args=(str(path), w, runs, barrier)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    assert [p.exitcode for p in procs] == [0] * workers

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "synth_core.cli", "history", "--store", str(path)],
                          capture_output=True, text=True, env=env, timeout=120, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    rows = _lines(done.stdout)[2:]
    assert len(rows) == workers * runs
    assert sorted(r.split()[4] for r in rows) == sorted(f"w{w}r{i:02d}-{w * 100 + i:04d}"[:8]
                                                        for w in range(workers) for i in range(runs))
    assert all(r.split()[-1] == "yes" for r in rows)
    assert len(load_history(path)) == workers * runs
