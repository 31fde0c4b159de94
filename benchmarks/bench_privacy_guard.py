"""The privacy guard: is the selected subset as close to training as a random pool sample (no closer, no farther), and
what does that cost in accuracy?

Pools (training and holdout are the shared tables; the holdout only evaluates):

* ``census``: 500,000 rows from a MOSTLY AI generator (small model, 5-min cap) -> 24,421 rows;
* ``diamonds``: the demo dataset's split, its generator (small, 4 epochs), 160,000 rows -> 8,000;
* ``prize``: the prize's sequential data, a small generator (15-min cap), 100,000 groups -> 20,000;
* ``leaky``: the first 200,000 census pool rows with 2 % (and 10 %) replaced by copies of training
  rows and as many near-copies (a training row with one numeric value moved by ±1) -> 10,000;
  the same for the prize pool with whole training sequences (near-copy: one value of one row ±1);
* ``real``: 16,421 real census holdout rows as the pool (a perfectly private generator) -> 8,000
  and 4,000, evaluated against the other 8,000 holdout rows.

Each pool is selected with the guard on (default settings) and off (``--no-privacy-guard``), seed 0,
and the outputs and a random pool sample of the same size are evaluated by
``synth_core.metrics._evaluate.evaluate`` (accuracy against training ∪ holdout, qa's seed 1; privacy on
all units up to 50,000). ``census`` is also run over guard settings (closeness weight, near-copy
quantile) for the trade-off table. Usage: ``python -m benchmarks.bench_privacy_guard [--only NAME]
[--quick] [--no-write]`` (``--quick``: 1-minute census and prize generators shared with the
``--quick`` runs of ``bench_flat_census.py`` and ``bench_sequential_prize.py``, pools of 50,000
rows and 12,000 groups, small selections, two census and one prize trade-off point, nothing
written).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmarks import generated as G
from benchmarks import harness as H
from benchmarks import results as R

SECTION = "privacy_guard"
SEED = 0
EVAL_SEED = 1
MAX_AUC = 0.52  # the gate's max_membership_auc
ACCURACY_MARGIN = 0.001
CASES = ("census", "tradeoff", "leaky", "real", "diamonds", "prize", "tradeoff_prize")
CENSUS_GRID = ((0.0, 0.01), (0.02, 0.01), (0.05, 0.01), (0.1, 0.01), (0.3, 0.01), (0.05, 0.0), (0.05, 0.005),
               (0.05, 0.02))
PRIZE_WEIGHTS = (0.01, 0.05, 0.3)


@dataclass(frozen=True)
class Plan:
    """Sizes of one run; ``None`` sizes select as many rows as training has (census) or the
    dataset's ``target_size`` (diamonds)."""

    census_minutes: float = 5.0
    census_pool: int = 500_000
    census_shard: int = 100_000
    census_size: int | None = None
    census_grid: tuple = CENSUS_GRID
    leaky_rows: int = 200_000
    leaky_size: int = 10_000
    leaky_shares: tuple[float, ...] = (0.02, 0.10)
    real_sizes: tuple[int, ...] = (8_000, 4_000)
    real_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # the real-row pool's 8,000-row holdout subsamples training
    diamonds_size: int | None = None
    prize_minutes: float = 15.0
    prize_pool: int = 100_000
    prize_shard: int = 20_000
    prize_size: int = 20_000
    prize_weights: tuple[float, ...] = PRIZE_WEIGHTS


FULL = Plan()
QUICK = Plan(census_minutes=1.0, census_pool=50_000, census_shard=50_000, census_size=5_000,
             census_grid=CENSUS_GRID[:2], leaky_rows=20_000, leaky_size=2_000, leaky_shares=(0.10,),
             real_sizes=(4_000,), real_seeds=(0,),
             diamonds_size=1_000, prize_minutes=1.0, prize_pool=12_000, prize_shard=4_000, prize_size=2_000,
             prize_weights=PRIZE_WEIGHTS[:1])


def flat_select(training, pool, n, guard):
    from synth_core.select.flat import SelectionSettings, output_table, run_selection

    t = time.perf_counter()
    problem, records = run_selection(training, pool, n, SelectionSettings(seed=SEED, guard=guard))
    elapsed = time.perf_counter() - t
    return {"output": output_table(training, pool, records[-1].rows), "rows": records[-1].rows,
            "random": output_table(training, pool, records[0].rows), "random_rows": records[0].rows,
            "guard": problem.guard, "select_s": elapsed, "closeness": records[-1].details.get("closeness_error")}


