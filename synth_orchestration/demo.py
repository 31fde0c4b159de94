"""``make demo``: run the main job headless on an embedded dataset and print what it achieved.

The run goes to the project's Dagster instance (``DAGSTER_HOME``, set by the Makefile), so it
shows up in ``make ui`` afterwards. Exit status: 0 when every check passed, 1 when a check failed
(the failed check and its reason are printed), 2 for a configuration mistake.
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
    header = f"{'stage':<10}{'univariate':>11}{'bivariate':>11}{'trivariate':>11}{'coherence':>11}{'overall':>10}{'time_s':>8}"
    lines += ["accuracy against training, by stage (mostlyai-qa definitions)", header, "-" * len(header)]
    for s in stages:
        def f(v):
            return f"{v:.5f}" if v is not None and v == v else "-"
        t = s.get("elapsed_s")
        lines.append(f"{s['stage']:<10}{f(s['univariate']):>11}{f(s['bivariate']):>11}{f(s['trivariate']):>11}"
                     f"{f(s['coherence']):>11}{f(s['overall']):>10}{(f'{t:.1f}' if t else '-'):>8}")
    def cell(v):  # numbers to 5 decimals; intervals ("low–high") and names as they are
        return f"{v:.5f}" if isinstance(v, (int, float)) else str(v)

    for title, rows in (("against training ∪ holdout (the published figures)", report["table"]["evaluation"]),
                        ("privacy", report["table"]["privacy"])):
        lines += ["", title]
        for row in rows:
            r, o = row["random pool sample"], row["output"]
            if o is None or o != o:
                continue
            lines.append(f"  {row['metric']:<22} random {cell(r):<15} output {cell(o)}")
    guard = report["table"].get("guard") or []
    if guard:
        lines += ["", "privacy guard (what selection left out)"]
        lines += [f"  {row['figure']:<22} {row['value']:,.6g}" for row in guard]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth_orchestration.demo")
    parser.add_argument("--kind", choices=["flat", "sequential"], default="flat")
    parser.add_argument("--dataset", help="partition (dataset name); default: the first of its kind")
    args = parser.parse_args(argv)

    os.environ.setdefault("DAGSTER_HOME", str(STATE_DIR / "dagster_home"))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    if "python_logs:" not in config.read_text():  # the library's progress lines in the run logs
        with config.open("a") as fh:
            fh.write("python_logs:\n  managed_python_loggers:\n    - synth_core\n  python_log_level: INFO\n")

    from synth_orchestration.common import datasets_of
    from synth_orchestration.definitions import defs

    specs = datasets_of(args.kind)
    if not specs:
        print(f"demo: no {args.kind} dataset is configured", file=sys.stderr)
        return 2
    dataset = args.dataset or specs[0].name
    if dataset not in {s.name for s in specs}:
        print(f"demo: unknown {args.kind} dataset {dataset!r}", file=sys.stderr)
        return 2

    job = defs.resolve_job_def(f"{args.kind}_pipeline")
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        print(f"demo: running {args.kind}_pipeline on {dataset!r} (Dagster instance {home})", flush=True)
        result = job.execute_in_process(instance=instance, partition_key=dataset, raise_on_error=False)
        elapsed = time.perf_counter() - started
        failed_checks = [e for e in result.get_asset_check_evaluations() if not e.passed]
        for failure in result.all_node_events:
            if failure.is_step_failure:
                data = failure.step_failure_data
                message = data.user_failure_data.description if data.user_failure_data else data.error.message
                print(f"demo: step {failure.step_key} failed: {message.strip().splitlines()[0]}", file=sys.stderr)
        if failed_checks:
            for e in failed_checks:
                print(f"demo: check {e.check_name} failed: {e.description}", file=sys.stderr)
            print(f"demo: downstream assets were skipped; run {result.run_id} is in the UI (make ui)", file=sys.stderr)
            return 1
        if not result.success:
            return 2 if any(e.is_step_failure for e in result.all_node_events) else 1
        report = result.output_for_node(f"{args.kind}__quality_report")
    published = Path(report["published"]["dir"])
    full = json.loads((published / "report.json").read_text())
    print(_format_table({"table": full["table"]}))
    print(f"\npublished {report['published']['parquet']} (and .csv, manifest.json)")
    print(f"quality report: {published / 'report.html'}")
    print(f"demo: done in {elapsed:.0f} s; run {result.run_id} is in the Dagster UI (make ui)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
