"""Reading and writing tables (.csv, .csv.gz, .parquet), with atomic writes."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd

from synth_core.errors import InputError

SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".parquet")


def table_format(path: str | os.PathLike) -> str:
    """Return ``"csv"`` or ``"parquet"`` for a supported path, else raise :class:`InputError`."""
    name = str(path).lower()
    if name.endswith(".parquet") or name.endswith(".pq"):
        return "parquet"
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        return "csv"
    raise InputError(f"{path}: unsupported file type (expected one of {', '.join(SUPPORTED_SUFFIXES)})")


def read_table(path: str | os.PathLike, *, what: str = "table") -> pd.DataFrame:
    """Read a table; any failure becomes a one-line :class:`InputError` naming the file.

    A folder of Parquet shards (a pool written by :mod:`synth_core.pool`: ``shard-*.parquet``
    beside ``pool.json``) reads as one table, shards in order; an incomplete pool is refused.
    An empty table (no rows or no columns) is an error too: nothing downstream can use it.
    """
    path = Path(path)
    if path.is_dir():
        return _read_shards(path, what)
    fmt = table_format(path)
    if not path.exists():
        raise InputError(f"{what} file not found: {path}")
    if not path.is_file():
        raise InputError(f"{what} path is not a file: {path}")
    try:
        if fmt == "parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, low_memory=False)
    except pd.errors.EmptyDataError:
        raise InputError(f"{what} file is empty: {path}") from None
    except Exception as exc:  # any parser failure is the file's fault, not ours
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read {what} file {path}: {first}") from None
    if df.shape[1] == 0 or len(df) == 0:
        raise InputError(f"{what} file has no rows: {path}")
    return df


def _read_shards(folder: Path, what: str) -> pd.DataFrame:
    import json

    shards = sorted(folder.glob("shard-*.parquet"))
    if not shards:
        raise InputError(f"{what} folder holds no shard-*.parquet files: {folder}")
    manifest = folder / "pool.json"
    if manifest.is_file():
        expected = json.loads(manifest.read_text()).get("n_shards")
        if expected is not None and len(shards) != expected:
            raise InputError(f"{what} folder {folder} is incomplete: {len(shards)} of {expected} shards")
    return pd.concat([read_table(p, what=what) for p in shards], ignore_index=True)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Readers therefore never see a half-written file, and a failure leaves nothing behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` atomically as CSV (gzip if ``.csv.gz``) or Parquet, chosen by suffix."""
    path = Path(path)
    fmt = table_format(path)
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            df.to_parquet(tmp, index=False)
        else:
            compression = "gzip" if str(path).lower().endswith(".gz") else None
            if compression:
                # gzip output without an embedded timestamp keeps reruns byte-identical
                df.to_csv(tmp, index=False, compression={"method": "gzip", "mtime": 0})
            else:
                df.to_csv(tmp, index=False)
    return path
