"""What building the selection problem once saves the pipelines' later stages (issue 12).

The flat graph builds its selection problem in ``mi_pairs`` (binning, the privacy guard, MI pairs,
targets, search space) and stores it; ``ipf_subset``, ``trimmed_subset`` and ``refined_output``
load it. Before, each of those three rebuilt it from the stored codes (reading the codes, ranking
the pairs, building features, targets and search space again). The sequential graph builds its
plan (the pool in the metric's group view, features, the guard) in ``coherence_subset``;
``refined_output`` used to re-read the whole pool and rebuild the problem, and now loads the plan.
Timed in process on the privacy benchmark's cached pools (census: 500,000 rows; prize: 100,000
groups), the library warm (numba compiled), median of three.

A study (no pass/fail target): ``.venv/bin/python -m benchmarks.studies.bench_reuse [--quick] [--no-write]``
from the repository root. The pools are ``bench_privacy_guard``'s (:func:`census_pool`,
:func:`prize_pool`): cached generators and pools are reused, and trained or generated when missing.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import bench_privacy_guard as P
from benchmarks import harness as H

SECTION = "stage_reuse"
REPEATS = 3


def _median_s(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def flat_case(plan, quick: bool) -> list:
    from synth_core.select import PoolGuard
    from synth_core.select.flat import SelectionProblem, SelectionSettings, prepare, stage_mi_pairs

    training, _ = P.census_tables()
    pool, _ = P.census_pool(training, plan, quick)
    n = plan.census_size or len(training)
    settings = SelectionSettings()
    prepare(training, pool.iloc[:10_000], min(n, 2_000), settings)  # compile outside the clock
    t = time.perf_counter()
    problem = prepare(training, pool, n, settings)
    built = time.perf_counter() - t
    folder = Path(tempfile.mkdtemp()) / "problem"
    problem.save(folder)

    def rebuild():  # what each later stage did before: the codes from files, then MI, features, targets
        codes = np.load(folder / "pool_codes.npy")
        again = SelectionProblem(binner=problem.binner, train_codes=np.load(folder / "train_codes.npy"),
                                 pool_codes=codes, n_target=n, columns=problem.columns,
                                 guard=PoolGuard.load(folder / "guard.npz"))
        stage_mi_pairs(again, settings)

    old, new = _median_s(rebuild), _median_s(lambda: SelectionProblem.load(folder))
    return ["flat (census)", f"{len(pool):,} rows", built, old, new, 3 * old, 3 * new]


def sequential_case(plan, quick: bool) -> list:
    from synth_core.select.sequential import SequentialPlan, SequentialSettings, prepare_groups

    training, _ = P.prize_tables()
    pool, _ = P.prize_pool(training, plan, quick)
    n = plan.prize_size
    prepare_groups(training, pool.iloc[:20_000], "group_id", 500)
    t = time.perf_counter()
    built_plan = prepare_groups(training, pool, "group_id", n, SequentialSettings())
    built = time.perf_counter() - t
    path = Path(tempfile.mkdtemp()) / "plan.pkl"
    built_plan.save(path)
    from synth_core.select.sequential import build_problem

    old = _median_s(lambda: build_problem(training, pool, "group_id", n))  # refined_output rebuilt this
    new = _median_s(lambda: SequentialPlan.load(path))
    return ["sequential (prize)", f"{pool['group_id'].nunique():,} groups", built, old, new, old, new]


def main(argv=None) -> int:
    bench = H.Bench("benchmarks.studies.bench_reuse", __doc__, quick="the quick privacy-benchmark pools")
    args = bench.parse(argv)
    plan = P.QUICK if args.quick else P.FULL
    rows = [flat_case(plan, args.quick), sequential_case(plan, args.quick)]
    section = bench.section(SECTION, "Selection problems built once: what the later stages no longer redo",
                            __doc__.split("\n\n")[1])  # the description, not the usage
    section.add_table(
        "Seconds (median of 3 after a warm-up)",
        ["graph", "pool", "build once", "per later stage before", "per later stage now", "all later stages before",
         "all later stages now"],
        [[g, p, f"{b:.2f}", f"{o:.2f}", f"{n:.2f}", f"{a:.2f}", f"{c:.2f}"] for g, p, b, o, n, a, c in rows])
    return bench.finish(section, {"rows": rows})


if __name__ == "__main__":
    raise SystemExit(main())