def sequential_select(training, pool, n, guard, key):
    from synth_core.select.sequential import SequentialSettings, select_groups

    t = time.perf_counter()
    sel = select_groups(training, pool, key, n, SequentialSettings(seed=SEED, guard=guard))
    elapsed = time.perf_counter() - t
    return {"output": sel.output(pool), "rows": sel.final.groups, "random": sel.output(pool, "random"),
            "random_rows": sel.stages["random"].groups, "guard": sel.guard, "select_s": elapsed,
            "closeness": sel.final.details.get("closeness_error")}


def measure(training, holdout, table, key=None, seeds=(EVAL_SEED,)) -> dict:
    """Accuracy (first seed) and privacy of ``table``; privacy figures averaged over ``seeds``."""
    q = H.evaluate_seeds(training, holdout, table, seeds, group_key=key)
    first = q["runs"][0]
    acc, priv = first["accuracy"], first["privacy"]
    return {
        "overall": acc["overall"],
        "coherence": acc["coherence"],
        "dcr_share": float(np.mean([r["privacy"]["dcr_share"] for r in q["runs"]])),
        "dcr_share_ci": priv["dcr_share_ci"],
        "membership_auc": float(np.mean([r["privacy"]["membership_auc"] for r in q["runs"]])),
        "membership_auc_two_sided": float(np.mean([r["privacy"]["membership_auc_two_sided"] for r in q["runs"]])),
        "membership_auc_two_sided_ci": priv["membership_auc_two_sided_ci"],
        "membership_direction": priv["membership_direction"],
        "copies": priv["exact_copy_training"] if key is None else priv["exact_copy_training_sequences"],
        "gate": first["privacy_ok"],
    }


def run_case(name, training, holdout, pool, n, *, key=None, seeds=(EVAL_SEED,), guard=None, kind=None):
    """Select with the guard off and on; measure both outputs and the random pool sample."""
    from synth_core.select import GuardSettings

    out = {}
    select = ((lambda g: sequential_select(training, pool, n, g, key)) if key
              else (lambda g: flat_select(training, pool, n, g)))
    for label, settings in (("off", GuardSettings(enabled=False)), ("on", guard or GuardSettings())):
        H.log(f"{name}: selecting {n:,} with the guard {label}")
        sel = select(settings)
        row = {**measure(training, holdout, sel["output"], key, seeds), "select_s": sel["select_s"],
               "closeness": sel["closeness"], "guard": sel["guard"].figures()}
        if kind is not None:  # ground truth of a leaky pool: 1 = copy, 2 = near-copy
            row["share_copies"] = float(np.mean(kind[sel["rows"]] == 1))
            row["share_near"] = float(np.mean(kind[sel["rows"]] == 2))
        out[label] = row
        if label == "off":
            out["random"] = measure(training, holdout, sel["random"], key, seeds)
            if kind is not None:
                out["random"]["share_copies"] = float(np.mean(kind[sel["random_rows"]] == 1))
                out["random"]["share_near"] = float(np.mean(kind[sel["random_rows"]] == 2))
        H.log(f"{name}: guard {label}: overall {row['overall']:.5f}, dcr_share {row['dcr_share']:.4f}")
    return out


# ------------------------------------------------------------------------------------------------ data


def census_tables():
    from synth_core.io import read_table

    return (read_table(H.shared_file("data", "census", "training.csv.gz")),
            read_table(H.shared_file("data", "census", "holdout.csv.gz")))


def census_pool(training, plan: Plan, quick: bool):
    from synth_core.conform import conform_table

    name = G.scratch_name("census", quick)
    handle, info = G.generator(name, training, G.training_settings("small", plan.census_minutes))
    pool = G.pool_table(name, handle, plan.census_pool, shard_size=plan.census_shard)
    return conform_table(pool[list(training.columns)], training, name="census pool"), info


def prize_tables():
    from synth_core.io import read_table

    return (read_table(H.shared_file("data", "prize-sequential", "training.csv.gz")),
            read_table(H.shared_file("data", "prize-sequential", "holdout.csv.gz")))


