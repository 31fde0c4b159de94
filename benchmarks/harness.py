"""Shared pieces of the benchmark scripts: paths, logging, and timing a command as a cold process.

``run_cold`` starts a fresh interpreter (``sys.executable -m ...``), so import time, file reading
and numba's JIT (or its on-disk cache) are all part of the figure. Peak memory of the child is
taken from GNU ``/usr/bin/time -v`` when that works on this machine, else by polling the process
tree with psutil, else from ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` (a high-water mark over all
children so far: it only shows this child's peak when it exceeds every earlier child's).
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
SCRATCH = Path(os.environ.get("SYNTH_BENCH_SCRATCH", "/tmp/synth-bench"))
GNU_TIME = "/usr/bin/time"


def shared_dir() -> Path:
    """``$SYNTH_SHARED``, else ``../shared`` next to the repository (read only, never copied)."""
    value = os.environ.get("SYNTH_SHARED")
    return Path(value) if value else (REPO.parent / "shared")


def shared_file(*parts: str) -> Path:
    path = shared_dir().joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"shared data file missing: {path} (set SYNTH_SHARED)")
    return path


_T0 = time.monotonic()


def log(msg: str) -> None:
    """Progress line on stderr, with the seconds since this process started."""
    print(f"[{time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def rel(path: Path | str) -> str:
    """A path as the reader should type it: relative to the repository when inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def shell_join(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(str(a)) for a in argv)


def reproduce_command(script: str, args: Sequence[str] = ()) -> str:
    """The command line that reruns a benchmark script, typed in the repository root (after
    ``make setup``); nothing in it is specific to this machine."""
    cmd = f"PYTHONPATH=. .venv/bin/python benchmarks/{script}"
    return cmd + ("" if not args else " " + shell_join(args))


