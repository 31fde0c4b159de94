"""Differential privacy on census: what a stated (ε, δ) costs in accuracy, and what DP selection adds
to a DP generator.

Training and holdout are the shared census tables (24,421 rows each; the holdout only evaluates).
For each total budget ε ∈ {1, 4, 16} at δ = 1e-6, split by the default ``selection_share`` (0.5):

* a DP generator (MOSTLY AI engine, DP-SGD, small model, 5 epochs (8-minute cap, not reached),
  batch 1,024, max grad norm 1, noise multiplier calibrated to the budget by opacus' RDP accountant)
  trained with max ε = (1 - share) ε and δ/2; its pool of 100,000 rows;
* (a) DP generator + DP selection: ``run_selection(..., dp=DPSettings(ρ))`` with selection's ρ
  (share ε at δ/2), target size the noisy estimate of the training size;
* (b) DP generator + no selection: a seeded random sample of its pool of the same size;
* (b') a DP generator trained on the *whole* ε (and δ), random sample of its pool: what the budget
  buys when selection spends none of it (the fair baseline for (a));
* (c) non-DP generator + DP selection: the cached census generator's (small, 5-min) first 100,000
  pool rows selected as in (a). Its table is *not* DP (the generator saw training directly); it
  shows what DP selection costs against non-DP selection on the same pool.

Non-DP reference rows: the cached generator's pool with non-DP selection (privacy guard on, the
default) and its random sample. Every output is scored by ``synth_core.metrics._evaluate.evaluate``
(accuracy against training ∪ holdout, privacy on all rows, evaluation seed 1). The composed ε is
the engine-reported generator ε plus selection's ε (basic composition). Usage:
``python -m benchmarks.bench_dp [--quick] [--no-write]`` (``--quick``: ε = 4 only, one epoch,
20,000-row pools, nothing written).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks import generated as G
from benchmarks import harness as H
from benchmarks import results as R

SECTION = "dp"
SEED = 0
EVAL_SEED = 1
DELTA = 1e-6
PLOT = Path(__file__).resolve().parent / "dp.png"


@dataclass(frozen=True)
class Plan:
    epsilons: tuple[float, ...] = (1.0, 4.0, 16.0)
    max_epochs: int = 5
    minutes: int = 8
    pool_rows: int = 100_000
    shard: int = 50_000
    census_minutes: float = 5.0  # the cached non-DP generator of bench_flat_census.py / bench_privacy_guard.py
    census_pool: int = 500_000
    census_shard: int = 100_000


FULL = Plan()
QUICK = Plan(epsilons=(4.0,), max_epochs=1, minutes=2, pool_rows=20_000, shard=20_000, census_minutes=1.0,
             census_pool=50_000, census_shard=50_000)


def dp_generator(name: str, training, settings, dp):
    """(handle, info) of a DP generator, cached like :func:`generated.generator` with the DP settings
    in the key."""
    from synth_core.generate import GeneratorHandle, train_flat

    identity = {"kind": "flat", "settings": asdict(settings), "dp": asdict(dp), "data": G._digest(training)}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
    workdir = G.folder(name) / f"generator-{key}"
    if (workdir / "generator.json").is_file():
        handle = GeneratorHandle.load(workdir)
        H.log(f"{name}: reusing {H.rel(workdir)} (trained in {handle.training_seconds:.0f} s, ε {handle.dp_epsilon})")
        return handle, {"reused": True, "training_s": handle.training_seconds}
    H.remove_tree(workdir)
    H.log(f"{name}: training a DP generator (max ε {dp.max_epsilon:g}) in {H.rel(workdir)}")
    handle = train_flat(training, workdir, settings, name=f"bench-{name}", dp=dp)
    H.log(f"{name}: trained in {handle.training_seconds:.0f} s, {handle.epochs} epochs, engine ε {handle.dp_epsilon}")
    return handle, {"reused": False, "training_s": handle.training_seconds, "load": list(R.load_average())}


def pool_of(name, handle, training, rows, units, shard):
    """The first ``rows`` rows of the generator's pool of ``units`` rows (shards read in order)."""
    import pandas as pd

    from synth_core.conform import conform_table

    parts, have = [], 0
    for path in G.pool(name, handle, units, shard_size=shard).shard_paths:
        if have >= rows:
            break
        parts.append(pd.read_parquet(path))
        have += len(parts[-1])
    frame = pd.concat(parts, ignore_index=True).iloc[:rows]
    return conform_table(frame[list(training.columns)].reset_index(drop=True), training, name=name)