def prize_pool(training, plan: Plan, quick: bool):
    from synth_core.conform import conform_table

    name = G.scratch_name("prize", quick)
    handle, info = G.generator(name, training, G.training_settings("small", plan.prize_minutes), group_key="group_id")
    pool = G.pool_table(name, handle, plan.prize_pool, shard_size=plan.prize_shard)
    return conform_table(pool[list(training.columns)], training, name="prize pool", identifiers=("group_id",)), info


def leaky_flat(pool, training, share, seed=5):
    """``pool`` with ``share`` of its rows replaced by training copies and as many by near-copies."""
    from synth_core.metrics import near_copies

    rng = np.random.default_rng(seed)
    n, k = len(pool), int(share * len(pool))
    pos = rng.choice(n, 2 * k, replace=False)
    copies = training.iloc[rng.choice(len(training), k, replace=False)]
    near = near_copies(training.iloc[:k], training, share=1.0, seed=seed)
    out = pool.copy()
    out.iloc[pos[:k]] = copies[list(pool.columns)].to_numpy()
    out.iloc[pos[k:]] = near[list(pool.columns)].to_numpy()
    kind = np.zeros(n, dtype=np.int64)
    kind[pos[:k]], kind[pos[k:]] = 1, 2
    return out.astype(pool.dtypes.to_dict()), kind


def leaky_sequential(pool, training, share, key, seed=5):
    """The pool plus ``share`` (of its groups) copied training sequences and as many near-copies
    (one numeric value of one row moved by ±1), under new keys; per group 0 fair, 1 copy, 2 near."""
    rng = np.random.default_rng(seed)
    groups = training[key].unique()
    n_pool = pool[key].nunique()
    k = int(share * n_pool)
    picked = rng.choice(groups, 2 * k, replace=False)
    copies = training[training[key].isin(picked[:k])].copy()
    near = training[training[key].isin(picked[k:])].copy()
    numeric = [c for c in training.columns if c != key and pd.api.types.is_float_dtype(training[c])]
    first = near.groupby(key, sort=False).head(1).index
    cols = rng.choice(numeric, len(first))
    for col in numeric:
        hit = first[cols == col]
        near.loc[hit, col] = near.loc[hit, col] + rng.choice([-1.0, 1.0], len(hit))
    copies[key] = "copy-" + copies[key].astype(str)
    near[key] = "near-" + near[key].astype(str)
    out = pd.concat([pool, copies, near], ignore_index=True)
    keys = out[key].drop_duplicates().astype(str)
    kind = np.where(keys.str.startswith("copy-"), 1, np.where(keys.str.startswith("near-"), 2, 0))
    return out, kind


# ------------------------------------------------------------------------------------------------ main


