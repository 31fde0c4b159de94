"""Benchmark flat selection at competition size: 100,000 rows out of pools of 250 k, 1 M and 2.5 M
rows x 80 columns (60 numeric, 20 categorical), no model training.

The workload (:mod:`workload`) is a seeded data-generating process with correlated numeric
columns, skewed categoricals, missing values and zero-inflated columns; the target table is a
100 k sample of it, the pools come from a perturbed copy (shifted correlations and frequencies),
so a uniform pool sample scores clearly below what the target allows.

Each pool size runs as one cold process (``python -m benchmarks.bench_scale --child ...``) that
generates the data shard by shard and runs every stage of :mod:`synth_core.select.flat._pipeline`
in order, timing each:

1. ``binning``: fit the metric's bins on the target, encode it and every pool shard (uint8 codes;
   the shards' generation is timed apart and is not a stage);
2. ``mi_pairs``: pairwise MI on the target codes, the objective's feature set;
3. ``ipf``: IPF weights on the pairs and the oversized subset (1.25 x);
4. ``trim``: greedy trimming to 100 k;
5. ``refine``: swap refinement against the unused pool;
6. ``evaluate``: qa's accuracy of the refined subset (:func:`synth_core.metrics._accuracy.codes_accuracy`,
   reference = the target table; of the 82,160 column triples the documented seeded sample of
   10,000, seed 1).

Per stage: wall time, CPU time and the process's peak RSS so far (``ru_maxrss``); per process:
wall time and peak RSS from GNU ``time``. A small warm-up run first compiles the numba kernels
into a fresh cache that the measured runs share (compilation time is reported apart).
Accuracy of a uniform random pool sample and of the IPF and trimmed subsets are computed after the
stages (reported, not timed as stages).

Targets (2 cores): 2.5 M -> 100 k, all stages <= 10 minutes wall and peak RSS <= 6 GB;
t(2.5 M) / t(250 k) <= 12; overall accuracy at 2.5 M >= accuracy at 250 k + 0.002.

Usage: ``python -m benchmarks.bench_scale [--quick] [--pools 250000,1000000,2500000] [--target 100000] [--no-write]``
(``--quick``: pools of 25 k, 100 k and 250 k rows for a 10 k target, nothing written).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from contextlib import contextmanager

from benchmarks import harness as H
from benchmarks import results as R

SECTION = "select_scale_80"
TARGET_S = 600.0
TARGET_RSS_MIB = 6 * 1024
TARGET_RATIO = 12.0
TARGET_GAIN = 0.002
RANDOM_MAX = 0.97
EVAL_SEED = 1
DEFAULT_POOLS = (250_000, 1_000_000, 2_500_000)
QUICK_POOLS = (25_000, 100_000, 250_000)
STAGES = ("binning", "mi_pairs", "ipf", "trim", "refine", "evaluate")


# ------------------------------------------------------------------------------------------------
# the child: one pool size, every stage in this process
# ------------------------------------------------------------------------------------------------


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


log = logging.getLogger("bench_scale")


@contextmanager
def stage(name: str, stages: dict):
    """Time a stage: wall and CPU time, the process's peak RSS so far and the load at its end."""
    t, c = time.perf_counter(), time.process_time()
    yield
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    stages[name] = {"wall_s": wall, "cpu_s": cpu, "rss_mib": _rss_mib(), "load": os.getloadavg()[0]}
    log.info("stage %s: %.1f s wall, %.1f s CPU, peak RSS so far %.0f MiB", name, wall, cpu, _rss_mib())


@contextmanager
def spent(name: str, book: dict):
    """Add the wall time of a block that is not a stage to ``book[name]``."""
    t = time.perf_counter()
    yield
    book[name] = book.get(name, 0.0) + time.perf_counter() - t


def encode(n_target: int, pool_rows: int, seed: int, stages: dict, extra: dict):
    """The ``binning`` stage: bins fitted on the target, target and pool encoded shard by shard.

    The shards' generation is timed apart (``extra``), so the stage holds only the binning.

    Returns
    -------
    target_columns, binner, train_codes, pool_codes
    """
    import numpy as np

    from benchmarks import workload as W
    from synth_core.metrics import Binner

    source = W.source_process(seed)
    pool_process = W.perturbed(source, seed=seed)
    with spent("generate_target", extra):
        target = W.table(source, n_target, "target", seed)
    t, c = time.perf_counter(), time.process_time()
    binner = Binner(n_bins=10).fit(target)
    train_codes = binner.transform(target)
    bin_wall, bin_cpu = time.perf_counter() - t, time.process_time() - c
    parts = []
    shards = W.shards(pool_process, pool_rows, "pool", seed)
    while True:
        with spent("generate_pool", extra):
            shard = next(shards, None)
        if shard is None:
            break
        t, c = time.perf_counter(), time.process_time()
        parts.append(binner.transform(shard))
        del shard
        bin_wall += time.perf_counter() - t
        bin_cpu += time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    pool_codes = np.ascontiguousarray(np.concatenate(parts))
    del parts
    bin_wall += time.perf_counter() - t
    bin_cpu += time.process_time() - c
    stages["binning"] = {"wall_s": bin_wall, "cpu_s": bin_cpu, "rss_mib": _rss_mib(), "load": os.getloadavg()[0]}
    log.info("stage binning: %.1f s wall (generation %.1f s apart), %s x %d codes", bin_wall,
             extra["generate_pool"], f"{pool_codes.shape[0]:,}", pool_codes.shape[1])
    return list(target.columns), binner, train_codes, pool_codes


