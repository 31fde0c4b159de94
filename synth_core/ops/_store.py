"""The metric store: an append-only DuckDB table of metric values, one row per metric.

Every run of every asset appends its metrics here, so that quality can be followed over time::

    metrics(run_id VARCHAR, dataset VARCHAR, asset VARCHAR, metric VARCHAR,
            value DOUBLE, recorded_at TIMESTAMP)

DuckDB lets one process at a time hold a file open for writing (readers share). Each call therefore
opens its own connection and closes it straight away, and a call that meets another process's lock
retries with jittered exponential backoff for up to ``timeout_s`` seconds (30 by default) before
raising :class:`MetricStoreBusyError`.

``recorded_at`` is naive UTC. A missing value (``None`` or NaN) is stored as NULL and reads back as
NaN. Callers choose the file (the project default is ``<project>/.synth/metrics.duckdb``).
"""

from __future__ import annotations

import math
import numbers
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import duckdb
import pandas as pd

from synth_core.errors import InputError

__all__ = ["COLUMNS", "DEFAULT_RELATIVE_PATH", "MetricStore", "MetricStoreBusyError"]

#: Where the project keeps its store, relative to the project root (callers decide).
DEFAULT_RELATIVE_PATH = Path(".synth") / "metrics.duckdb"

COLUMNS = ("run_id", "dataset", "asset", "metric", "value", "recorded_at")

_CREATE = """
CREATE TABLE IF NOT EXISTS metrics (
    run_id VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    asset VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    value DOUBLE,
    recorded_at TIMESTAMP NOT NULL
)
"""

# Substrings of DuckDB errors that mean "someone else has the file right now": worth a retry.
_TRANSIENT_MARKERS = ("lock", "conflict", "different configuration", "resource temporarily unavailable")
# A store that another process is creating reads as no database for a moment: worth a retry while
# the file is that young, a plain error once it is older (a file that is no store).
_CREATING_MARKER, _CREATING_S = "not a valid duckdb database file", 5.0

T = TypeVar("T")


class MetricStoreBusyError(RuntimeError):
    """The store stayed locked by another process for longer than the retry budget."""


def _is_transient(exc: BaseException) -> bool:
    if not isinstance(exc, (duckdb.IOException, duckdb.ConnectionException, duckdb.TransactionException)):
        return False
    message = str(exc).lower()
    return any(marker in message for marker in _TRANSIENT_MARKERS)


def _as_value(dataset: str, asset: str, metric: str, value: object) -> float | None:
    """A metric value as a float, or ``None`` for a missing one (None or NaN)."""
    if value is None:
        return None
    if isinstance(value, numbers.Real):  # int, float, bool, numpy scalars
        number = float(value)
        return None if math.isnan(number) else number
    raise InputError(
        f"metric {metric!r} of asset {asset!r} (dataset {dataset!r}): value {value!r} is not a number"
    )


def _as_timestamp(recorded_at: datetime | pd.Timestamp | None) -> datetime:
    """Naive UTC: aware datetimes are converted, naive ones are taken as UTC already."""
    if recorded_at is None:
        return datetime.now(UTC).replace(tzinfo=None)
    if isinstance(recorded_at, pd.Timestamp):
        recorded_at = recorded_at.to_pydatetime()
    if not isinstance(recorded_at, datetime):
        raise InputError(f"recorded_at must be a datetime, got {recorded_at!r}")
    if recorded_at.tzinfo is not None:
        recorded_at = recorded_at.astimezone(UTC).replace(tzinfo=None)
    return recorded_at


def _require_name(kind: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"metric store: {kind} must be a non-empty string, got {value!r}")
    return value


def _empty_frame() -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype=object) for name in COLUMNS[:4]})
    frame["value"] = pd.Series(dtype="float64")
    frame["recorded_at"] = pd.Series(dtype="datetime64[us]")
    return frame


