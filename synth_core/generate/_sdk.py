"""The MOSTLY AI SDK's internals, in one place.

``_generator`` trains and samples through the SDK's public client, but some of what it needs the
SDK offers no public way to: a generation job run in this process, the engine's progress file
(epochs, DP spend), the output ZIP, the job's process and logs, a quiet console. Each depends on
the SDK's private modules or on-disk layout, named here and checked against a real training by
``tests/generate/test_sdk_contract.py``: an SDK upgrade that moves them touches this module only.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import threading
import traceback
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

# The mostlyai version whose private API and layout this module was written and tested against.
TESTED_SDK_VERSION = "6.2.0"

# The SDK's local home: generators/<id>/ and synthetic-datasets/<id>/ hold a training and a
# generation job; a model trains under in_progress/<id>/ and moves to generators/<id>/ at the end.
# Its job writes job.log there, tracebacks included, but only while the job process's root logger
# is unconfigured; opacus configures it (to stderr) when the engine is imported, so the engine's
# traceback usually reaches only the job's stderr, which we capture in JOB_OUTPUT_LOG beside it.
SDK_GENERATORS_DIR = "generators"
SDK_DATASETS_DIR = "synthetic-datasets"
SDK_IN_PROGRESS_DIR = "in_progress"
MODEL_STORE = "ModelStore"
# the engine's progress file, one per table: under generators/<id>/ once trained ...
PROGRESS_GLOB = "ModelStore/*/model-data/progress-messages.csv"
# ... and under in_progress/<id>/ while training
RUNNING_PROGRESS_GLOB = "*/ModelStore/model-data/progress-messages.csv"
OUTPUT_ZIP = "ZIP/synthetic-parquet-data.zip"  # a generation job's parquet parts, under synthetic-datasets/<id>/
SDK_JOB_LOG = "job.log"
JOB_OUTPUT_LOG = "job-output.log"
TRACEBACK_HEADER = "Traceback (most recent call last):"
MAX_REASON_CHARS = 300  # an engine message can quote whole values: the one-line reason is cut here
ENGINE_SEED_ENV = "MOSTLYAI_ENGINE_SEED"  # set by the engine's seeding for its worker processes

_CLIENTS: dict[Path, Any] = {}
_CLIENTS_LOCK = threading.Lock()
_STDERR_LOCK = threading.Lock()
_VERSION_CHECKED = False


class EngineError(RuntimeError):
    """A training or generation job of the engine failed. The message is one line: the job, the
    engine's own reason (the last line of the exception it raised) and the job's log (``log``)."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log

    def moved(self, log: Path) -> EngineError:
        """The same error naming ``log``, where the job's log was kept."""
        text = str(self)
        if self.log is not None:
            text = text.replace(f"; log: {self.log}", f"; log: {log}")
        return EngineError(text, log)


# ---------------------------------------------------------------------------------------------
# versions
# ---------------------------------------------------------------------------------------------


