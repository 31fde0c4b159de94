"""Write one named section of ``benchmarks/RESULTS.md``, leaving the other sections alone.

A section is everything between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``. Writing a
section replaces that block when it exists and appends it otherwise. The file is rewritten
atomically (temporary file in the same folder, then ``os.replace``) under an advisory lock, so a
reader never sees half a file and two benchmarks finishing together do not lose each other's
section.

Every section has the same parts: what was measured, the command that reproduces it, the
machine facts before and after the run (CPU count, load average, date, versions), one or more
Markdown tables of figures, and the targets with the measured value and ✅ / ❌.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_PATH = BENCH_DIR / "RESULTS.md"
OUT_DIR = BENCH_DIR / "out"  # untracked (see .gitignore): raw JSON of each run, the lock file

HEADER = """# Benchmark results

Written by the scripts in `benchmarks/` (`make bench`, or `.venv/bin/python -m benchmarks.run_all`); each
script replaces only its own section. The machine is shared with other work, so wall times are
noisy: every section records the load average before and after its run. Targets that are missed
are recorded here, not raised as errors.
"""

PASS, FAIL, NA = "✅", "❌", "–"


# ------------------------------------------------------------------------------------------------
# machine facts
# ------------------------------------------------------------------------------------------------


def _version(module: str) -> str:
    try:
        mod = __import__(module)
        return str(getattr(mod, "__version__", "?"))
    except Exception:  # not installed in this interpreter
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git_state() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True,
            timeout=10
        ).stdout.strip()
        untracked = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "unknown"
    notes = []
    if dirty:
        notes.append("modified tracked files")
    if untracked != dirty:
        notes.append("untracked files")
    return head + (f" ({', '.join(notes)})" if notes else "")


def load_average() -> tuple[float, float, float]:
    try:
        one, five, fifteen = os.getloadavg()
        return round(one, 2), round(five, 2), round(fifteen, 2)
    except OSError:
        return (float("nan"),) * 3


def machine_facts() -> dict[str, Any]:
    """Facts about this machine and interpreter, taken now (call once before a run)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": _cpu_model(),
        "mem_total_gib": _mem_total_gib(),
        "load_before": load_average(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "git": _git_state(),
    }


# ------------------------------------------------------------------------------------------------
# Markdown pieces
# ------------------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 5) -> str:
    """A table cell: floats with ``digits`` decimals, None as a dash, the rest as text."""
    if value is None:
        return NA
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """A Markdown table; ``align`` is one letter per column (l/r), default: first left, rest right."""
    headers = list(headers)
    align = align or ("l" + "r" * (len(headers) - 1))
    rule = [{"r": "---:", "c": ":---:"}.get(a, ":---") for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    for row in rows:
        cells = [c if isinstance(c, str) else fmt(c) for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass
class Target:
    """One target: what it is, the bound as text, the measured value as text, and the verdict."""

    name: str
    target: str
    measured: str
    ok: bool | None  # None: not measured (skipped)

    @property
    def mark(self) -> str:
        return NA if self.ok is None else (PASS if self.ok else FAIL)


@dataclass
class Section:
    """Everything one benchmark writes into RESULTS.md."""

    name: str  # marker name: bench:NAME
    title: str
    what: str  # what was measured (Markdown)
    command: str  # exact command to reproduce
    facts: dict[str, Any]  # machine_facts() taken before the run
    tables: list[tuple[str, str]] = field(default_factory=list)  # (caption, markdown table)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load_after: tuple[float, float, float] | None = None
    elapsed_s: float | None = None

    def add_table(self, caption: str, headers: Sequence[str], rows: Iterable[Sequence[Any]],
                  align: str | None = None) -> None:
        self.tables.append((caption, md_table(headers, rows, align)))

    def target(self, name: str, target: str, measured: str, ok: bool | None) -> Target:
        t = Target(name, target, measured, ok)
        self.targets.append(t)
        return t

    def render(self) -> str:
        f = self.facts
        after = self.load_after if self.load_after is not None else load_average()
        lines = [f"## {self.title}", "", self.what.strip(), "", "Reproduce:", "", "```bash", self.command.strip(),
                 "```", ""]
        lines.append(
            md_table(
                ["machine", "value"],
                [
                    ["date", f["date"]],
                    ["CPUs (os.cpu_count / usable)", f"{f['cpu_count']} / {f['cpus_usable']} ({f['cpu_model']})"],
                    ["memory", f"{f['mem_total_gib']} GiB"],
                    ["load average 1/5/15 min, before", " / ".join(f"{x:.2f}" for x in f["load_before"])],
                    ["load average 1/5/15 min, after", " / ".join(f"{x:.2f}" for x in after)],
                    ["python / numpy / pandas", f"{f['python']} / {f['numpy']} / {f['pandas']}"],
                    ["git", f["git"]],
                    ["benchmark wall time", f"{self.elapsed_s:.0f} s" if self.elapsed_s is not None else NA],
                ],
                "ll",
            )
        )
        lines.append("")
        if self.targets:
            lines.append("Targets:")
            lines.append("")
            lines.append(
                md_table(["target", "bound", "measured", ""],
                         [[t.name, t.target, t.measured, t.mark] for t in self.targets], "lllc")
            )
            lines.append("")
        for caption, table in self.tables:
            lines.extend([caption, "", table, ""])
        if self.notes:
            lines.append("Notes:")
            lines.append("")
            lines.extend(f"- {n}" for n in self.notes)
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def summary(self) -> str:
        """Plain-text version for stdout: the targets and the tables."""
        out = [f"== {self.title} =="]
        for t in self.targets:
            out.append(f"  {t.mark} {t.name}: {t.measured} (target {t.target})")
        for caption, table in self.tables:
            out.extend(["", caption, table])
        if self.notes:
            out.extend(["", "Notes:"] + [f"- {n}" for n in self.notes])
        return "\n".join(out)


# ------------------------------------------------------------------------------------------------
# the file
# ------------------------------------------------------------------------------------------------


def _markers(name: str) -> tuple[str, str]:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"section name must be [A-Za-z0-9_.-]+, got {name!r}")
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with section ``name`` set to ``body`` (replaced in place, or appended)."""
    start, end = _markers(name)
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _m: block, text, count=1)
    if not text.strip():
        text = HEADER
    return text.rstrip() + "\n\n" + block + "\n"


def read_section(name: str, path: Path = RESULTS_PATH) -> str | None:
    """The body of section ``name`` (without markers), or None."""
    if not path.is_file():
        return None
    start, end = _markers(name)
    m = re.search(re.escape(start) + r"\n(.*?)\n?" + re.escape(end), path.read_text(), re.DOTALL)
    return m.group(1) if m else None


def write_section(name: str, body: str, path: Path = RESULTS_PATH) -> Path:
    """Replace (or append) section ``name`` of ``path`` atomically; other sections are kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with open(OUT_DIR / ".results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = path.read_text() if path.is_file() else ""
        new = replace_section(old, name, body)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(new)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def write(section: Section, path: Path = RESULTS_PATH) -> Path:
    """Render ``section`` and write it into ``path``."""
    return write_section(section.name, section.render(), path)


__all__ = [
    "Section",
    "Target",
    "fmt",
    "load_average",
    "machine_facts",
    "md_table",
    "read_section",
    "replace_section",
    "write",
    "write_section",
]
