"""The metric store: a real DuckDB file in tmp_path, including several writer processes at once."""

from __future__ import annotations

import math
import multiprocessing
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from synth_core.errors import InputError
from synth_core.ops._store import COLUMNS, MetricStore, MetricStoreBusyError

T0 = datetime(2025, 1, 1, 12, 0, 0)


def test_append_and_read_roundtrip(tmp_path):
    store = MetricStore(tmp_path / "deep" / "dir" / "metrics.duckdb")
    assert store.frame().empty  # no file yet: reads as empty, does not create it
    assert not store.path.exists()

    assert store.append("run-1", "census", "fidelity", {"accuracy": 0.9, "dcr_share": 0.51}, recorded_at=T0) == 2
    assert store.append("run-1", "census", "privacy", {"dcr_share": 0.49}, recorded_at=T0 + timedelta(seconds=1)) == 1
    assert store.append("run-2", "adult", "fidelity", {"accuracy": np.float32(0.5)}) == 1
    assert store.append("run-3", "adult", "fidelity", {}) == 0

    df = store.frame()
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 4
    census = store.frame(dataset="census")
    assert list(census["metric"]) == ["accuracy", "dcr_share", "dcr_share"]
    assert list(census["asset"]) == ["fidelity", "fidelity", "privacy"]
    assert census["value"].tolist() == pytest.approx([0.9, 0.51, 0.49])
    assert census["recorded_at"].iloc[0] == pd.Timestamp(T0)
    assert len(store.frame(run_id="run-1", asset="privacy")) == 1
    assert store.frame(dataset="nope").empty

    assert store.latest("census", "fidelity", "accuracy") == pytest.approx(0.9)
    assert store.latest("adult", "fidelity", "accuracy") == pytest.approx(0.5)
    assert store.latest("census", "fidelity", "missing") is None


def test_latest_is_most_recent_and_timezones_are_utc(tmp_path):
    store = MetricStore(tmp_path / "m.duckdb")
    aware = datetime(2025, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))  # 12:00 UTC
    store.append("b", "d", "a", {"m": 2.0}, recorded_at=aware)
    store.append("a", "d", "a", {"m": 1.0}, recorded_at=datetime(2025, 6, 1, 11, 0))
    assert store.latest("d", "a", "m") == 2.0
    assert store.frame()["recorded_at"].max() == pd.Timestamp("2025-06-01 12:00")


def test_missing_values_are_null(tmp_path):
    store = MetricStore(tmp_path / "m.duckdb")
    store.append("r1", "d", "a", {"none": None, "nan": float("nan"), "np_nan": np.nan, "ok": 1, "inf": math.inf})
    df = store.frame().set_index("metric")["value"]
    assert df[["none", "nan", "np_nan"]].isna().all()
    assert df["ok"] == 1.0 and df["inf"] == math.inf
    assert math.isnan(store.latest("d", "a", "nan"))
    assert store.latest("d", "a", "absent") is None


def test_bad_input_is_an_input_error(tmp_path):
    store = MetricStore(tmp_path / "m.duckdb")
    with pytest.raises(InputError, match="'accuracy'"):
        store.append("r", "d", "a", {"accuracy": "high"})
    with pytest.raises(InputError, match="run_id"):
        store.append("", "d", "a", {"m": 1.0})
    assert store.frame().empty  # nothing half-written


def test_history_pivot(tmp_path):
    store = MetricStore(tmp_path / "m.duckdb")
    # written out of time order on purpose
    store.append("r2", "census", "eval", {"acc": 0.8, "priv": 0.5}, recorded_at=T0 + timedelta(hours=2))
    store.append("r1", "census", "eval", {"acc": 0.7}, recorded_at=T0)
    store.append("r1", "census", "eval", {"acc": 0.75}, recorded_at=T0 + timedelta(minutes=5))  # re-recorded
    store.append("r3", "census", "eval", {"acc": None, "priv": 0.4}, recorded_at=T0 + timedelta(hours=3))
    store.append("rx", "other", "eval", {"acc": 0.1}, recorded_at=T0 + timedelta(hours=1))

    hist = store.history("census", metrics=("acc", "priv", "never"))
    assert list(hist.columns) == ["run_id", "dataset", "recorded_at", "acc", "priv", "never"]
    assert hist["run_id"].tolist() == ["r1", "r2", "r3"]
    assert hist["acc"].iloc[0] == pytest.approx(0.75)  # latest value of the run wins
    assert hist["recorded_at"].iloc[0] == pd.Timestamp(T0 + timedelta(minutes=5))
    assert math.isnan(hist["priv"].iloc[0])  # r1 never recorded priv
    assert math.isnan(hist["acc"].iloc[2])  # r3 recorded acc as missing
    assert hist["never"].isna().all()

    everything = store.history()
    assert everything["run_id"].tolist() == ["r1", "rx", "r2", "r3"]
    assert list(everything.columns) == ["run_id", "dataset", "recorded_at", "acc", "priv"]

    empty = store.history("nope", metrics=["acc"])
    assert empty.empty and list(empty.columns) == ["run_id", "dataset", "recorded_at", "acc"]


# --- several processes ---------------------------------------------------------------------------


def _append_worker(path: str, worker: int, n: int, barrier) -> None:
    store = MetricStore(path)
    barrier.wait(timeout=60)
    for i in range(n):
        store.append(f"run-{worker}", "census", f"asset-{worker}", {f"m{i:03d}": float(i)})


def _hold_write_lock(path: str, seconds: float, ready) -> None:
    import duckdb

    con = duckdb.connect(path)
    con.execute("CREATE TABLE IF NOT EXISTS held (x INTEGER)")
    ready.set()
    time.sleep(seconds)
    con.close()


def test_parallel_writers_lose_no_row(tmp_path):
    path = str(tmp_path / "m.duckdb")
    ctx = multiprocessing.get_context("spawn")
    workers, per_worker = 4, 50
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=_append_worker, args=(path, w, per_worker, barrier)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * workers

    df = MetricStore(path).frame()
    assert len(df) == workers * per_worker
    assert df.groupby("run_id").size().to_dict() == {f"run-{w}": per_worker for w in range(workers)}
    assert not df.duplicated(["run_id", "metric"]).any()


def test_gives_up_with_clear_error_when_locked(tmp_path):
    path = str(tmp_path / "m.duckdb")
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_write_lock, args=(path, 8.0, ready))
    holder.start()
    try:
        assert ready.wait(timeout=60)
        store = MetricStore(path, timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(MetricStoreBusyError, match="stayed locked"):
            store.append("r", "d", "a", {"m": 1.0})
        with pytest.raises(MetricStoreBusyError, match="read"):
            store.frame()
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.join(timeout=30)
    # the lock is gone with its holder: writing works again
    assert MetricStore(path).append("r", "d", "a", {"m": 1.0}) == 1