def _versions() -> tuple[str | None, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("mostlyai", "mostlyai-engine"):
        try:
            out.append(version(pkg))
        except PackageNotFoundError:
            out.append(None)
    return out[0], out[1]


def check_sdk_version(installed: str | None = None) -> bool:
    """Whether the installed mostlyai (``installed``: that version, for tests) is the tested one;
    if not, one WARNING line says so. An upgrade is allowed: this module may still fit it."""
    if installed is None:
        installed = _versions()[0]
        if installed is None:  # not installed: importing the SDK fails right after, loudly
            return False
    if installed == TESTED_SDK_VERSION:
        return True
    log.warning("mostlyai %s is installed but synth_core was tested with mostlyai %s: the SDK's private API and "
                "file layout used by synth_core.generate._sdk may have changed (tests/generate/test_sdk_contract.py "
                "checks them)", installed, TESTED_SDK_VERSION)
    return False


# ---------------------------------------------------------------------------------------------
# client and console
# ---------------------------------------------------------------------------------------------


def _client(home: Path):
    """One ``MostlyAI(local=True, local_dir=home)`` per home directory and process; the first one
    checks the SDK's version (:func:`check_sdk_version`)."""
    global _VERSION_CHECKED
    home = Path(home).resolve()
    with _CLIENTS_LOCK:
        if not _VERSION_CHECKED:
            _VERSION_CHECKED = True
            check_sdk_version()
        client = _CLIENTS.get(home)
        if client is None:
            import rich
            from mostlyai.sdk import MostlyAI

            home.mkdir(parents=True, exist_ok=True)
            console = rich.get_console()
            was_quiet = console.quiet
            try:  # quiet=True silences the SDK's banner but flips the global console: restore it
                client = MostlyAI(local=True, local_dir=home, quiet=True)
            finally:
                console.quiet = was_quiet
            _CLIENTS[home] = client
        return client


def _close_client(home: Path) -> None:
    with _CLIENTS_LOCK:
        client = _CLIENTS.pop(Path(home).resolve(), None)
    if client is not None:
        with contextlib.suppress(Exception):
            client.local_server.stop()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the SDK's rich console messages ("Started training", ...) for one call."""
    import rich

    console = rich.get_console()
    was_quiet = console.quiet
    console.quiet = True
    try:
        yield
    finally:
        console.quiet = was_quiet


# ---------------------------------------------------------------------------------------------
# job folders, processes and logs
# ---------------------------------------------------------------------------------------------


def _job_dir(home: Path, kind_dir: str, job_id: str) -> Path:
    return Path(home) / kind_dir / str(job_id)


def _generator_dir(home: Path, generator_id: str) -> Path:
    """A training job's folder, the trained model's once it is done."""
    return _job_dir(home, SDK_GENERATORS_DIR, generator_id)


def _dataset_dir(home: Path, dataset_id: str) -> Path:
    """A generation job's folder."""
    return _job_dir(home, SDK_DATASETS_DIR, dataset_id)


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Point this process's stderr (file descriptor 2) at ``path`` while a job process is started,
    so that the job inherits it. Other threads' stderr output in this window (one local HTTP call)
    goes to the file too."""
    import sys

    path.parent.mkdir(parents=True, exist_ok=True)
    with _STDERR_LOCK, open(path, "ab") as log:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no usable stderr to redirect: start the job as it is
            saved = None
        if saved is None:
            yield
            return
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _capture_job_output(job_dir: Path) -> contextlib.AbstractContextManager[None]:
    """Start a job process inside this: its stderr (the engine's traceback) goes to the job's
    ``JOB_OUTPUT_LOG``."""
    return _stderr_to(Path(job_dir) / JOB_OUTPUT_LOG)


def _engine_reason(log: Path) -> str | None:
    """The last line of the last traceback in a job's log, its exception named without the module
    (``OutOfBoundsDatetime: Out of bounds ...``); None when the log holds no traceback."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    reason, in_frames = None, False
    for line in lines:
        if TRACEBACK_HEADER in line:  # log lines carry a prefix: "<time>:ERROR:Traceback ..."
            in_frames = True
        elif in_frames and line.strip() and not line[0].isspace():  # frames are indented, the exception is not
            reason, in_frames = line.strip(), False
    if reason is None:
        return None
    name, sep, message = reason.partition(": ")
    if all(part.isidentifier() for part in name.split(".")):
        reason = name.rsplit(".", 1)[-1] + sep + message
    return _one_line(reason)


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


def _job_failure(what: str, job_dir: Path, status: str, *, error: str | None = None,
                 replay: bool = False) -> EngineError:
    """The error for a job that ended with ``status``: ``what`` failed, the engine's reason (from
    the job's logs; else ``error``, the exception caught in this process) and the log to read.
    ``replay``: copy the captured job output to this process's stderr, where it used to go."""
    logs = [job_dir / name for name in (JOB_OUTPUT_LOG, SDK_JOB_LOG) if (job_dir / name).is_file()]
    found = [(reason, path) for path in logs if (reason := _engine_reason(path))]
    reason, log = found[0] if found else (error, logs[0] if logs else job_dir)
    if replay and (job_dir / JOB_OUTPUT_LOG).is_file():
        import sys

        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write((job_dir / JOB_OUTPUT_LOG).read_text(errors="replace"))
            sys.stderr.flush()
    if reason:
        reason = _one_line(reason)
        head = f"{what} failed" if status == "FAILED" else f"{what} ended with status {status}"
        return EngineError(f"{head}: {reason}; log: {log}", log)
    return EngineError(f"{what} ended with status {status} and left no exception in its log; log: {log}", log)


def _wait_for_job_process(job_id: str, timeout_s: float = 300.0) -> None:
    """Wait for the SDK's job subprocess of ``job_id`` (found by its command line) to exit.

    The local SDK reports training as done and then, in the same subprocess, samples a few probe
    rows into its home folder; moving or deleting that folder before the process exits breaks the
    probe and can leave stray files behind.
    """
    import psutil

    mine = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):  # gone or a zombie already: nothing to wait for
            if job_id in " ".join(proc.cmdline()):
                mine.append(proc)
    psutil.wait_procs(mine, timeout=timeout_s)


# ---------------------------------------------------------------------------------------------
# the engine's progress file: epochs and DP spend
# ---------------------------------------------------------------------------------------------


def _training_progress(model_dir: Path) -> tuple[float | None, float | None]:
    """Epochs trained and the engine's own training time, from its progress-messages.csv; None
    where no file with an epoch was found."""
    epochs = seconds = None
    for path in sorted(Path(model_dir).glob(PROGRESS_GLOB)):
        try:
            rows = list(csv.DictReader(io.StringIO(path.read_text())))
            last = (float(rows[-1]["epoch"]), float(rows[-1]["total_time"])) if rows else None
        except (OSError, KeyError, TypeError, ValueError):  # unreadable, or its columns were renamed
            continue
        if last is not None:
            e, t = last
            epochs = e if epochs is None else max(epochs, e)
            seconds = t if seconds is None else seconds + t
    return epochs, seconds


def training_progress(model_dir: Path, generator_id: str) -> tuple[float, float | None]:
    """Epochs trained and the engine's training time of a finished training, or
    :class:`EngineError` when its progress file cannot be found or read (the SDK's layout drifted)."""
    epochs, seconds = _training_progress(model_dir)
    if epochs is None:
        raise EngineError(f"training of generator {generator_id} finished but its epochs could not be read: no "
                          f"readable {PROGRESS_GLOB} under {model_dir}")
    return epochs, seconds


def _current_epoch(home: Path, generator_id: str) -> float | None:
    """Epoch of the table being trained now (its progress file is the most recently written)."""
    files = list((Path(home) / SDK_IN_PROGRESS_DIR / str(generator_id)).glob(RUNNING_PROGRESS_GLOB))
    if not files:
        return None
    with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
        latest = max(files, key=lambda p: p.stat().st_mtime)
        return float(list(csv.DictReader(io.StringIO(latest.read_text())))[-1]["epoch"])
    return None


def accounted_spend(model_dir: Path, max_epsilon: float, generator_id: str) -> tuple[float, float]:
    """The engine's reported (ε, δ) of a DP training, or :class:`EngineError` when it cannot be read
    (the SDK's layout drifted) or exceeds ``max_epsilon``: a run that cannot account for its spend
    must fail rather than publish under a weaker statement."""
    eps, delta = _dp_spent(model_dir)
    if eps is None or delta is None:
        raise EngineError(f"DP training of generator {generator_id} finished but the engine's ε and δ could not be "
                          f"read from {Path(model_dir) / MODEL_STORE}: refusing to state a guarantee it cannot "
                          f"account for")
    if eps > max_epsilon * (1 + 1e-6):
        raise EngineError(f"DP training of generator {generator_id} spent ε = {eps:.4g}, more than its budget "
                          f"max_epsilon = {max_epsilon:.4g}")
    return eps, delta


def _dp_spent(model_dir: Path) -> tuple[float | None, float | None]:
    """The ε and δ the engine reported, from its progress-messages.csv: the largest ``dp_eps`` of
    any epoch (ε only grows while DP-SGD runs, and the choice of the kept checkpoint depends on
    every epoch trained), summed over the model's tables."""
    eps = delta = None
    for path in sorted(Path(model_dir).glob(PROGRESS_GLOB)):
        try:
            rows = list(csv.DictReader(io.StringIO(path.read_text())))
        except OSError:
            continue
        spent = [float(r["dp_eps"]) for r in rows if r.get("dp_eps") not in (None, "")]
        deltas = [float(r["dp_delta"]) for r in rows if r.get("dp_delta") not in (None, "")]
        if spent:
            eps = max(spent) + (eps or 0.0)
            delta = max(deltas) + (delta or 0.0) if deltas else delta
    return eps, delta


# ---------------------------------------------------------------------------------------------
# generation in this process, and its output
# ---------------------------------------------------------------------------------------------


def _generate_here(device: str) -> bool:
    """Whether a generation job may run in this process (see ``_generator``'s docstring): not where
    it must be kept off a GPU this process sees, and only while the SDK has the job function we call."""
    try:
        from mostlyai.sdk._local.execution.jobs import execute_generation_job  # noqa: F401
    except ImportError:
        return False
    if device == "cpu":
        import torch

        return not torch.cuda.is_available()
    return True


def _run_generation_job(sd_id: str, home: Path) -> str | None:
    """The SDK's generation job for ``sd_id``, run here; returns the job's error, if any (it also
    marks the dataset failed: the caller reads the status). What it changes in this process is
    put back: the root logger (``logging.basicConfig`` to its job log) and the engine's seed
    variable, which child processes started later would inherit."""
    from mostlyai.sdk._local.execution.jobs import execute_generation_job

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    seed_env = os.environ.get(ENGINE_SEED_ENV)
    try:
        execute_generation_job(sd_id, Path(home))
    except Exception as exc:  # the job has marked itself failed; the caller reports it
        # the SDK's job.log exists only when the root logger was unconfigured: keep the traceback
        with contextlib.suppress(OSError):
            with open(_dataset_dir(Path(home), sd_id) / JOB_OUTPUT_LOG, "a") as log:
                log.write(traceback.format_exc())
        return f"{type(exc).__name__}: {exc}"
    finally:
        for added in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(added)
            added.close()
        root.setLevel(level)
        if seed_env is None:
            os.environ.pop(ENGINE_SEED_ENV, None)
        else:
            os.environ[ENGINE_SEED_ENV] = seed_env
    return None


def _read_synthetic(sd_dir: Path, sd) -> dict[str, pd.DataFrame]:
    """Read the job's parquet parts in file-name order (the SDK's own download does not sort)."""
    zip_path = Path(sd_dir) / OUTPUT_ZIP
    if not zip_path.is_file():  # layout changed in a later SDK: fall back to its download
        data = sd.data(return_type="dict")
        return {k: v.reset_index(drop=True) for k, v in data.items()}
    tables: dict[str, list[pd.DataFrame]] = {}
    with zipfile.ZipFile(zip_path) as z:
        for member in sorted(n for n in z.namelist() if n.endswith(".parquet")):
            table = member.split("/", 1)[0]
            with z.open(member) as fh:
                tables.setdefault(table, []).append(pd.read_parquet(io.BytesIO(fh.read())))
    return {t: pd.concat(parts, ignore_index=True) for t, parts in tables.items()}