def measure(training, holdout, table) -> dict:
    q = H.evaluate_seeds(training, holdout, table, (EVAL_SEED,))
    run = q["runs"][0]
    return {"overall": run["accuracy"]["overall"], "dcr_share": run["privacy"]["dcr_share"],
            "membership_auc": run["privacy"]["membership_auc"], "copies": run["privacy"]["exact_copy_training"],
            "rows": len(table)}


def select(training, pool, budget=None):
    """(output, random sample, figures): DP selection with ``budget``'s selection part, else non-DP
    selection with the default guard."""
    from synth_core.select import GuardSettings
    from synth_core.select.flat import DPSettings, SelectionSettings, output_table, run_selection

    t = time.perf_counter()
    if budget is None:
        problem, records = run_selection(training, pool, len(training), SelectionSettings(seed=SEED))
        figures = {}
    else:
        dp = DPSettings(rho=budget.selection_rho, delta=budget.selection_delta)
        problem, records = run_selection(training, pool, None,
                                         SelectionSettings(seed=SEED, guard=GuardSettings(enabled=False)), dp=dp)
        figures = problem.noisy.figures()
    figures["select_s"] = time.perf_counter() - t
    return output_table(training, pool, records[-1].rows), output_table(training, pool, records[0].rows), figures


def run(plan: Plan, quick: bool, training, holdout) -> dict:
    from synth_core.dp import PrivacyBudget, PrivacyStatement
    from synth_core.generate._generator import DPTraining

    res = {"rows": []}
    name = G.scratch_name("census", quick)
    handle, info = G.generator(name, training, G.training_settings("small", plan.census_minutes))
    census_pool = pool_of(name, handle, training, plan.pool_rows, plan.census_pool, plan.census_shard)
    H.log("non-DP: selecting with the guard on")
    out, rnd, fig = select(training, census_pool)
    res["rows"].append({"epsilon": None, "variant": "non-DP generator + selection", **measure(training, holdout, out),
                        **fig})
    res["rows"].append({"epsilon": None, "variant": "non-DP generator, random sample",
                        **measure(training, holdout, rnd)})
    settings = G.training_settings("small", plan.minutes, max_epochs=plan.max_epochs)
    for eps in plan.epsilons:
        budget = PrivacyBudget(eps, DELTA, generator="engine")
        dp = DPTraining(max_epsilon=budget.generator_epsilon, delta=budget.generator_delta)
        gname = G.scratch_name(f"census-dp-eps{eps:g}", quick)
        gen, ginfo = dp_generator(gname, training, settings, dp)
        pool = pool_of(gname, gen, training, plan.pool_rows, plan.pool_rows, plan.shard)
        H.log(f"ε {eps:g}: DP selection on the DP pool")
        out, rnd, fig = select(training, pool, budget)
        statement = PrivacyStatement(budget.selection_rho, budget.selection_delta, fig["sigma"], gen.dp_epsilon,
                                     gen.dp_delta)
        common = {"epsilon": eps, "generator_epsilon": gen.dp_epsilon, "generator_delta": gen.dp_delta,
                  "training_s": gen.training_seconds, "epochs": gen.epochs, "training_load": ginfo.get("load")}
        res["rows"].append({**common, "variant": "(a) DP generator + DP selection", "composed": statement.to_dict(),
                            **measure(training, holdout, out), **fig})
        res["rows"].append({**common, "variant": "(b) DP generator, random sample",
                            "composed": {"epsilon": gen.dp_epsilon, "delta": gen.dp_delta},
                            **measure(training, holdout, rnd)})
        H.log(f"ε {eps:g}: DP selection on the non-DP pool")
        out_c, _, fig_c = select(training, census_pool, budget)
        res["rows"].append({"epsilon": eps, "variant": "(c) non-DP generator + DP selection",
                            "composed": {"epsilon": None, "delta": None, "selection_epsilon": budget.selection_epsilon},
                            **measure(training, holdout, out_c), **fig_c})
        full = DPTraining(max_epsilon=float(eps), delta=DELTA)
        fname = G.scratch_name(f"census-dp-full-eps{eps:g}", quick)
        gen_f, finfo = dp_generator(fname, training, settings, full)
        pool_f = pool_of(fname, gen_f, training, plan.pool_rows, plan.pool_rows, plan.shard)
        from synth_core.select.flat import random_subset

        rows_f = random_subset(len(pool_f), len(rnd), SEED)
        res["rows"].append({"epsilon": eps, "variant": "(b') DP generator on the whole ε, random sample",
                            "generator_epsilon": gen_f.dp_epsilon, "generator_delta": gen_f.dp_delta,
                            "training_s": gen_f.training_seconds, "epochs": gen_f.epochs,
                            "training_load": finfo.get("load"),
                            "composed": {"epsilon": gen_f.dp_epsilon, "delta": gen_f.dp_delta},
                            **measure(training, holdout, pool_f.iloc[rows_f].reset_index(drop=True))})
        for row in res["rows"][-4:]:
            H.log(f"ε {eps:g} {row['variant']}: overall {row['overall']:.5f}, dcr_share {row['dcr_share']:.4f}, "
                  f"AUC {row['membership_auc']:.4f}")
    return res


