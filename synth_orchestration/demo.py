"""``make demo`` and ``make run DATASET=NAME``: run one dataset's graph headless and print what it
achieved.

Without arguments (``make demo``) it runs the flat graph on the first flat dataset; ``--dataset``
picks a dataset and, unless ``--kind`` says otherwise, its graph from the datasets file. The run
goes to the project's Dagster instance (``DAGSTER_HOME``, set by the Makefile), so it shows up in
``make ui`` afterwards. Exit status: 0 when every check passed and the output is published, 1
when a check failed (the failed check and its reason are printed), 2 for a configuration mistake
or a failed step (one line each).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import dagster as dg

from synth_orchestration.resources import STATE_DIR


def _format_table(report: dict) -> str:
    lines = []
    stages = report["table"]["stages"]
    # each row's time is its Dagster step's (the random sample's: the pool step), so the step is named
    header = (f"{'stage':<20}{'univariate':>11}{'bivariate':>11}{'trivariate':>11}{'coherence':>11}"
              f"{'overall':>10}  {'step':<16}{'step_s':>7}")
    lines += ["accuracy against training, by stage (mostlyai-qa definitions)", header, "-" * len(header)]
    for s in stages:
        def f(v):
            return f"{v:.5f}" if v is not None and v == v else "-"
        t = s.get("elapsed_s")
        lines.append(f"{s['stage']:<20}{f(s['univariate']):>11}{f(s['bivariate']):>11}{f(s['trivariate']):>11}"
                     f"{f(s['coherence']):>11}{f(s['overall']):>10}  {s.get('step', ''):<16}"
                     f"{(f'{t:.1f}' if t else '-'):>7}")
    def cell(v):  # numbers to 5 decimals; intervals ("low–high") and names as they are
        return f"{v:.5f}" if isinstance(v, (int, float)) else str(v)

    for title, rows in (("against training ∪ holdout (the published figures)", report["table"]["evaluation"]),
                        ("privacy", report["table"]["privacy"])):
        lines += ["", title]
        for row in rows:
            r, o = row["random pool sample"], row["output"]
            if o is None or o != o:
                continue
            lines.append(f"  {row['metric']:<27} random {cell(r):<15} output {cell(o)}")
    guard = report["table"].get("guard") or []
    if guard:
        lines += ["", "privacy guard (what selection left out)"]
        lines += [f"  {row['figure']:<27} {row['value']:,.6g}" for row in guard]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run one dataset's graph (``--check``: only check the dataset name); return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m synth_orchestration.demo")
    parser.add_argument("--kind", choices=["flat", "sequential"],
                        help="graph; default: the dataset's kind from the datasets file, or flat")
    parser.add_argument("--dataset", help="partition (dataset name); default: the first of its kind")
    parser.add_argument("--check", action="store_true",
                        help="only check the dataset name: print the problem on stdout (for make) and exit 2, "
                        "or exit 0")
    parser.add_argument("--label", default="demo", help="name that starts the messages (make run passes 'run')")
    args = parser.parse_args(argv)
    label = args.label

    from synth_core.errors import InputError

    try:  # a broken datasets file is refused when the catalog loads
        from synth_orchestration.common import catalog, datasets_of

        current = catalog()
    except InputError as exc:
        return _refuse(label, str(exc), args.check)
    if args.dataset is not None:
        spec = next((s for s in current.datasets if s.name == args.dataset), None)
        if spec is None:
            where = f" in {current.path}" if current.path.exists() else " (built-in demo datasets)"
            known = ", ".join(s.name for s in current.datasets) or "none"
            return _refuse(label, f"unknown dataset {args.dataset!r}{where}; known: {known}", args.check)
        kind = args.kind or spec.kind
        if kind != spec.kind:
            return _refuse(label, f"dataset {spec.name!r} is {spec.kind}, not {kind}", args.check)
        dataset = spec.name
    else:
        kind = args.kind or "flat"
        specs = datasets_of(kind)
        if not specs:
            return _refuse(label, f"no {kind} dataset is configured", args.check)
        dataset = specs[0].name
    if args.check:
        return 0

    os.environ.setdefault("DAGSTER_HOME", str(STATE_DIR / "dagster_home"))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    if "python_logs:" not in config.read_text():  # the library's progress lines in the run logs
        with config.open("a") as fh:
            fh.write("python_logs:\n  managed_python_loggers:\n    - synth_core\n  python_log_level: INFO\n")

    from synth_orchestration.definitions import defs

    job = defs.resolve_job_def(f"{kind}_pipeline")
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        print(f"{label}: running {kind}_pipeline on {dataset!r} (Dagster instance {home})", flush=True)
        result = job.execute_in_process(instance=instance, partition_key=dataset, raise_on_error=False)
        elapsed = time.perf_counter() - started
        failed_checks = [e for e in result.get_asset_check_evaluations() if not e.passed]
        for failure in result.all_node_events:
            if failure.is_step_failure:
                data = failure.step_failure_data
                message = data.user_failure_data.description if data.user_failure_data else _innermost(data.error)
                print(f"{label}: step {failure.step_key} failed: {message.strip().splitlines()[0]}", file=sys.stderr)
        if failed_checks:
            for e in failed_checks:
                print(f"{label}: check {e.check_name} failed: {e.description}", file=sys.stderr)
            print(f"{label}: downstream assets were skipped; run {result.run_id} is in the UI (make ui)",
                  file=sys.stderr)
            return 1
        if not result.success:
            return 2 if any(e.is_step_failure for e in result.all_node_events) else 1
        report = result.output_for_node(f"{kind}__quality_report")
    published = Path(report["published"]["dir"])
    full = json.loads((published / "report.json").read_text())
    print(_format_table({"table": full["table"]}))
    print(f"\npublished {report['published']['parquet']} (and .csv, manifest.json)")
    print(f"quality report: {published / 'report.html'}")
    print(f"{label}: done in {elapsed:.0f} s; run {result.run_id} is in the Dagster UI (make ui)")
    return 0


def _innermost(error) -> str:
    """An unexpected step error's own message: Dagster wraps it in a step execution error."""
    while error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
        error = error.cause
    return error.message


def _refuse(label: str, problem: str, check: bool) -> int:
    """A configuration mistake: one line (on stdout under ``--check``, where make reads it), exit 2."""
    print(f"{label}: {problem}", file=sys.stdout if check else sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
