"""The ``synth`` command line.

``synth evaluate``  accuracy (qa definitions), privacy and the privacy gate's verdict of a
                    synthetic table (exit 0 whatever the verdict: it is a measurement);
``synth select``    select the best-fitting subset of a candidate pool, judge it with the pipeline's
                    three checks and write it only when they pass (exit 3 otherwise);
``synth history``   the trend of final accuracy and privacy per run, from the metric store.

A user mistake (missing file, unknown column, impossible size, an output that is an input or
cannot be written) prints one line to stderr and exits with status 2; a file system failure
during the run (e.g. no space left) one line and status 1. Heavy imports stay inside the
subcommands: ``synth evaluate`` loads neither torch, mostlyai nor dagster.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from synth_core.errors import InputError

EXIT_USER_ERROR = 2
EXIT_SYSTEM_ERROR = 1  # the input was fine, the machine failed (e.g. no space left for the output)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy (qa definitions) and privacy of a synthetic table")
    p.add_argument("--training", required=True, help="training table (.csv, .csv.gz, .parquet)")
    p.add_argument("--synthetic", required=True, help="synthetic table")
    p.add_argument("--holdout", help="holdout table (needed for privacy; part of qa's reference)")
    p.add_argument("--group-key", help="key column linking the rows of a sequence")
    p.add_argument("--seed", type=int, default=0, help="replays qa.set_random_state(SEED) (default 0)")
    _add_drop(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--report", metavar="FILE.html",
                   help="also write the quality report: one self-contained HTML page with pictures (opens offline)")
    p.set_defaults(func=_cmd_evaluate)


def _add_drop(p) -> None:
    p.add_argument(
        "--drop", action="append", default=[], metavar="COL",
        help="leave out this column, e.g. an identifier (repeatable); columns unique per training "
        "row are left out of the privacy figures anyway, with a warning",
    )
    p.add_argument(
        "--column", action="append", default=[], metavar="NAME=KIND",
        help="state a column's kind instead of inferring it (repeatable): categorical, integer, float, datetime, "
        "boolean or drop, as a dataset's columns: block; date-like text is detected by itself",
    )


def typed_tables(args, training, **others):
    """Type every table as a dataset's are (``synth_core.schema``; ``--column`` states kinds): training
    decides, the others follow. Returns the schema and the tables in the order given."""
    from synth_core.schema import infer_schema, parse_overrides

    schema = infer_schema(training, overrides=parse_overrides(getattr(args, "column", None) or []),
                          group_key=args.group_key, what=str(args.training))
    typed = {"training": schema.apply(training, what=str(args.training), drop_inferred=False)}
    for name, frame in others.items():
        typed[name] = None if frame is None else schema.apply(frame, what=str(getattr(args, name)), drop_inferred=False)
    return schema, typed


def _cmd_evaluate(args) -> int:
    from synth_core.io import read_table
    from synth_core.metrics import evaluate, format_evaluation

    if args.report:  # refused before anything is read
        from synth_core.report import check_report_path

        check_report_path(args.report, {"--training": args.training, "--synthetic": args.synthetic,
                                        "--holdout": args.holdout})
    training = read_table(args.training, what="training")
    synthetic = read_table(args.synthetic, what="synthetic")
    holdout = read_table(args.holdout, what="holdout") if args.holdout else None
    schema, typed = typed_tables(args, training, synthetic=synthetic, holdout=holdout)
    training, synthetic, holdout = typed["training"], typed["synthetic"], typed["holdout"]
    names = {"training": str(args.training), "synthetic": str(args.synthetic), "holdout": str(args.holdout)}
    ev = evaluate(training, synthetic, holdout, group_key=args.group_key, seed=args.seed, names=names, drop=args.drop,
                  details=bool(args.report))
    if args.report:
        from pathlib import Path

        from synth_core.report import build_report, write_report

        write_report(args.report, build_report(ev, title=f"Quality report: {Path(args.synthetic).name}",
                                               schema=schema.records()))
        print(f"synth evaluate: wrote the report to {args.report}", file=sys.stderr)
    for note in ev.warnings:
        print(f"synth evaluate: warning: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(ev.to_dict()))
    else:
        print(format_evaluation(ev))
    return 0


def _add_select(sub) -> None:
    p = sub.add_parser("select", help="select the subset of a pool that fits the training data best")
    p.add_argument("--training", required=True)
    p.add_argument("--pool", required=True, help="candidate pool from any generator")
    p.add_argument("--output", required=True, help="output table (.csv, .csv.gz, .parquet)")
    p.add_argument("--holdout", help="evaluation only: privacy figures; never used for selection")
    p.add_argument("--group-key", help="key column linking the rows of a sequence")
    p.add_argument("--size", type=int, help="rows (groups for sequences); default: as in training")
    p.add_argument("--seed", type=int, default=0)
    _add_drop(p)
    p.add_argument(
        "--no-privacy-guard", dest="privacy_guard", action="store_false",
        help="let selection use pool rows that copy or nearly copy training rows, and fit training's noise: "
        "slightly higher accuracy, an output closer to training than a random pool sample (see docs/metrics.md)",
    )
    p.add_argument("--force", action="store_true",
                   help="write the output even when a check fails (the exit status is still 3)")
    p.add_argument("--json", action="store_true", help="print the stage table as one JSON object")
    dp = p.add_argument_group("differential privacy (flat tables; see docs/metrics.md)")
    dp.add_argument("--epsilon", type=float,
                    help="total ε of the published table (DP generator + selection): selection then reads training "
                         "only through noisy count tables, bins and pairs come from the pool, the privacy guard is off")
    dp.add_argument("--delta", type=float, help="total δ (default 1e-6), split evenly between generator and selection")
    dp.add_argument("--dp-selection-share", type=float,
                    help="share of ε that selection spends (default 0.5); the rest is the generator's")
    dp.add_argument("--generator-epsilon", type=float,
                    help="the ε the pool's DP generator spent, when the pool carries no DP record of this project's "
                         "generator: the output's (ε, δ) is then stated on that condition; without either, only "
                         "selection's own guarantee is stated")
    p.set_defaults(func=_cmd_select)


def _cmd_select(args) -> int:
    from synth_core.cli._select import run_select

    return run_select(args)


def _add_history(sub) -> None:
    p = sub.add_parser("history", help="trend of final accuracy and privacy per run")
    p.add_argument("--dataset", help="only this dataset")
    p.add_argument("--store", help="metric store (default: .synth/metrics.duckdb)")
    p.add_argument("--plot", help="write a PNG plot of the trend to this file")
    p.set_defaults(func=_cmd_history)


def _cmd_history(args) -> int:
    from synth_core.ops import run_history

    return run_history(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synth", description="Private, high-fidelity synthetic twins.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_evaluate(sub)
    _add_select(sub)
    _add_history(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"synth {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # the file system refused mid-run (disk full, ...): one line, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"synth {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_SYSTEM_ERROR
    except KeyboardInterrupt:
        print(f"synth {args.command}: interrupted", file=sys.stderr)
        return 130