def report(section, res) -> None:
    f = R.fmt
    rows = []
    for r in res["rows"]:
        c = r.get("composed") or {}
        stated = R.NA if c.get("epsilon") is None else f"({c['epsilon']:.3g}, {c['delta']:.2g})"
        rows.append([R.NA if r["epsilon"] is None else f"{r['epsilon']:g}", r["variant"], stated,
                     f(r.get("generator_epsilon"), 3), f(r.get("rho"), 4), f(r.get("sigma"), 3), f"{r['rows']:,}",
                     f(r["overall"]), f(r["dcr_share"], 4), f(r["membership_auc"], 4), f(r.get("copies"), 4),
                     f(r.get("training_s"), 0), f(r.get("select_s"), 1)])
    section.add_table(
        "Census, δ = 1e-6, selection_share 0.5 (ε: the total budget; stated: the composed (ε, δ) of the published "
        "table, engine-reported generator ε + selection's; (c) is not DP as a whole)",
        ["ε", "variant", "stated (ε, δ)", "generator ε (engine)", "selection ρ", "σ per cell", "rows", "overall",
         "dcr_share", "membership AUC", "exact copies of training (share)", "DP training s", "selection s"], rows,
        "llllrrrrrrrrr")
    by = {(r["epsilon"], r["variant"][:4].rstrip(" D")): r for r in res["rows"]}
    for eps in sorted({r["epsilon"] for r in res["rows"] if r["epsilon"] is not None}):
        a, b, full = by[(eps, "(a)")], by[(eps, "(b)")], by.get((eps, "(b')"))
        section.target(f"ε {eps:g}: DP selection beats a random sample of the same DP pool (overall)",
                       f"> {b['overall']:.5f}", f"{a['overall']:.5f}", a["overall"] > b["overall"])
        if full is not None:
            section.target(f"ε {eps:g}: generator + selection beat a generator on the whole ε (overall)",
                           f"> {full['overall']:.5f}", f"{a['overall']:.5f}", a["overall"] > full["overall"])
    section.notes.extend(plain_words(res))
    plot(res)
    section.notes.append(f"Plot: `benchmarks/{PLOT.name}` (overall accuracy and dcr_share against ε).")
    section.notes.append("DP training times are the wall seconds of the engine's job on this 2-core CPU, recorded when "
                         "each generator was trained (a cached generator keeps its recorded time); other jobs shared "
                         "the machine, so they are noisy. Models are deliberately small (small model, 5 epochs).")


