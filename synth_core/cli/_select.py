"""``synth select``: run the selection stages on any pool, print the per-stage table, judge the
output with the pipeline's three checks and write it only when they pass.

Exit status: 0 when the output passed and was written; 2 for a user mistake (nothing read or
written); 3 when a check failed: the check and its reasons are printed and nothing is written to
``--output`` unless ``--force`` (then the output is written and the status is still 3).
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time

import pandas as pd

from synth_core.conform import conform_table
from synth_core.errors import InputError
from synth_core.io import check_output, read_table, write_table

log = logging.getLogger(__name__)
EXIT_CHECK_FAILED = 3


def stage_table(rows: list[dict]) -> str:
    """Fixed-width table: one line per stage, with a ``groups`` column when the rows carry one
    (group selection) and "-" for an accuracy figure that was not measured."""
    groups = any("groups" in r for r in rows)
    stage = 10 if groups else 9
    header = (f"{'stage':<{stage}} " + (f"{'groups':>8} " if groups else "")
              + f"{'rows':>9} {'objective':>10} {'uni':>8} {'bi':>8} {'tri':>8} {'coh':>8} "
              f"{'overall':>8} {'time_s':>7}")
    lines = [header, "-" * len(header)]
    for r in rows:
        acc = r["accuracy"]
        cells = (f"{acc[name]:.5f}" if acc.get(name) is not None else "-"
                 for name in ("univariate", "bivariate", "trivariate", "coherence", "overall"))
        lines.append(
            f"{r['stage']:<{stage}} " + (f"{r['groups']:>8,} " if groups else "")
            + f"{r['rows']:>9,} {r['objective']:>10.6f} " + " ".join(f"{c:>8}" for c in cells)
            + f" {r['elapsed_s']:>7.1f}"
        )
    return "\n".join(lines)


def read_inputs(args) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """Check ``--output`` and read training, pool and holdout, all before any selection work.

    The output must be a writable file that is none of the inputs; the pool must hold every
    training column in a type that fits training's (converted to training's dtypes where no
    value is lost). Raises :class:`~synth_core.errors.InputError` (exit 2) otherwise.
    """
    from synth_core.metrics import check_inputs

    check_output(args.output, {"--training": args.training, "--pool": args.pool, "--holdout": args.holdout})
    training = read_table(args.training, what="training")
    pool = read_table(args.pool, what="pool")
    holdout = read_table(args.holdout, what="holdout") if args.holdout else None
    drop = list(getattr(args, "drop", None) or [])
    for col in drop:  # identifiers the user names: out of selection, privacy and the output
        if col not in training.columns:
            raise InputError(f"{args.training}: no column {col!r} to drop (--drop)")
        if col == args.group_key:
            raise InputError(f"cannot drop the group key {col!r} (--drop)")
    if drop:
        training = training.drop(columns=drop)
        pool = pool.drop(columns=drop, errors="ignore")
        holdout = holdout.drop(columns=drop, errors="ignore") if holdout is not None else None
    from synth_core.cli._main import typed_tables

    args.schema, typed = typed_tables(args, training, pool=pool, holdout=holdout)
    training, pool, holdout = typed["training"], typed["pool"], typed["holdout"]
    names = {"training": str(args.training), "synthetic": str(args.pool), "holdout": str(args.holdout)}
    check_inputs(training, pool, holdout, group_key=args.group_key, names=names)
    keys = (args.group_key,) if args.group_key else ()
    return training, conform_table(pool, training, name=str(args.pool), identifiers=keys), holdout


def privacy_budget(args):
    """The ``--epsilon``/``--delta``/``--dp-selection-share`` budget, or None (non-DP selection);
    :class:`InputError` naming the option for a bad or orphaned value."""
    from synth_core.dp import DEFAULT_DELTA, DEFAULT_SELECTION_SHARE, PrivacyBudget

    epsilon = getattr(args, "epsilon", None)
    extras = {"--delta": getattr(args, "delta", None),
              "--dp-selection-share": getattr(args, "dp_selection_share", None),
              "--generator-epsilon": getattr(args, "generator_epsilon", None)}
    if epsilon is None:
        given = [name for name, value in extras.items() if value is not None]
        if given:
            raise InputError(f"{given[0]} needs --epsilon (differentially private selection)")
        return None
    delta = extras["--delta"] if extras["--delta"] is not None else DEFAULT_DELTA
    share = extras["--dp-selection-share"] if extras["--dp-selection-share"] is not None else DEFAULT_SELECTION_SHARE
    try:
        # selection on a given pool spends its share: the split of a DP generator trained elsewhere
        budget = PrivacyBudget(epsilon=epsilon, delta=delta, selection_share=share, generator="engine")
    except InputError as exc:
        option = {"epsilon": "--epsilon", "delta": "--delta", "selection_share": "--dp-selection-share"}
        word = next((w for w in option if f"privacy {w} " in str(exc)), "epsilon")
        raise InputError(f"{option[word]}: {str(exc).split(': ', 1)[-1]}") from None
    generator = extras["--generator-epsilon"]
    if generator is not None and not (generator == generator and 0 < generator < float("inf")):
        raise InputError(f"--generator-epsilon must be a positive number, got {generator!r}")
    if args.group_key:
        raise InputError("--epsilon: differentially private selection of sequences (--group-key) is not supported")
    return budget


def run_select(args) -> int:
    from synth_core.select import GuardSettings
    from synth_core.select.flat import SelectionSettings, output_table, run_selection

    started = time.perf_counter()
    budget = privacy_budget(args)
    if budget is not None:
        return run_dp_select(args, budget, started)
    if args.group_key:
        return run_sequential_select(args)
    training, pool, holdout = read_inputs(args)
    size = args.size if args.size is not None else len(training)
    settings = SelectionSettings(seed=args.seed, guard=GuardSettings(enabled=getattr(args, "privacy_guard", True)))
    problem, records = run_selection(training, pool, size, settings)
    stages = [({"stage": rec.stage, "rows": len(rec.rows), "objective": rec.objective, "elapsed_s": rec.elapsed_s,
                "details": rec.details}, output_table(training, pool, rec.rows)) for rec in records]
    return judge_and_write(args, training, holdout, stages, target=size, selected=records[-1].rows,
                           n_pool=problem.n_pool, guard=problem.guard, started=started, unit="rows")


def generator_spend(args, budget) -> tuple[float | None, float | None, str | None]:
    """The pool generator's (ε, δ) and where it comes from: the DP record this project's generator
    wrote beside the pool, else ``--generator-epsilon`` (a claim, composed on that condition), else
    unknown (None, None, None): selection's own guarantee is then all this run can state."""
    from synth_core.generate import pool_dp_record

    record = pool_dp_record(args.pool)
    stated = args.generator_epsilon
    if record is not None:
        if stated is not None and not math.isclose(stated, record["epsilon"], rel_tol=1e-6):
            raise InputError(f"--generator-epsilon {stated:g} contradicts the pool's DP record "
                             f"(ε = {record['epsilon']:.6g} in {args.pool}): leave the option out")
        return record["epsilon"], record["delta"], "pool record"
    if stated is not None:
        return float(stated), budget.generator_delta, "stated"
    return None, None, None