def child(pool_rows: int, n_target: int, seed: int) -> dict:
    import numpy as np

    from synth_core.metrics import codes_accuracy
    from synth_core.select.flat import (
        SelectionProblem,
        SelectionSettings,
        ipf_sweeps,
        random_subset,
        refine_plan,
        stage_ipf,
        stage_mi_pairs,
        stage_refine,
        stage_trim,
        trim_exact,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    stages: dict[str, dict] = {}
    extra: dict[str, float] = {}
    settings = SelectionSettings(seed=seed)
    columns, binner, train_codes, pool_codes = encode(n_target, pool_rows, seed, stages, extra)

    problem = SelectionProblem(binner, train_codes, pool_codes, n_target, columns)
    with stage("mi_pairs", stages):
        problem = stage_mi_pairs(problem, settings)
    fs = problem.feature_set
    with stage("ipf", stages):
        ipf = stage_ipf(problem, settings)
    with stage("trim", stages):
        trimmed = stage_trim(problem, ipf.rows, settings)
    with stage("refine", stages):
        refined = stage_refine(problem, trimmed, settings)
    with stage("evaluate", stages):
        final = codes_accuracy(train_codes, pool_codes[refined.rows], binner.n_codes, binner.names, seed=EVAL_SEED)

    subsets = {"random pool sample": random_subset(problem.n_pool, n_target, seed), "ipf": ipf.rows, "trimmed": trimmed}
    accuracy = {}
    with spent("extra_evaluations", extra):
        for name, rows in subsets.items():
            accuracy[name] = codes_accuracy(train_codes, pool_codes[rows], binner.n_codes, binner.names,
                                            seed=EVAL_SEED).to_dict()
            accuracy[name]["objective"] = problem.objective_of(rows)
            accuracy[name]["rows"] = len(rows)
    accuracy["refined"] = {**final.to_dict(), "objective": problem.objective_of(refined.rows),
                           "rows": len(refined.rows)}
    kinds = binner.describe()["kind"].value_counts().to_dict()
    plan = refine_plan(problem, settings)
    return {
        "pool_rows": pool_rows,
        "target_rows": n_target,
        "columns": len(binner.names),
        "column_kinds": kinds,
        "stages": stages,
        "stage_total_s": sum(s["wall_s"] for s in stages.values()),
        "extra_s": extra,
        "accuracy": accuracy,
        "features": {
            "uni": int(np.sum(fs.arity == 1)),
            "pairs": int(np.sum(fs.arity == 2)),
            "triples": int(np.sum(fs.arity == 3)),
            "cells": int(fs.total_cells),
        },
        "details": {
            "ipf_sweeps": ipf.sweeps,
            "ipf_sweep_cap": ipf_sweeps(problem, settings),
            "ipf_stop": ipf.stop_reason,
            "ipf_rows": len(ipf.rows),
            "trim_exact": trim_exact(problem, len(ipf.rows), settings),
            "refine_swaps": refined.swaps,
            "refine_rounds": refined.rounds,
            "refine_stop": refined.stop_reason,
            "refine_round_cap": plan.max_rounds,
            "refine_prefilter": plan.prefilter,
            "settings": settings.to_dict(),
            "triples_total": final.n_triples_total,
            "triples_evaluated": len(final.trivariate),
        },
        "peak_rss_mib_self": _rss_mib(),
    }


# ------------------------------------------------------------------------------------------------
# the parent: warm-up, one cold process per pool size, the RESULTS.md section
# ------------------------------------------------------------------------------------------------


def _child_argv(pool_rows: int, n_target: int, seed: int) -> list[str]:
    # the module, not this file: a child started in the repository root imports ``benchmarks`` as the parent does
    return H.module_argv("benchmarks.bench_scale",
                         ["--child", "--pool-rows", pool_rows, "--target", n_target, "--seed", seed])


def _fmt_s(x: float) -> str:
    return f"{x:.1f}"


def targets(section: R.Section, runs: dict, n_target: int) -> None:
    small, large = min(runs), max(runs)
    rs, rl = runs[small][1], runs[large][1]
    run_l = runs[large][0]
    section.target(
        f"{large:,} -> {n_target:,}: all stages, wall time",
        f"<= {TARGET_S / 60:.0f} min",
        f"{rl['stage_total_s']:.1f} s (process {run_l.wall_s:.1f} s incl. data generation and extra evaluations)",
        rl["stage_total_s"] <= TARGET_S,
    )
    section.target(
        f"{large:,} -> {n_target:,}: peak RSS of the process",
        f"<= {TARGET_RSS_MIB / 1024:.0f} GB",
        f"{run_l.max_rss_mib:,.0f} MiB" if run_l.max_rss_mib else R.NA,
        None if run_l.max_rss_mib is None else run_l.max_rss_mib <= TARGET_RSS_MIB,
    )
    ratio = rl["stage_total_s"] / rs["stage_total_s"]
    section.target(f"t({large:,}) / t({small:,}) (stage totals)", f"<= {TARGET_RATIO:g}", f"{ratio:.2f}",
                   ratio <= TARGET_RATIO)
    acc_s, acc_l = rs["accuracy"]["refined"]["overall"], rl["accuracy"]["refined"]["overall"]
    section.target(
        f"refined overall accuracy at {large:,} vs {small:,}",
        f">= {small:,} + {TARGET_GAIN}",
        f"{acc_l:.5f} vs {acc_s:.5f} ({acc_l - acc_s:+.5f})",
        acc_l >= acc_s + TARGET_GAIN,
    )
    worst_random = max(r["accuracy"]["random pool sample"]["overall"] for _, r in runs.values())
    section.target("workload: a uniform pool sample scores", f"<= {RANDOM_MAX}",
                   f"{worst_random:.5f} (highest of the pools)", worst_random <= RANDOM_MAX)


def tables(section: R.Section, runs: dict) -> None:
    section.add_table(
        "Stage wall time, s (CPU s in brackets); RSS = process peak so far, MiB",
        ["pool rows"] + list(STAGES) + ["all stages", "process wall", "peak RSS", "load 1 min before"],
        [
            [f"{p:,}"]
            + [f"{r['stages'][s]['wall_s']:.1f} ({r['stages'][s]['cpu_s']:.1f})" for s in STAGES]
            + [f"**{r['stage_total_s']:.1f}**", _fmt_s(run.wall_s),
               f"{run.max_rss_mib:,.0f}" if run.max_rss_mib else R.NA, f"{run.load_before[0]:.2f}"]
            for p, (run, r) in runs.items()
        ],
        "l" + "r" * (len(STAGES) + 4),
    )
    section.add_table(
        "Peak RSS after each stage (MiB) and the 1-minute load average at its end",
        ["pool rows"] + list(STAGES),
        [[f"{p:,}"] + [f"{r['stages'][s]['rss_mib']:,.0f} / {r['stages'][s]['load']:.1f}" for s in STAGES]
         for p, (run, r) in runs.items()],
        "l" + "r" * len(STAGES),
    )
    rows = []
    for p, (_run, r) in runs.items():
        for name in ("random pool sample", "ipf", "trimmed", "refined"):
            a = r["accuracy"][name]
            rows.append([f"{p:,}", name, f"{a['rows']:,}", f"{a['objective']:.6f}", R.fmt(a["univariate"]),
                         R.fmt(a["bivariate"]), R.fmt(a["trivariate"]),
                         f"**{a['overall']:.5f}**" if name == "refined" else R.fmt(a["overall"]),
                         R.fmt(a["overall_max"])])
    section.add_table(
        f"Accuracy (qa definitions, reference = target table, seed {EVAL_SEED}) and objective of each subset",
        ["pool rows", "subset", "rows", "objective", "uni", "bi", "tri", "overall", "overall_max"],
        rows,
        "llrrrrrrr",
    )
    section.add_table(
        "Stage details",
        ["pool rows", "IPF sweeps (cap)", "IPF stop", "trim", "refine rounds (cap)", "swaps", "refine stop",
         "rows scored per round", "generation s (not a stage)"],
        [
            [f"{p:,}", f"{r['details']['ipf_sweeps']} ({r['details']['ipf_sweep_cap']})", r["details"]["ipf_stop"],
             "exact" if r["details"]["trim_exact"] else "batch",
             f"{r['details']['refine_rounds']} ({r['details']['refine_round_cap']})",
             f"{r['details']['refine_swaps']:,}", r["details"]["refine_stop"],
             "all" if r["details"]["refine_prefilter"] is None else f"{r['details']['refine_prefilter']:,} (directed)",
             f"{r['extra_s'].get('generate_target', 0) + r['extra_s'].get('generate_pool', 0):.1f}"]
            for p, (run, r) in runs.items()
        ],
        "lrlllrlrr",
    )
    section.notes.append(
        "`overall_max` is qa's expected accuracy of a same-size sample of the target distribution itself; the "
        "selection fits the target table, so it can exceed it."
    )
    section.notes.append(
        "The machine is shared: the load average before each run and at the end of every stage is in the tables; "
        "wall times under load are longer than on an idle machine (the CPU times show the work)."
    )


def main(argv: list[str] | None = None) -> int:
    bench = H.Bench("benchmarks.bench_scale", __doc__, quick="pools of 25 k, 100 k, 250 k rows for 10 k")
    bench.parser.add_argument("--pools", default=None,
                              help="comma-separated pool sizes (default 250000,1000000,2500000)")
    bench.parser.add_argument("--target", type=int, default=None, help="rows to select (default 100,000)")
    bench.parser.add_argument("--seed", type=int, default=0)
    bench.parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    bench.parser.add_argument("--pool-rows", type=int, default=None, help=argparse.SUPPRESS)
    args = bench.parse(argv, start=False)

    if args.child:  # a measured process: nothing but the work, its figures as JSON on stdout
        print(json.dumps(child(args.pool_rows, args.target, args.seed), default=str))
        return 0

    bench.start()
    pools = ([int(p) for p in args.pools.split(",")] if args.pools
             else list(QUICK_POOLS if args.quick else DEFAULT_POOLS))
    n_target = args.target or (10_000 if args.quick else 100_000)
    runs = {}
    with H.numba_env("scale") as env:
        warm = H.run_checked(_child_argv(20_000, 5_000, args.seed),
                             "warm-up (compiles the kernels into a fresh numba cache)", env=env, timeout_s=1800,
                             echo_stderr="    warm-up| ")
        for n_pool in pools:
            run = H.run_checked(_child_argv(n_pool, n_target, args.seed), f"selection from {n_pool:,} rows", env=env,
                                timeout_s=3 * 3600, echo_stderr=f"    {n_pool // 1000}k| ")
            runs[n_pool] = (run, run.json())
            r = runs[n_pool][1]
            H.log(f"pool {n_pool:,}: stages {r['stage_total_s']:.1f} s, "
                  f"refined overall {r['accuracy']['refined']['overall']:.5f}")

    rl = runs[max(pools)][1]
    title = (f"Flat selection at competition size: {n_target:,} rows from pools of "
             + ", ".join(f"{p:,}" for p in pools) + " rows x 80 columns")
    feats = rl["features"]
    section = bench.section(
        SECTION,
        title,
        (
            "Every stage of `synth_core.select.flat._pipeline` (binning, MI pairs, IPF, trimming, refinement) plus the "
            "final qa evaluation, one cold process per pool size (`python -m benchmarks.bench_scale --child`), default "
            "`SelectionSettings(seed=0)`, no model training. Workload (`benchmarks/workload.py`, seeded): a "
            f"{n_target:,}-row target table from a latent-factor process with 60 numeric columns (Gaussian, "
            "log-normal, counts, zero-inflated, percentages; 24 with missing values at factor-dependent rates) and 20 "
            "categorical columns (3-40 categories, Zipf-like frequencies, 5 with a two-factor interaction, 4 with "
            "missing values); the pools come from a perturbed copy (loadings, category frequencies, zero and missing "
            "shares, locations shifted), generated in shards of 250,000 rows (the 250 k pool is the first shard of the "
            f"larger ones). Objective features: all {feats['uni']} columns, all {feats['pairs']:,} column pairs, "
            f"{feats['triples']:,} triples ({feats['cells']:,} cells; `mi.default_triple_count`: no triples above 50 "
            "columns). Evaluation: `synth_core.metrics._accuracy.codes_accuracy` (qa's definitions, reference = the "
            "target table, 10 bins fitted on it; trivariate = the documented seeded sample of 10,000 of the "
            f"{rl['details']['triples_total']:,} triples, seed {EVAL_SEED}). Stage time excludes the generation of the "
            f"synthetic data; the numba kernels were compiled by a warm-up run ({warm.wall_s:.0f} s, 5 k from 20 k) "
            f"into a fresh cache shared by the measured runs. Peak memory: {H.rss_method()}; per stage: the process's "
            "`ru_maxrss` after the stage."
        ),
        custom=args.pools is not None or args.target is not None,
    )
    targets(section, runs, n_target)
    tables(section, runs)
    return bench.finish(section, {"warm_up": warm.summary(),
                                  "runs": {str(p): {"run": run.summary(), "result": r}
                                           for p, (run, r) in runs.items()}})


if __name__ == "__main__":
    raise SystemExit(main())
