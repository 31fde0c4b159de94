"""Reading and writing tables (.csv, .csv.gz, .parquet), with atomic writes.

Writes go to a temporary file beside the destination, renamed onto it only on success, so a
reader never sees half a file. Temporary files of this module are hidden (dot-prefixed) and
carry the writer's host and process id in their name::

    .<name>.synth-<host>-<pid>-<random>.tmp

A writer that is killed leaves its temporary file behind; the next write into the same
folder removes it (:func:`remove_stale_temporaries`) when its process is gone: same host and
that pid no longer running. A temporary file of another host (a folder shared by several
machines or pods) is removed only once it is older than ``STALE_TEMP_AGE_S``, since a pid
says nothing about another machine's processes.

Output files get the permissions of any file the user creates (``0o666`` less the umask):
the temporary file is created with ``os.open(..., 0o666)`` and the kernel applies the umask.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from synth_core.errors import InputError

SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".parquet")
POOL_MANIFEST = "pool.json"  # a pool folder (synth_core.generate._pool): this manifest beside its shards
SHARD_GLOB = "shard-*.parquet"
STALE_TEMP_AGE_S = 24 * 3600.0  # a temporary file of another host is abandoned after this long
_TEMP_RE = re.compile(r"^\..+\.synth-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]+\.tmp$")


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

    A folder of Parquet shards (a pool written by :mod:`synth_core.generate._pool`: ``shard-*.parquet``
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
        raise InputError(f"cannot read {what} file {path}: {_first_line(exc)}") from None
    if df.shape[1] == 0 or len(df) == 0:
        raise InputError(f"{what} file has no rows: {path}")
    return df


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_manifest(path: str | os.PathLike) -> dict:
    """The JSON object in a pool's ``pool.json``; a file that is not one is an :class:`InputError`
    naming it (a corrupt manifest is the folder's fault, never a traceback)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"unreadable pool manifest {path}: {_first_line(exc)}") from None
    if not isinstance(data, dict):
        raise InputError(f"unreadable pool manifest {path}: expected a JSON object, found {type(data).__name__}")
    return data


def _read_shards(folder: Path, what: str) -> pd.DataFrame:
    shards = sorted(folder.glob(SHARD_GLOB))
    if not shards:
        raise InputError(f"{what} folder holds no {SHARD_GLOB} files: {folder}")
    manifest = folder / POOL_MANIFEST
    if manifest.is_file():
        expected = read_manifest(manifest).get("n_shards")
        if expected is not None and (not isinstance(expected, int) or isinstance(expected, bool)):
            raise InputError(f"unreadable pool manifest {manifest}: n_shards is {expected!r}, not a count")
        if expected is not None and len(shards) != expected:
            raise InputError(f"{what} folder {folder} is incomplete: {len(shards)} of {expected} shards")
    return pd.concat([read_table(p, what=what) for p in shards], ignore_index=True)


def read_rows(source: pd.DataFrame | list, rows, columns: list[str]) -> pd.DataFrame:
    """``columns`` of the rows at positions ``rows`` of a table or of Parquet shards (paths, in
    order; only the shards holding wanted rows are read, one at a time), in the order of ``rows``
    and with a fresh index. Both sources give the same frame."""
    import numpy as np

    rows = np.asarray(rows, dtype=np.int64)
    if isinstance(source, pd.DataFrame):
        return source.iloc[rows][columns].reset_index(drop=True)
    if rows.size > 1 and np.any(rows[1:] < rows[:-1]):
        order = np.argsort(rows, kind="stable")
        ordered = read_rows(source, rows[order], columns)
        return ordered.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)
    import pyarrow.parquet as pq

    parts, start = [], 0
    for path in source:
        n = pq.ParquetFile(path).metadata.num_rows
        lo, hi = np.searchsorted(rows, [start, start + n])
        if hi > lo:
            parts.append(pd.read_parquet(path, columns=columns).iloc[rows[lo:hi] - start])
        start += n
    if rows.size and rows[-1] >= start:
        raise InputError(f"row {rows[-1]:,} is outside the pool ({start:,} rows)")
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


# --------------------------------------------------------------------------------------------
# output paths: checked before any work


