"""Shared pieces of the benchmark scripts: paths, logging, timing a command as a cold process, and
the life of one benchmark run (:class:`Bench`: common flags, machine facts, its RESULTS.md
section, the closing summary).

The benchmarks are a package: each script runs as a module from the repository root
(``.venv/bin/python -m benchmarks.bench_x``, studies as ``-m benchmarks.studies.x``) and imports
its siblings as ``from benchmarks import harness as H``; no script edits the import path.

A script keeps its own workload and tables; everything it would otherwise repeat lives here:

* :class:`Bench` parses ``--quick`` and ``--no-write`` (plus the script's own flags), takes the
  machine facts, builds the section with a reproduce command relative to the repository, and
  finishes it (elapsed time, load after, raw JSON, summary on stdout, RESULTS.md unless
  ``--no-write``/``--quick``);
* :func:`run_checked` and :func:`cold_runs` time commands as fresh processes and fail loudly;
* :func:`evaluate_seeds` scores a table over several evaluation seeds in process;
* :func:`rel` writes a path so that a reader on another machine can follow it.

``run_cold`` starts a fresh interpreter (``sys.executable -m ...``), so import time, file reading
and numba's JIT (or its on-disk cache) are all part of the figure. Peak memory of the child is
taken from GNU ``/usr/bin/time -v`` when that works on this machine, else by polling the process
tree with psutil, else from ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` (a high-water mark over all
children so far: it only shows this child's peak when it exceeds every earlier child's).
"""

from __future__ import annotations

import argparse
import hashlib
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from benchmarks import results as R

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
    """A path as a reader on another machine should read it.

    Inside the repository: relative to its root. Inside the scratch folder: under
    ``$SYNTH_BENCH_SCRATCH``. Inside the shared data folder: under ``../shared`` (relative to
    the repository root) when it is that default, else under ``$SYNTH_SHARED``. Anything else
    as given.
    """
    p = Path(path).resolve()
    shared = shared_dir().resolve()
    shared_name = "../shared" if shared == (REPO.parent / "shared").resolve() else "$SYNTH_SHARED"
    for root, name in ((REPO, None), (SCRATCH.resolve(), "$SYNTH_BENCH_SCRATCH"), (shared, shared_name)):
        try:
            inner = p.relative_to(root)
        except ValueError:
            continue
        if name is None:
            return str(inner)
        return name if str(inner) == "." else f"{name}/{inner}"
    return str(path)


def shell_join(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(str(a)) for a in argv)


def _check_module(module: str) -> str:
    """``module`` when it names a benchmark module (``benchmarks.bench_x``, ``benchmarks.studies.x``)."""
    parts = module.split(".")
    if parts[0] != "benchmarks" or len(parts) < 2 or not all(p.isidentifier() for p in parts):
        raise ValueError(f"a benchmark is named by its module, e.g. 'benchmarks.bench_evaluate', not {module!r}")
    return module


def reproduce_command(module: str, args: Sequence[str] = ()) -> str:
    """The command line that reruns a benchmark module, typed in the repository root (after
    ``make setup``); nothing in it is specific to this machine."""
    cmd = f".venv/bin/python -m {_check_module(module)}"
    return cmd + ("" if not args else " " + shell_join(args))


def module_argv(module: str, args: Sequence[str] = ()) -> list[str]:
    """The argv that runs a benchmark module with this interpreter (``cwd`` the repository root, as
    :func:`run_cold` and :func:`child_env` arrange)."""
    return [sys.executable, "-m", _check_module(module), *map(str, args)]