def run_dp_select(args, budget, started: float) -> int:
    """``synth select --epsilon``: differentially private selection (flat tables).

    Training reaches the stages only as the noisy tables of
    :func:`synth_core.select.flat.dp_targets`; the output's guarantee composes the generator's
    (ε, δ) with selection's ρ-zCDP. The evaluation after it reads training and holdout as ever:
    its figures and the checks' verdict are for the operator, not part of the release.
    """
    from synth_core.dp import PrivacyStatement
    from synth_core.select import GuardSettings
    from synth_core.select.flat import DPSettings, SelectionSettings, output_table, run_selection

    training, pool, holdout = read_inputs(args)
    settings = SelectionSettings(seed=args.seed, guard=GuardSettings(enabled=False))
    dp = DPSettings(rho=budget.selection_rho, delta=budget.selection_delta)
    problem, records = run_selection(training, pool, args.size, settings, dp=dp)
    statement = PrivacyStatement(problem.noisy.rho, budget.selection_delta, problem.noisy.sigma,
                                 *generator_spend(args, budget),
                                 generator_budget=(budget.generator_epsilon, budget.generator_delta))
    figures = {**statement.to_dict(), "budget": budget.to_dict(), **problem.noisy.figures(),
               "size_from": "--size" if args.size is not None else "noisy estimate", "privacy_guard": "off"}
    stages = [({"stage": rec.stage, "rows": len(rec.rows), "objective": rec.objective, "elapsed_s": rec.elapsed_s,
                "details": rec.details}, output_table(training, pool, rec.rows)) for rec in records]
    return judge_and_write(args, training, holdout, stages, target=problem.n_target, selected=records[-1].rows,
                           n_pool=problem.n_pool, guard=None, started=started, unit="rows",
                           extra={"differential_privacy": figures}, notes=dp_lines(figures))