def check_output(path: str | os.PathLike, inputs: Mapping[str, str | os.PathLike | None], *,
                 option: str = "--output") -> Path:
    """Refuse an output path that cannot or must not be written, before any work is done.

    ``inputs`` maps option names (``"--training"``, ...) to the input paths (``None``: not
    given). Raises :class:`InputError` naming ``option`` when the path has an unsupported type,
    is an existing folder, is the same file as an input (also through another spelling, a
    symbolic or a hard link) or lies in an input's shard folder, or lies in a folder that
    cannot be created or written.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder, not a file")
    try:
        table_format(path)
    except InputError as exc:
        raise InputError(f"{option} {exc}") from None
    for name, given in inputs.items():
        if given is None:
            continue
        if _same_file(path, Path(given)):
            raise InputError(f"{option} {path} is the same file as {name} {given}: refusing to overwrite an input")
        if Path(given).is_dir() and _same_file(path.parent, Path(given)):
            raise InputError(f"{option} {path} lies in the shard folder of {name} {given}: refusing to change an input")
    check_writable_folder(path.parent, what=f"{option} {path}")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def check_writable_folder(folder: Path, *, what: str) -> None:
    """Raise :class:`InputError` unless files can be created in ``folder`` (created if missing).

    Probes by creating and removing a temporary file in the folder, or, when the folder does
    not exist yet, in its nearest existing ancestor; permission bits alone miss read-only file
    systems. Nothing is left behind, and a missing folder is not created here.
    """
    folder = Path(folder)
    probe_in = folder
    while not probe_in.exists():
        if probe_in.parent == probe_in:
            break
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise InputError(f"{what}: cannot create folder {folder}: {probe_in} is not a folder")
    try:
        fd, tmp = _create_temp(probe_in, "write-probe")
    except OSError as exc:
        raise InputError(f"{what}: folder {probe_in} is not writable ({exc.strerror or _first_line(exc)})") from None
    os.close(fd)
    tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# temporary files


def _host() -> str:
    # '-' separates the fields of a temporary name; a host name keeps its dots
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _create_temp(folder: Path, name: str) -> tuple[int, Path]:
    """Create a new, empty temporary file for ``name`` in ``folder``; returns (fd, path).

    Mode ``0o666`` before the umask: the file (and the output renamed from it) gets the
    permissions of any file the user creates.
    """
    prefix = f".{name}.synth-{_host()}-{os.getpid()}-"
    for _ in range(100):
        tmp = folder / f"{prefix}{os.urandom(4).hex()}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, *, max_age_s: float = STALE_TEMP_AGE_S) -> list[Path]:
    """Remove this module's temporary files in ``folder`` whose writer is gone.

    A file of this host is stale when its pid is not running (a live pid, our own included,
    may be writing it now); a file of another host when it was last modified more than
    ``max_age_s`` ago. A reused pid only delays the removal to a later run. Returns the
    removed paths.
    """
    folder = Path(folder)
    removed: list[Path] = []
    host = _host()
    now = time.time()
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if m is None:
            continue
        if m["host"] == host:
            stale = not _pid_alive(int(m["pid"]))
        else:
            try:
                stale = now - entry.stat().st_mtime > max_age_s
            except OSError:
                continue
        if stale:
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:  # another run removed it first, or we may not: leave it
                pass
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Readers therefore never see a half-written file, and a failure leaves nothing behind.
    Left-overs of killed writers in the folder are removed first (see the module docstring).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    fd, tmp_path = _create_temp(path.parent, path.name)
    os.close(fd)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.filename not in (None, str(tmp_path)):
            raise
        # the user knows the destination, not our hidden temporary name
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` atomically as CSV (gzip if ``.csv.gz``) or Parquet, chosen by suffix.

    The same frame always gives the same bytes: gzip output stores neither a file name nor
    a time in its header.
    """
    path = Path(path)
    fmt = table_format(path)
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            df.to_parquet(tmp, index=False)
        elif str(path).lower().endswith(".gz"):
            # pandas' own gzip writer names the (temporary) file in the header
            with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                with io.TextIOWrapper(gz, encoding="utf-8", newline="") as text:
                    df.to_csv(text, index=False)
        else:
            df.to_csv(tmp, index=False)
    return path