def child_env(numba_cache: Path | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of a benchmarked child: the repository importable (the library and the
    ``benchmarks`` package, whatever the child's working folder), shared data located."""
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
        """The stdout parsed as the last JSON object line (the CLI prints one with --json)."""
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
    keys = {"Maximum resident set size": "max_rss_mib", "User time (seconds)": "user_s",
            "System time (seconds)": "sys_s"}
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
    argv = [str(a) for a in argv]
    use_time = gnu_time_works()
    time_file = None
    full = argv
    if use_time:
        fd, time_file = tempfile.mkstemp(suffix=".time", dir=scratch_dir())
        os.close(fd)
        full = [GNU_TIME, "-v", "-o", time_file] + argv
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = R.load_average()
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
        load_after=R.load_average(),
        timed_out=timed_out,
    )


def synth_cli(*args: str) -> list[str]:
    """The argv of the project's CLI run by this interpreter."""
    return [sys.executable, "-m", "synth_core.cli", *map(str, args)]


def check_run(run: ColdRun, what: str) -> None:
    """Raise (a crash of the benchmark) when a command failed; its stderr tail goes to ours."""
    if run.rc != 0 or run.timed_out:
        tail = run.stderr[-4000:]
        raise RuntimeError(
            f"{what} failed (rc={run.rc}, timed_out={run.timed_out}, {run.wall_s:.1f} s):\n"
            f"  {shell_join(run.argv)}\n{tail}"
        )


def run_checked(
    argv: Sequence[str],
    what: str,
    *,
    env: dict[str, str] | None = None,
    timeout_s: float = 3600,
    echo_stderr: str | None = None,
    numba_cache: str | None = None,
) -> ColdRun:
    """:func:`run_cold`, logged before and after, raising when the command failed.

    Parameters
    ----------
    argv : sequence of str
    what : str
        Names the command in the log and in the error.
    env, timeout_s, echo_stderr
        As for :func:`run_cold`.
    numba_cache : str, optional
        State of the numba cache for this run ("empty (JIT compile)", "warm"), kept in
        ``run.extra["numba_cache"]`` for the tables.

    Returns
    -------
    ColdRun
    """
    log(f"{what}: cold run" + (f", numba cache {numba_cache}" if numba_cache else ""))
    run = run_cold(argv, env=env, timeout_s=timeout_s, echo_stderr=echo_stderr)
    check_run(run, what)
    if numba_cache is not None:
        run.extra["numba_cache"] = numba_cache
    rss = "?" if run.max_rss_mib is None else f"{run.max_rss_mib:,.0f} MiB"
    log(f"{what}: {run.wall_s:.1f} s wall, {run.cpu_s:.1f} s CPU, peak RSS {rss}, load before {run.load_before[0]:.2f}")
    return run


@contextmanager
def numba_env(tag: str, extra: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """The environment of benchmarked children sharing one fresh, empty numba cache (removed
    afterwards): the first child compiles the kernels, the later ones load them."""
    cache = fresh_numba_cache(tag)
    try:
        yield child_env(numba_cache=cache, extra=extra)
    finally:
        remove_tree(cache)


def cold_runs(
    argv: Sequence[str],
    repeats: int,
    what: str,
    *,
    env: dict[str, str] | None = None,
    timeout_s: float = 3600,
    echo_stderr: str | None = None,
    after: Callable[[ColdRun], None] | None = None,
) -> list[ColdRun]:
    """``repeats`` cold processes of ``argv`` sharing one fresh numba cache.

    Run 1 includes JIT compilation, the later runs load the compiled kernels, as every later run
    on a machine does.

    Parameters
    ----------
    argv : sequence of str
    repeats : int
    what : str
        Names the command in the log, in errors and in the numba cache folder.
    env : dict, optional
        A :func:`numba_env` that the caller keeps for later commands (its cache must still be
        empty); by default one of its own, removed afterwards.
    timeout_s, echo_stderr
        As for :func:`run_cold`.
    after : callable, optional
        Called with each run as it ends (to hash its output file before the next run
        overwrites it, say).

    Returns
    -------
    list of ColdRun
        ``extra["numba_cache"]`` says "empty (JIT compile)" for the first, "warm" for the others.
    """
    if env is None:
        with numba_env(what.replace(" ", "-")) as own:
            return cold_runs(argv, repeats, what, env=own, timeout_s=timeout_s, echo_stderr=echo_stderr, after=after)
    runs = []
    for i in range(repeats):
        state = "empty (JIT compile)" if i == 0 else "warm"
        run = run_checked(argv, f"{what} {i + 1}/{repeats}", env=env, timeout_s=timeout_s,
                          echo_stderr=echo_stderr, numba_cache=state)
        if after is not None:
            after(run)
        runs.append(run)
    return runs


def sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes (to show that two runs wrote the same output)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


# ------------------------------------------------------------------------------------------------
# in-process measurements
# ------------------------------------------------------------------------------------------------


def evaluate_seeds(training, holdout, table, seeds: Sequence[int], *, group_key: str | None = None) -> dict:
    """Accuracy and privacy of ``table`` for each evaluation seed, as ``synth evaluate`` computes them.

    Parameters
    ----------
    training, holdout, table : DataFrame
    seeds : sequence of int
        Evaluation seeds (qa's ``set_random_state``, the privacy samples).
    group_key : str, optional
        Sequential data: the column linking a sequence's rows.

    Returns
    -------
    dict
        ``runs``: per seed ``seed``, ``accuracy`` and ``privacy`` (their ``to_dict()``),
        ``privacy_ok`` and ``reasons`` (the verdict of ``synth_core.metrics._gate.privacy_gate`` with
        ``GateSettings()`` defaults, as ``evaluate`` applies it); ``mean``: every accuracy field
        averaged over the seeds; ``privacy_ok``: the gate passed for every seed.
    """
    from synth_core.metrics import evaluate

    runs = []
    for s in seeds:
        ev = evaluate(training, table, holdout, group_key=group_key, seed=s)
        gate = ev.privacy_gate
        runs.append({"seed": s, "accuracy": ev.accuracy.to_dict(), "privacy": ev.privacy.to_dict(),
                     "privacy_ok": bool(gate.passed), "reasons": list(gate.reasons)})
    fields = [k for k, v in runs[0]["accuracy"].items() if isinstance(v, (int, float)) or v is None]
    mean = {}
    for k in fields:
        values = [r["accuracy"][k] for r in runs if r["accuracy"][k] is not None]
        mean[k] = sum(values) / len(values) if values else None
    return {"seeds": list(seeds), "mean": mean, "runs": runs, "privacy_ok": all(r["privacy_ok"] for r in runs)}


def gate_rule(settings=None) -> str:
    """The privacy gate's rule in words, with the thresholds of ``settings`` (default:
    ``GateSettings()``), for a target's bound."""
    from synth_core.metrics import GateSettings

    g = settings or GateSettings()
    return (f"`privacy_gate` passes: dcr_share ≤ {g.max_dcr_share}, nndr_ratio ≥ {g.min_nndr_ratio}, exact copies of "
            f"training rows (and whole sequences), size-matched, not above the holdout's at 95 % (CI low ≤ "
            f"{g.exact_copy_tolerance}), membership_auc CI low "
            f"≤ {g.max_membership_auc}")


# ------------------------------------------------------------------------------------------------
# one benchmark run
# ------------------------------------------------------------------------------------------------


class Bench:
    """One run of a benchmark script: its flags, machine facts, section and closing.

    Parameters
    ----------
    module : str
        The script's module (``benchmarks.bench_x``, ``benchmarks.studies.x``): the reproduce
        command runs it, and its last part names the raw JSON in ``benchmarks/out/``.
    doc : str
        The script's module docstring; its first line describes the command.
    quick : str
        What ``--quick`` makes smaller. ``--quick`` implies ``--no-write``: development runs never
        replace the recorded figures.
    sdk_stdout : bool, default False
        The MOSTLY AI SDK prints status lines on stdout, also at exit; when True, stdout is sent
        to stderr from :meth:`start` on, so that the real stdout carries only the summary.

    Attributes
    ----------
    parser : argparse.ArgumentParser
        Add the script's own flags before :meth:`parse`.
    args : argparse.Namespace
    facts : dict
        :func:`results.machine_facts`, taken by :meth:`start`.
    """

    def __init__(self, module: str, doc: str, *, quick: str, sdk_stdout: bool = False):
        self.module = _check_module(module)
        self.parser = argparse.ArgumentParser(prog=f"python -m {self.module}", description=doc.strip().splitlines()[0])
        self.parser.add_argument("--quick", action="store_true", help=f"{quick}; writes nothing")
        self.parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
        self.sdk_stdout = sdk_stdout
        self.out = sys.stdout
        self.args: argparse.Namespace | None = None
        self.script_args: list[str] = []
        self.facts: dict[str, Any] = {}
        self.started = time.perf_counter()

    def parse(self, argv: Sequence[str] | None = None, *, start: bool = True) -> argparse.Namespace:
        """Parse the flags (``sys.argv`` when ``argv`` is None); then :meth:`start` unless told not to."""
        argv = list(sys.argv[1:] if argv is None else argv)
        args = self.parser.parse_args(argv)
        if args.quick:
            args.no_write = True
        self.args = args
        # --no-write changes nothing measured, so the recorded command leaves it out
        self.script_args = [a for a in argv if a != "--no-write"]
        if start:
            self.start()
        return args

    def start(self) -> dict[str, Any]:
        """Take the machine facts and start the clock (call once, before any measured work)."""
        if self.sdk_stdout:
            self.out, sys.stdout = sys.stdout, sys.stderr
        self.facts = R.machine_facts()
        self.started = time.perf_counter()
        log(f"machine: {self.facts['cpu_count']} CPUs, load {self.facts['load_before']}")
        return self.facts

    def section(self, name: str, title: str, what: str, *, custom: bool = False) -> R.Section:
        """The run's section; ``custom`` (non-default sizes) and ``--quick`` write ``NAME_custom``,
        so that such a run never replaces the recorded one."""
        quick = bool(self.args and self.args.quick)
        return R.Section(
            name=name + ("_custom" if custom or quick else ""),
            title=title + (" (--quick)" if quick else ""),
            what=what,
            command=reproduce_command(self.module, self.script_args),
            facts=self.facts,
        )

    def finish(self, section: R.Section, raw: dict, *, write: bool = True) -> int:
        """Close ``section``, save ``raw`` (with the facts) to ``benchmarks/out/``, print the
        summary, and write the section unless ``--no-write``/``--quick`` or ``write`` is False.

        Returns
        -------
        int
            0, the script's exit status (missed targets are recorded, not raised).
        """
        section.elapsed_s = time.perf_counter() - self.started
        section.load_after = R.load_average()
        save_json(self.module.rsplit(".", 1)[-1], {"facts": self.facts, **raw})
        print(section.summary(), file=self.out, flush=True)
        if write and not self.args.no_write:
            path = R.write(section)
            log(f"wrote section '{section.name}' of {rel(path)}")
        return 0


__all__ = [
    "Bench",
    "ColdRun",
    "REPO",
    "SCRATCH",
    "check_run",
    "child_env",
    "cold_runs",
    "evaluate_seeds",
    "fresh_numba_cache",
    "gate_rule",
    "log",
    "median",
    "module_argv",
    "numba_env",
    "rel",
    "remove_tree",
    "reproduce_command",
    "rss_method",
    "run_checked",
    "run_cold",
    "save_json",
    "scratch_dir",
    "sha256",
    "shared_dir",
    "shared_file",
    "shell_join",
    "synth_cli",
]