def main(argv=None) -> int:
    bench = H.Bench("benchmarks.bench_privacy_guard", __doc__, sdk_stdout=True,
                    quick="1-min generators, 50,000-row census and 12,000-group prize pools, small selections")
    bench.parser.add_argument("--only", action="append", choices=CASES, help="run only this case (repeatable)")
    args = bench.parse(argv)
    cases = args.only or list(CASES)
    plan = QUICK if args.quick else FULL
    section = bench.section(
        SECTION, "Privacy guard: selection as close to training as a random pool sample, no closer and no farther",
        __doc__.split("\n\n", 1)[1].split("Usage:")[0].strip(), custom=bool(args.only))
    from synth_core.select import GuardSettings

    res = {}
    census = census_tables() if {"census", "tradeoff", "leaky", "real"} & set(cases) else None
    if "census" in cases or "tradeoff" in cases or "leaky" in cases:
        pool, info = census_pool(census[0], plan, args.quick)
        n = plan.census_size or len(census[0])
        if "census" in cases:
            res["census"] = run_case("census", *census, pool, n)
        if "tradeoff" in cases:
            rows = []
            for w, q in plan.census_grid:
                sel = flat_select(census[0], pool, n, GuardSettings(closeness_weight=w, near_copy_quantile=q))
                m = measure(*census, sel["output"])
                rows.append([w, q, m["overall"], m["dcr_share"], m["membership_auc"],
                             sel["guard"].figures()["near_copies_avoided"], sel["select_s"]])
                H.log(f"tradeoff w={w} q={q}: overall {m['overall']:.5f} dcr {m['dcr_share']:.4f}")
            res["tradeoff"] = rows
        if "leaky" in cases:
            for share in plan.leaky_shares:
                leaky, kind = leaky_flat(pool.iloc[:plan.leaky_rows].reset_index(drop=True), census[0], share)
                res[f"leaky_flat_{share}"] = run_case(f"leaky census {share:.0%}", *census, leaky, plan.leaky_size,
                                                      kind=kind)
    if "real" in cases:
        training, holdout = census
        perm = np.random.default_rng(0).permutation(len(holdout))
        ev_holdout = holdout.iloc[perm[:8_000]].reset_index(drop=True)
        real = holdout.iloc[perm[8_000:]].reset_index(drop=True)
        for n in plan.real_sizes:
            res[f"real_{n}"] = run_case(f"real rows {n}", training, ev_holdout, real, n, seeds=plan.real_seeds)
    if "diamonds" in cases:
        from synth_core.conform import conform_table
        from synth_core.ops import catalog_or_demo, load_dataset

        specs, base = catalog_or_demo(H.REPO / "datasets.yaml")
        spec = next(s for s in specs if s.name == "diamonds")
        tables = load_dataset(spec, base)
        handle, _ = G.generator("diamonds", tables.training, G.training_settings("small", max_epochs=4))
        n = plan.diamonds_size or int(spec.target_size)
        pool = conform_table(G.pool_table("diamonds", handle, 20 * n, shard_size=80_000)[list(tables.training.columns)],
                             tables.training, name="diamonds pool")
        res["diamonds"] = run_case("diamonds", tables.training, tables.holdout, pool, n)
    if "prize" in cases or "tradeoff_prize" in cases:
        training, holdout = prize_tables()
        pool, info = prize_pool(training, plan, args.quick)
        if "prize" in cases:
            res["prize"] = run_case("prize", training, holdout, pool, plan.prize_size, key="group_id")
            leaky, kind = leaky_sequential(pool, training, 0.02, "group_id")
            res["leaky_prize_0.02"] = run_case("leaky prize 2%", training, holdout, leaky, plan.prize_size,
                                               key="group_id", kind=kind)
        if "tradeoff_prize" in cases:
            rows = []
            for w in plan.prize_weights:
                sel = sequential_select(training, pool, plan.prize_size, GuardSettings(closeness_weight=w), "group_id")
                m = measure(training, holdout, sel["output"], "group_id")
                rows.append([w, m["overall"], m["coherence"], m["dcr_share"], m["membership_auc"], sel["closeness"],
                             sel["select_s"]])
                H.log(f"tradeoff prize w={w}: overall {m['overall']:.5f} dcr {m['dcr_share']:.4f}")
            res["tradeoff_prize"] = rows

    report(section, res)
    # a run of some cases only would replace the whole section with part of it
    return bench.finish(section, {"cases": cases, "results": res}, write=not args.only)


def difference_noise(a: dict, b: dict) -> float:
    """1.96 standard errors of ``a['dcr_share'] − b['dcr_share']``, each error read off its 95 %
    interval, the two taken as independent (two samples of one pool overlap little)."""
    se = [(x["dcr_share_ci"][1] - x["dcr_share_ci"][0]) / (2 * 1.959964) for x in (a, b)]
    return 1.959964 * float(np.hypot(*se))


