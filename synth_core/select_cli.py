"""``synth select``: run the selection stages on any pool and print the per-stage table."""

from __future__ import annotations

import json
import logging
import time

from synth_core.io import read_table, write_table

log = logging.getLogger(__name__)


def stage_table(rows: list[dict]) -> str:
    """Fixed-width table: one line per stage."""
    header = f"{'stage':<9} {'rows':>9} {'objective':>10} {'uni':>8} {'bi':>8} {'tri':>8} {'coh':>8} {'overall':>8} {'time_s':>7}"
    lines = [header, "-" * len(header)]
    for r in rows:
        acc = r["accuracy"]
        coh = f"{acc['coherence']:.5f}" if acc.get("coherence") is not None else "-"
        tri = f"{acc['trivariate']:.5f}" if acc.get("trivariate") is not None else "-"
        bi = f"{acc['bivariate']:.5f}" if acc.get("bivariate") is not None else "-"
        lines.append(
            f"{r['stage']:<9} {r['rows']:>9,} {r['objective']:>10.6f} {acc['univariate']:>8.5f} {bi:>8} "
            f"{tri:>8} {coh:>8} {acc['overall']:>8.5f} {r['elapsed_s']:>7.1f}"
        )
    return "\n".join(lines)


def run_select(args) -> int:
    from synth_core.evaluate import check_inputs, evaluate
    from synth_core.select import SelectionSettings, output_table, run_selection

    started = time.perf_counter()
    if args.group_key:
        from synth_core.sequential_select import run_sequential_select

        return run_sequential_select(args)
    training = read_table(args.training, what="training")
    pool = read_table(args.pool, what="pool")
    holdout = read_table(args.holdout, what="holdout") if args.holdout else None
    check_inputs(training, pool, holdout, names={"training": args.training, "synthetic": args.pool, "holdout": str(args.holdout)})
    size = args.size if args.size is not None else len(training)
    from synth_core.io import table_format

    table_format(args.output)  # fail on an unsupported output type before any work
    settings = SelectionSettings(seed=args.seed)
    problem, records = run_selection(training, pool, size, settings)

    rows = []
    for rec in records:
        subset = output_table(training, pool, rec.rows)
        # evaluation uses qa's reference (training ∪ holdout); the holdout played no part above
        ev = evaluate(training, subset, holdout, seed=args.seed)
        row = {
            "stage": rec.stage,
            "rows": len(rec.rows),
            "objective": rec.objective,
            "elapsed_s": rec.elapsed_s,
            "accuracy": ev.accuracy.to_dict(),
            "details": rec.details,
        }
        if ev.privacy is not None:
            row["privacy"] = ev.privacy.to_dict()
        rows.append(row)
    final = output_table(training, pool, records[-1].rows)
    write_table(final, args.output)
    total = time.perf_counter() - started
    if args.json:
        print(json.dumps({"stages": rows, "output": str(args.output), "elapsed_s": round(total, 3)}, default=str))
        return 0
    print(stage_table(rows))
    if holdout is not None:
        print("\nprivacy (random pool sample vs refined)")
        keys = ["dcr_share", "nndr_ratio", "exact_copy_training", "exact_copy_holdout", "dcr_training", "dcr_holdout"]
        first, last = rows[0].get("privacy", {}), rows[-1].get("privacy", {})
        for k in keys:
            print(f"  {k:<22} {first.get(k, float('nan')):>9.5f} {last.get(k, float('nan')):>9.5f}")
    print(f"\nwrote {len(final):,} rows to {args.output} in {total:.1f} s")
    return 0


__all__ = ["run_select", "stage_table"]
