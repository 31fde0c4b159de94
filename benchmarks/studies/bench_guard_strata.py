"""Where the privacy guard's closeness strata help and where they push the output away (issue 22).

The guard gives every candidate a stratum from the ratio of its distance to training over its
distance to a reference sample of the pool, and holds the selected subset's stratum histogram at
the pool's. This study selects with the guard off and on from the privacy benchmark's cached pools
(census: 500,000 rows → 24,421; prize: 100,000 groups → 20,000) and shows, per stratum (closest
first), the output's share over the pool's, beside the output's dcr_share (evaluation seed 1).
Left alone, selection over-selects the closest strata on both tables; on census that comes with
a pull towards training, on the prize data it does not (the guard-off output is as close as a
random sample), so holding the pool's histogram there moves the output farther from training.
This suggests that the ratio cannot tell a record's neighbourhood from a region the generator
under-produces; a reference of real non-members (a calibration split) might.

A study (no pass/fail target): ``.venv/bin/python -m benchmarks.studies.bench_guard_strata
[--quick] [--no-write]`` from the repository root. The pools are ``bench_privacy_guard``'s: cached
generators and pools are reused, and trained or generated when missing.
"""

from __future__ import annotations

import numpy as np

from benchmarks import bench_privacy_guard as P
from benchmarks import harness as H

SECTION = "guard_strata"
EVAL_SEED = 1


def _case(name: str, training, holdout, pool, size: int, key: str | None) -> list[list]:
    from synth_core.metrics import evaluate
    from synth_core.select import GuardSettings
    from synth_core.select._guard import guard_pool
    from synth_core.select.flat import SelectionSettings, output_table, random_subset, run_selection
    from synth_core.select.sequential import SequentialSettings, select_groups

    guard = guard_pool(training, pool, group_key=key, settings=GuardSettings(), seed=0)
    stratum = np.full(guard.n_pool, -1)
    stratum[guard.candidates] = guard.strata
    pool_share = np.bincount(guard.strata, minlength=guard.n_strata) / len(guard.candidates)
    rows = []
    for label, settings in (("guard off", GuardSettings(enabled=False)), ("guard on", GuardSettings())):
        if key is None:
            _, records = run_selection(training, pool, size, SelectionSettings(seed=0, guard=settings))
            units, table = records[-1].rows, output_table(training, pool, records[-1].rows)
            baseline = output_table(training, pool, random_subset(len(pool), size, 0))
        else:
            sel = select_groups(training, pool, key, size, SequentialSettings(seed=0, guard=settings))
            units, table = sel.final.groups, sel.output(pool)
            baseline = sel.output(pool, "random")
        picked = stratum[units][stratum[units] >= 0]
        share = np.bincount(picked, minlength=guard.n_strata) / len(units)
        dcr = evaluate(training, table, holdout, group_key=key, seed=EVAL_SEED, membership=False).privacy.dcr_share
        H.log(f"{name} {label}: dcr_share {dcr:.4f}")
        rows.append([name, label, f"{dcr:.4f}", *(f"{a / b:.2f}" for a, b in zip(share, pool_share))])
    dcr = evaluate(training, baseline, holdout, group_key=key, seed=EVAL_SEED, membership=False).privacy.dcr_share
    rows.append([name, "random pool sample", f"{dcr:.4f}", *(["–"] * guard.n_strata)])
    return rows


def main(argv=None) -> int:
    bench = H.Bench("benchmarks.studies.bench_guard_strata", __doc__, quick="the quick privacy-benchmark pools")
    args = bench.parse(argv)
    plan = P.QUICK if args.quick else P.FULL
    rows = []
    training, holdout = P.census_tables()
    pool, _ = P.census_pool(training, plan, args.quick)
    rows += _case("census", training, holdout, pool, plan.census_size or len(training), None)
    training, holdout = P.prize_tables()
    pool, _ = P.prize_pool(training, plan, args.quick)
    rows += _case("prize", training, holdout, pool, plan.prize_size, "group_id")
    title = "The guard's closeness strata: over-selection of close units with and without a pull"
    section = bench.section(SECTION, title, __doc__.split("\n\n")[1])
    n_strata = len(rows[0]) - 3
    section.add_table(
        "Output share over pool share per closeness stratum (1 = as the pool; stratum 1 holds the closest 0.5 % of "
        "the candidates by the ratio), and the output's dcr_share",
        ["table", "selection", "dcr_share", *(f"s{k + 1}" for k in range(n_strata))], rows)
    return bench.finish(section, {"rows": rows})


if __name__ == "__main__":
    raise SystemExit(main())