class MetricStore:
    """Append-only metric table in one DuckDB file, safe to share between processes."""

    def __init__(self, path: str | os.PathLike, *, timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout_s = float(timeout_s)

    def __repr__(self) -> str:
        return f"MetricStore({str(self.path)!r})"

    # -- connection handling -------------------------------------------------------------------

    def _being_created(self, exc: duckdb.Error) -> bool:
        if _CREATING_MARKER not in str(exc).lower():
            return False
        try:
            return time.time() - self.path.stat().st_mtime < _CREATING_S
        except OSError:
            return True  # gone again: the creator is still at it

    def _retry(self, action: Callable[[], T], what: str) -> T:
        deadline = time.monotonic() + self.timeout_s
        delay = 0.01
        while True:
            try:
                return action()
            except duckdb.Error as exc:
                if not (_is_transient(exc) or self._being_created(exc)):
                    raise
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    first_line = str(exc).strip().splitlines()[0]
                    raise MetricStoreBusyError(
                        f"metric store {self.path} stayed locked for {self.timeout_s:.0f} s while trying to "
                        f"{what} (another process holds it; DuckDB allows one writer): {first_line}"
                    ) from exc
                # Full jitter: processes that collided do not retry in lockstep.
                time.sleep(min(remaining, random.uniform(0.0, delay)))
                delay = min(delay * 2.0, 1.0)

    def _read(self, sql: str, params: list[object]) -> pd.DataFrame:
        """Run a query on a read-only connection; an absent file or table reads as no rows."""

        def action() -> pd.DataFrame | None:
            if not self.path.exists():
                return None
            con = duckdb.connect(str(self.path), read_only=True)
            try:
                exists = con.execute(
                    "SELECT count(*) FROM information_schema.tables WHERE table_name = 'metrics'"
                ).fetchone()[0]
                if not exists:
                    return None
                return con.execute(sql, params).df()
            finally:
                con.close()

        frame = self._retry(action, "read")
        return _empty_frame() if frame is None else frame

    # -- writing --------------------------------------------------------------------------------

    def append(
        self,
        run_id: str,
        dataset: str,
        asset: str,
        metrics: Mapping[str, float | None],
        recorded_at: datetime | None = None,
    ) -> int:
        """Append one row per metric (all with the same ``recorded_at``); return the row count."""
        run_id = _require_name("run_id", run_id)
        dataset = _require_name("dataset", dataset)
        asset = _require_name("asset", asset)
        when = _as_timestamp(recorded_at)
        rows = [
            (run_id, dataset, asset, _require_name("metric name", name), _as_value(dataset, asset, name, value), when)
            for name, value in metrics.items()
        ]
        if not rows:
            return 0

        def action() -> None:
            con = duckdb.connect(str(self.path))
            try:
                con.execute(_CREATE)
                con.execute("BEGIN TRANSACTION")
                try:
                    con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)", rows)
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            finally:
                con.close()

        self._retry(action, f"append {len(rows)} metric(s) of {asset!r}")
        return len(rows)

    # -- reading --------------------------------------------------------------------------------

    def frame(
        self, dataset: str | None = None, run_id: str | None = None, asset: str | None = None
    ) -> pd.DataFrame:
        """All rows matching the given filters, oldest first (ties in insertion order)."""
        clauses, params = [], []
        for column, value in (("dataset", dataset), ("run_id", run_id), ("asset", asset)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {', '.join(COLUMNS)} FROM metrics {where} ORDER BY recorded_at, rowid"
        return self._read(sql, params)

    def latest(self, dataset: str, asset: str, metric: str) -> float | None:
        """The most recently recorded value, ``None`` when never recorded (NaN when recorded missing)."""
        sql = (
            "SELECT value FROM metrics WHERE dataset = ? AND asset = ? AND metric = ? "
            "ORDER BY recorded_at DESC, rowid DESC LIMIT 1"
        )
        frame = self._read(sql, [dataset, asset, metric])
        if frame.empty:
            return None
        value = frame["value"].iloc[0]
        return float("nan") if pd.isna(value) else float(value)

    def history(
        self,
        dataset: str | None = None,
        metrics: Iterable[str] | None = None,
        *,
        asset: str | None = None,
    ) -> pd.DataFrame:
        """One row per run (per run and dataset when ``dataset`` is None), one column per metric.

        Columns: ``run_id``, ``dataset``, ``recorded_at`` (the run's last record), then the metrics
        (the requested ones in the given order, even when never recorded; else all, sorted).
        Rows are ordered by ``recorded_at``. When a run recorded a metric more than once (e.g. by
        two assets; narrow with ``asset=``), its latest value wins.
        """
        wanted = None if metrics is None else [str(m) for m in ([metrics] if isinstance(metrics, str) else metrics)]
        rows = self.frame(dataset=dataset, asset=asset)
        if wanted is not None:
            rows = rows[rows["metric"].isin(wanted)]
        keys = ["run_id", "dataset"]
        if rows.empty:
            return pd.DataFrame(columns=[*keys, "recorded_at", *(wanted or [])])
        times = rows.groupby(keys, sort=False)["recorded_at"].max()
        # frame() is time-ordered, so keep="last" keeps each run's latest value (NaN included).
        last = rows.drop_duplicates(subset=[*keys, "metric"], keep="last")
        table = last.pivot(index=keys, columns="metric", values="value")
        columns = wanted if wanted is not None else sorted(table.columns)
        table = table.reindex(columns=columns)
        table.insert(0, "recorded_at", times.reindex(table.index))
        table = table.reset_index()
        table.columns.name = None
        return table.sort_values(["recorded_at", "run_id", "dataset"], kind="stable").reset_index(drop=True)