def child_env(numba_cache: Path | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of a benchmarked child: the repository importable, shared data located."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("SYNTH_SHARED", str(shared_dir()))
    env["PYTHONUNBUFFERED"] = "1"
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    env.update(extra or {})
    return env


def fresh_numba_cache(tag: str) -> Path:
    """An empty numba cache folder for one benchmark (so run 1 includes JIT compilation)."""
    path = Path(tempfile.mkdtemp(prefix=f"numba-{tag}-", dir=scratch_dir()))
    return path


def scratch_dir() -> Path:
    SCRATCH.mkdir(parents=True, exist_ok=True)
    return SCRATCH


@lru_cache(maxsize=1)
def gnu_time_works() -> bool:
    """True when ``/usr/bin/time -v -o FILE`` runs and reports the maximum resident set size."""
    if not os.path.exists(GNU_TIME):
        return False
    with tempfile.NamedTemporaryFile("r", suffix=".time") as fh:
        try:
            subprocess.run([GNU_TIME, "-v", "-o", fh.name, "true"], check=True, capture_output=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return False
        return "Maximum resident set size" in fh.read()


def rss_method() -> str:
    if gnu_time_works():
        return "GNU /usr/bin/time -v (Maximum resident set size of the child)"
    try:
        import psutil  # noqa: F401

        return "psutil polling every 50 ms (sum of RSS over the child's process tree)"
    except ImportError:
        return "getrusage(RUSAGE_CHILDREN).ru_maxrss (high-water mark over children)"


@dataclass
class ColdRun:
    argv: list[str]
    rc: int
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_mib: float | None
    rss_method: str
    stdout: str
    stderr: str
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    timed_out: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    def json(self) -> dict:
        """stdout parsed as the last JSON object line (the CLI prints one with --json)."""
        for line in reversed(self.stdout.strip().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)
        raise ValueError(f"no JSON object on stdout of {shell_join(self.argv)}; stderr tail:\n{self.stderr[-2000:]}")

    def summary(self) -> dict:
        return {
            "argv": self.argv,
            "rc": self.rc,
            "wall_s": round(self.wall_s, 3),
            "user_s": round(self.user_s, 3),
            "sys_s": round(self.sys_s, 3),
            "max_rss_mib": None if self.max_rss_mib is None else round(self.max_rss_mib, 1),
            "rss_method": self.rss_method,
            "load_before": self.load_before,
            "load_after": self.load_after,
            "timed_out": self.timed_out,
            **self.extra,
        }


def _parse_gnu_time(text: str) -> dict[str, float]:
    """Peak RSS (MiB) and user/system CPU seconds of the child from ``/usr/bin/time -v``."""
    keys = {"Maximum resident set size": "max_rss_mib", "User time (seconds)": "user_s", "System time (seconds)": "sys_s"}
    out: dict[str, float] = {}
    for line in text.splitlines():
        for label, key in keys.items():
            if line.strip().startswith(label):
                value = float(line.rsplit(":", 1)[1])
                out[key] = value / 1024.0 if key == "max_rss_mib" else value
    return out


def _pump(stream, sink: list[str], echo: str | None) -> None:
    for line in iter(stream.readline, ""):
        sink.append(line)
        if echo is not None:
            print(f"{echo}{line}", end="", file=sys.stderr, flush=True)
    stream.close()


def run_cold(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout_s: float | None = None,
    echo_stderr: str | None = None,
    cwd: Path = REPO,
) -> ColdRun:
    """Run ``argv`` as a fresh process; return wall time, CPU time, peak RSS and its output.

    ``echo_stderr``: a prefix; when given, the child's stderr lines are copied to ours as they come.
    """
    from results import load_average

    argv = [str(a) for a in argv]
    use_time = gnu_time_works()
    time_file = None
    full = argv
    if use_time:
        fd, time_file = tempfile.mkstemp(suffix=".time", dir=scratch_dir())
        os.close(fd)
        full = [GNU_TIME, "-v", "-o", time_file] + argv
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = load_average()
    out: list[str] = []
    err: list[str] = []
    started = time.perf_counter()
    proc = subprocess.Popen(
        full, cwd=cwd, env=env or child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    threads = [
        threading.Thread(target=_pump, args=(proc.stdout, out, None), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, err, echo_stderr), daemon=True),
    ]
    for t in threads:
        t.start()
    peak = 0
    poll = None
    if not use_time:
        try:
            import psutil

            poll = psutil.Process(proc.pid)
        except Exception:
            poll = None
    timed_out = False
    while True:
        try:
            proc.wait(timeout=0.05)
            break
        except subprocess.TimeoutExpired:
            pass
        if poll is not None:
            try:
                rss = poll.memory_info().rss + sum(c.memory_info().rss for c in poll.children(recursive=True))
                peak = max(peak, rss)
            except Exception:
                pass
        if timeout_s is not None and time.perf_counter() - started > timeout_s:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            break
    wall = time.perf_counter() - started
    for t in threads:
        t.join(timeout=10)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    max_rss = None
    method = rss_method()
    # CPU time: RUSAGE_CHILDREN deltas also count any other child of ours reaped meanwhile (e.g. SDK
    # job processes), so GNU time's own figures for this child are preferred when available
    user_s, sys_s = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    if use_time and time_file:
        try:
            parsed = _parse_gnu_time(Path(time_file).read_text())
        finally:
            os.unlink(time_file)
        max_rss = parsed.get("max_rss_mib")
        user_s, sys_s = parsed.get("user_s", user_s), parsed.get("sys_s", sys_s)
    elif poll is not None:
        max_rss = peak / 2**20 if peak else None
    else:
        max_rss = after.ru_maxrss / 1024.0 if after.ru_maxrss > before.ru_maxrss else None
    return ColdRun(
        argv=argv,
        rc=proc.returncode,
        wall_s=wall,
        user_s=user_s,
        sys_s=sys_s,
        max_rss_mib=max_rss,
        rss_method=method,
        stdout="".join(out),
        stderr="".join(err),
        load_before=load_before,
        load_after=load_average(),
        timed_out=timed_out,
    )


def synth_cli(*args: str) -> list[str]:
    """argv of the project's CLI run by this interpreter."""
    return [sys.executable, "-m", "synth_core.cli", *map(str, args)]


def check_run(run: ColdRun, what: str) -> None:
    """Raise (a crash of the benchmark) when a command failed; its stderr tail goes to ours."""
    if run.rc != 0 or run.timed_out:
        tail = run.stderr[-4000:]
        raise RuntimeError(
            f"{what} failed (rc={run.rc}, timed_out={run.timed_out}, {run.wall_s:.1f} s):\n"
            f"  {shell_join(run.argv)}\n{tail}"
        )


def save_json(name: str, data) -> Path:
    """Raw figures of a run, for later comparison (``benchmarks/out/`` is not tracked)."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    text = json.dumps(data, indent=2, default=str) + "\n"
    tmp.write_text(text)
    os.replace(tmp, path)
    history = OUT_DIR / "history"  # every run kept, for comparing loaded and quiet runs
    history.mkdir(exist_ok=True)
    (history / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(text)
    return path


def median(values: Sequence[float]) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


__all__ = [
    "ColdRun",
    "REPO",
    "SCRATCH",
    "check_run",
    "child_env",
    "fresh_numba_cache",
    "log",
    "median",
    "rel",
    "remove_tree",
    "reproduce_command",
    "rss_method",
    "run_cold",
    "save_json",
    "shared_dir",
    "shared_file",
    "shell_join",
    "synth_cli",
]