def run_sequential_select(args) -> int:
    """``synth select --group-key KEY``: select groups (:func:`synth_core.select.sequential.select_groups`),
    judge and write the output, print the report (:func:`judge_and_write`). The holdout is read only for
    the evaluation."""
    from synth_core.select import GuardSettings
    from synth_core.select.sequential import SequentialSettings, select_groups

    started = time.perf_counter()
    training, pool, holdout = read_inputs(args)
    sel = select_groups(training, pool, args.group_key, args.size,
                        SequentialSettings(seed=args.seed,
                                           guard=GuardSettings(enabled=getattr(args, "privacy_guard", True))))
    stages = []
    for rec in sel.stages.values():
        subset = sel.output(pool, rec.stage)
        stages.append(({"stage": rec.stage, "groups": int(rec.groups.shape[0]), "rows": len(subset),
                        "objective": rec.objective, "elapsed_s": rec.elapsed_s, "estimate": rec.breakdown,
                        "details": rec.details}, subset))
    return judge_and_write(args, training, holdout, stages, target=sel.n_target, selected=sel.final.groups,
                           n_pool=sel.layout.n_groups, guard=sel.guard, started=started, unit="groups",
                           extra={"timings": sel.timings})


def dp_lines(f: dict) -> list[str]:
    """What the DP release spent, for the text report."""
    return [
        f"differential privacy: {f['statement']}",
        f"  selection: ρ = {f['selection_rho']:.4g} (zCDP), σ = {f['selection_sigma']:.4g} per cell, "
        f"Δ = {f['sensitivity']:.4g} over {f['tables']} tables ({f['cells']:,} cells); size from {f['size_from']} "
        f"(noisy n = {f['noisy_n']:,.0f})",
        "  privacy guard: off (it reads training rows); the evaluation below reads training and holdout and is "
        "not part of the release",
    ]