def plain_words(res) -> list[str]:
    """Where DP selection does not pay, said plainly (from the measured rows)."""
    by = {(r["epsilon"], r["variant"][:4].rstrip(" D")): r for r in res["rows"]}
    eps = sorted({r["epsilon"] for r in res["rows"] if r["epsilon"] is not None})
    worse = [e for e in eps if by[(e, "(a)")]["overall"] <= by[(e, "(b)")]["overall"]]
    worse_full = [e for e in eps if (e, "(b')") in by and by[(e, "(a)")]["overall"] <= by[(e, "(b')")]["overall"]]
    notes = []
    if worse:
        notes.append("DP selection does NOT beat a random sample of the same DP pool at ε = "
                     + ", ".join(f"{e:g}" for e in worse) + ".")
    else:
        notes.append("DP selection beats a random sample of the same DP pool at every ε measured ("
                     + ", ".join(f"{e:g}" for e in eps) + ").")
    if worse_full:
        notes.append("Spending all of ε on the generator and none on selection gives a higher overall accuracy at "
                     "ε = " + ", ".join(f"{e:g}" for e in worse_full) + ": there selection does not earn its share.")
    elif any((e, "(b')") in by for e in eps):
        notes.append("Half the budget on selection beats all of it on the generator at every ε measured.")
    return notes


def plot(res) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key, label, style in (("(a)", "(a) DP gen + DP sel", "o-"), ("(b) ", "(b) DP gen, random", "s--"),
                              ("(b')", "(b') DP gen on all of ε, random", "d--"),
                              ("(c)", "(c) non-DP gen + DP sel", "^:")):
        pts = sorted((r["epsilon"], r) for r in res["rows"] if r["variant"].startswith(key))
        for ax, metric in zip(axes, ("overall", "dcr_share")):
            ax.plot([e for e, _ in pts], [r[metric] for _, r in pts], style, label=label)
    for r in res["rows"]:
        if r["epsilon"] is None:
            for ax, metric in zip(axes, ("overall", "dcr_share")):
                ax.axhline(r[metric], color="grey" if "random" in r["variant"] else "black", lw=0.8,
                           ls="--" if "random" in r["variant"] else "-", label=r["variant"])
    ticks = sorted({r["epsilon"] for r in res["rows"] if r["epsilon"] is not None})
    for ax, metric in zip(axes, ("overall accuracy", "dcr_share")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlabel("total ε (δ = 1e-6)")
        ax.set_ylabel(metric)
    axes[0].legend(fontsize=7)
    fig.suptitle("census: differential privacy")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    bench = H.Bench("benchmarks.bench_dp", __doc__, sdk_stdout=True, quick="ε = 4 only, one epoch, 20,000-row pools")
    args = bench.parse(argv)
    plan = QUICK if args.quick else FULL
    section = bench.section(SECTION, "Differential privacy: DP generator and DP selection on census",
                            __doc__.split("\n\n", 1)[1].split("Usage:")[0].strip())
    from synth_core.io import read_table

    training = read_table(H.shared_file("data", "census", "training.csv.gz"))
    holdout = read_table(H.shared_file("data", "census", "holdout.csv.gz"))
    res = run(plan, args.quick, training, holdout)
    report(section, res)
    return bench.finish(section, {"plan": asdict(plan), "results": res})


if __name__ == "__main__":
    raise SystemExit(main())