def report(section, res) -> None:
    f = R.fmt
    rows = []
    for name, r in res.items():
        if name.startswith("tradeoff"):
            continue
        for label in ("random", "off", "on"):
            x = r[label]
            rows.append([name, {"random": "random pool sample", "off": "selected, guard off",
                                "on": "selected, guard on"}[label],
                         f(x["overall"]), f(x.get("coherence")), f(x["dcr_share"], 4),
                         f"{x['dcr_share_ci'][0]:.4f}–{x['dcr_share_ci'][1]:.4f}", f(x["membership_auc"], 4),
                         f"{x['membership_auc_two_sided']:.4f} ({x['membership_direction']})",
                         f(x["copies"], 4), f(x.get("share_copies"), 4), f(x.get("share_near"), 4),
                         f(x.get("closeness"), 4), f(x.get("select_s"), 1)])
    section.add_table(
        "Outputs (accuracy: overall against training ∪ holdout, seed 1; privacy on all units up to 50,000; "
        "`copies`: exact copies of training rows (sequences) measured; `injected copies/near`: ground truth of a leaky "
        "pool)",
        ["pool", "table", "overall", "coherence", "dcr_share", "dcr_share 95 % CI", "membership AUC",
         "membership AUC either way (members)", "copies",
         "injected copies", "injected near", "closeness error", "select s"], rows)
    def count(value):  # the guard's figures are floats; these are counts
        return R.NA if value is None else f"{int(value):,}"

    guard_rows = [[name, count(g.get("pool_replicas_removed")), count(g.get("near_copies_avoided")),
                   f(g.get("near_copy_threshold"), 4), count(g.get("guard_candidates")), f(g.get("guard_s"), 1)]
                  for name, g in ((name, r["on"]["guard"]) for name, r in res.items()
                                  if not name.startswith("tradeoff"))]
    section.add_table("What the guard removed", ["pool", "replicas removed", "near-copies avoided", "threshold",
                                                 "candidates", "guard s"], guard_rows)
    if "tradeoff" in res:
        section.add_table(
            "Census 500 k → 24,421: the guard's settings (closeness weight 0 keeps only the removal of replicas and "
            "near-copies; quantile 0 keeps only the strata). Guard off: see the first table",
            ["closeness weight", "near-copy quantile", "overall", "dcr_share", "membership AUC", "near-copies avoided",
             "select s"],
            [[w, q, f(o), f(d, 4), f(a, 4), int(nc), f(t, 1)] for w, q, o, d, a, nc, t in res["tradeoff"]])
    if "tradeoff_prize" in res:
        section.add_table(
            "Prize 100 k groups → 20,000: the closeness weight (near-copy quantile 0.01). A large weight starves the "
            "group search, which tries only a few partners per removed group",
            ["closeness weight", "overall", "coherence", "dcr_share", "membership AUC", "closeness error", "select s"],
            [[w, f(o), f(c), f(d, 4), f(a, 4), f(e, 5), f(t, 1)] for w, o, c, d, a, e, t in res["tradeoff_prize"]])
    for name, r in res.items():
        if name.startswith("tradeoff"):
            continue
        on, off, rnd = r["on"], r["off"], r["random"]
        # neutral both ways: no closer to training than a random pool sample, and no farther
        noise = difference_noise(on, rnd)
        gap = on["dcr_share"] - rnd["dcr_share"]
        section.target(f"{name}: |dcr_share(guard on) − random| within the noise of the difference",
                       f"≤ {noise:.4f}", f"{gap:+.4f} ({on['dcr_share']:.4f} vs {rnd['dcr_share']:.4f}; "
                       f"off {off['dcr_share']:.4f})", abs(gap) <= noise)
        section.target(f"{name}: membership audit either way, guard on, passes the gate's rule",
                       f"CI low ≤ {MAX_AUC}", f"{on['membership_auc_two_sided']:.4f} "
                       f"(CI {on['membership_auc_two_sided_ci'][0]:.4f}–{on['membership_auc_two_sided_ci'][1]:.4f}, "
                       f"{on['membership_direction']})", on["membership_auc_two_sided_ci"][0] <= MAX_AUC)
        if "share_copies" in on:
            section.target(f"{name}: no injected training copy in the output", "0", f"{on['share_copies']:.4f} "
                           f"(off {off['share_copies']:.4f})", on["share_copies"] == 0)
            section.target(f"{name}: near-copy share ≤ the pool's", f"≤ {rnd['share_near']:.4f} (random sample)",
                           f"{on['share_near']:.4f} (off {off['share_near']:.4f})",
                           on["share_near"] <= rnd["share_near"])
        elif not name.startswith("real"):
            section.target(f"{name}: overall within {ACCURACY_MARGIN} of the guard off",
                           f"≥ {off['overall'] - ACCURACY_MARGIN:.5f}",
                           f"{on['overall']:.5f} (off {off['overall']:.5f})",
                           on["overall"] >= off["overall"] - ACCURACY_MARGIN)


if __name__ == "__main__":
    raise SystemExit(main())