def judge_and_write(args, training: pd.DataFrame, holdout: pd.DataFrame | None, stages: list[tuple[dict, pd.DataFrame]],
                    *, target: int, selected, n_pool: int, guard, started: float, unit: str,
                    extra: dict | None = None, notes: list[str] | None = None) -> int:
    """Evaluate the stages, judge the final one with the gate (:func:`synth_core.metrics.judge`), write
    it when the checks pass (or with ``--force``), print the report; returns the exit status.

    ``stages``: (record, table) per stage, first the random pool sample, last the output. Every
    stage is scored for accuracy against training ∪ holdout (the stage table); privacy only for the
    first and the last (the holdout takes no part in the selection itself). Evaluation uses the
    gate's seed and default thresholds; without a holdout the privacy check is not evaluated.
    """
    from synth_core.metrics import GateSettings, evaluate, judge

    gate = GateSettings()
    key = args.group_key
    rows, evaluations = [], []
    for i, (record, subset) in enumerate(stages):
        ev = evaluate(training, subset, holdout, group_key=key, seed=gate.eval_seed, gate=gate,
                      privacy=i in (0, len(stages) - 1))
        row = {**record, "accuracy": ev.accuracy.to_dict()}
        if ev.privacy is not None:
            row["privacy"] = ev.privacy.to_dict()
        rows.append(row)
        evaluations.append(ev)
    final = stages[-1][1]
    verdict = judge(evaluations[-1], evaluations[0], final=final, training=training, target=target,
                    selected=selected, n_pool=n_pool, group_key=key, settings=gate)
    passed = verdict.passed
    written = passed or bool(getattr(args, "force", False))
    if written:  # date-like text back in the source's format
        schema = getattr(args, "schema", None)
        write_table(final if schema is None else schema.restore(final), args.output)
    total = time.perf_counter() - started
    if args.json:
        print(json.dumps({"stages": rows, **(extra or {}), "guard": guard.figures() if guard is not None else None,
                          "checks": verdict.to_dict(), "passed": passed,
                          "output": str(args.output) if written else None,
                          "elapsed_s": round(total, 3)}, default=str))
    else:
        print(stage_table(rows))
        if holdout is not None:
            _print_privacy(rows[0]["privacy"], rows[-1]["privacy"])
        if guard is not None:
            print("\n" + guard_line(guard, rows[-1]["details"].get("closeness_error")))
        if notes:
            print("\n" + "\n".join(notes))
        print("\nchecks")
        for name, check in verdict.items():
            state = "not evaluated (needs --holdout)" if check is None else ("passed" if check.passed else "FAILED")
            print(f"  {name:<15} {state}"
                  + (f": {check.description}" if check is not None and not check.passed else ""))
        n = len(final) if unit == "rows" else final[key].nunique()
        if written:
            print(f"\nwrote {n:,} {unit} to {args.output} in {total:.1f} s" + ("" if passed else " (--force)"))
        else:
            print(f"\nnothing written to {args.output}: a check failed (--force writes anyway)")
    if not passed:
        failed = [f"{check.name} ({check.description})" for check in verdict.failed]
        print(f"synth select: check failed: {'; '.join(failed)}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    return 0


def guard_line(guard, closeness_error: float | None) -> str:
    """One line on what the privacy guard did."""
    if not guard.enabled:
        seen = f" ({guard.replicas:,} pool units copy a unique training record)" if guard.replicas else ""
        return f"privacy guard: off{seen}: selection may use copies and fit training's noise"
    line = (f"privacy guard: {guard.replicas:,} replicas and {guard.near_copies:,} near-copies (distance <= "
            f"{guard.threshold:.4g}) of {guard.n_pool:,} pool units removed")
    line += f"; closeness error {closeness_error:.4f}" if closeness_error is not None else ""
    return line + (f"\nprivacy guard remedy: {guard.remedy_note}" if guard.remedy_note else "")


def _print_privacy(first: dict, last: dict) -> None:
    print("\nprivacy (random pool sample vs output)")
    for key in ("dcr_share", "dcr_share_ci", "membership_auc", "membership_auc_ci", "membership_auc_two_sided",
                "membership_auc_two_sided_ci", "nndr_ratio", "exact_copy_training",
                "exact_copy_holdout", "exact_copy_training_sequences", "exact_copy_holdout_sequences"):
        a, b = first.get(key), last.get(key)
        if a is None and b is None:
            continue
        cell = lambda v: f"{v[0]:.4f}-{v[1]:.4f}" if isinstance(v, (list, tuple)) else f"{v:.5f}"  # noqa: E731
        print(f"  {key:<30} {cell(a):>15} {cell(b):>15}")


__all__ = ["EXIT_CHECK_FAILED", "judge_and_write", "privacy_budget", "read_inputs", "run_dp_select", "run_select",
           "run_sequential_select", "stage_table"]
