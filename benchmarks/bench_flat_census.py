"""Benchmark the flat census pipeline end to end: train → 500 k pool → ``synth select`` → evaluate.

1. Train a MOSTLY AI generator on census ``training.csv.gz`` (24,421 rows) with
   ``TrainingSettings(model_size=..., max_training_time_min=5, max_epochs=1000, seed=0)``.
   ``--model-size auto`` (default) trains small and medium and keeps the one whose plain
   sample (training-size rows, generation seed 12345) scores the higher qa overall accuracy
   (seed 1, holdout in the reference); the comparison is part of the results.
2. Generate a pool of 500,000 rows with ``generate_pool`` (shards of 100,000, temperature 1.0,
   seed 0), then merge the shards into one Parquet file for the CLI.
3. ``synth select --training T --pool P --holdout H --size 24421 --seed 0 --output O --json`` as
   a cold process, twice: run 1 with an empty numba cache (JIT compilation included), run 2
   with the warm cache (and the output compared byte for byte). Target: ≤ 60 s wall including
   the evaluation it prints, judged on the slower run.
4. ``synth evaluate --training T --holdout H --synthetic O --seed 1 --json`` (qa's definitions,
   seed 1). Targets: refined overall ≥ ``overall_max`` + 0.002 (the same evaluation's
   ``overall_max``), and the project's privacy gate (``synth_core.metrics._gate.privacy_gate``,
   ``GateSettings()`` defaults) passes.

Generators, the pool, the merged pool file and the refined output live in
``$SYNTH_BENCH_SCRATCH/census`` (default ``/tmp/synth-bench``; ``census-quick`` for ``--quick``)
and are reused by later runs when present (a generator only when its settings and training table
match; ``--retrain`` forces training), see :mod:`benchmarks.generated`. ``bench_privacy_guard`` trains
the same small census generator and pool there. The results say what was reused.

Usage: ``python -m benchmarks.bench_flat_census [--model-size auto|small|medium] [--retrain] [--quick] [--no-write]``
(``--quick``: small model, 1-minute cap, 50,000-row pool, nothing written; a non-default model
size or pool size writes the section ``flat_census_custom``).

``--threads``: only ``synth select`` on the cached 500 k pool (when no run left one, the small
generator's is built first, :func:`generated.census_pool`), as cold
processes with ``NUMBA_NUM_THREADS=1``, ``=2`` and ``=2`` with ``OMP_WAIT_POLICY=ACTIVE`` after
one run that compiles the numba cache, alternating, ``--repeats`` each; per run the wall time, the
refine stage's time and the output's sha256 (identical for every thread count, or the run fails).
Section ``flat_census_threads``.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from benchmarks import generated as G
from benchmarks import harness as H
from benchmarks import results as R

SECTION = "flat_census"
SELECT_TARGET_S = 60.0
MARGIN = 0.002
PROBE_SEED = 12345
POOL_SEED = 0
TEMPERATURE = 1.0
PRIVACY_SEEDS = 10


def stage_row(label: str, rows: int, seconds: float | None, acc: dict, priv: dict) -> list[str]:
    """One row of the stage table: accuracy and privacy figures of one subset."""
    return [label, f"{rows:,}", R.NA if seconds is None else f"{seconds:.1f}",
            *(R.fmt(acc[k]) for k in ("univariate", "bivariate", "trivariate", "overall", "overall_max")),
            *(R.fmt(priv.get(k), 4) for k in ("dcr_share", "nndr_ratio", "exact_copy_training", "exact_copy_holdout"))]


def process_row(label: str, cache: str, run: H.ColdRun) -> list[str]:
    return [label, cache, f"{run.wall_s:.1f}", f"{run.cpu_s:.1f}",
            f"{run.max_rss_mib:,.0f}" if run.max_rss_mib else R.NA, f"{run.load_before[0]:.2f}"]


def generators(m: SimpleNamespace, sizes: list[str], retrain: bool) -> None:
    """Step 1: train (or reuse) each candidate, score a plain sample of each, keep the best."""
    from synth_core.metrics import evaluate

    m.candidates = []
    for size in sizes:
        load0 = R.load_average()
        handle, info = G.generator(m.name, m.training, G.training_settings(size, m.minutes), retrain=retrain)
        H.log(f"generator {size}: probe sample of {m.n_target:,} rows")
        t = time.perf_counter()
        probe = handle.sample(m.n_target, seed=PROBE_SEED, temperature=TEMPERATURE)
        probe_s = time.perf_counter() - t
        ev = evaluate(m.training, probe, m.holdout, seed=1)
        acc = ev.accuracy.to_dict()
        H.log(f"generator {size}: probe overall {acc['overall']:.5f} (max {acc['overall_max']:.5f}), "
              f"{probe_s:.1f} s to generate")
        m.candidates.append({"end": G.training_end(handle, m.minutes), "size": size, "handle": handle, "info": info,
                             "probe_s": probe_s, "accuracy": acc, "privacy": ev.privacy.to_dict(),
                             "load_before": load0})
        handle.close()
    m.best = max(m.candidates, key=lambda c: c["accuracy"]["overall"])
    H.log(f"using the {m.best['size']} generator")


def pool_step(m: SimpleNamespace) -> None:
    """Step 2: the best generator's pool, and the pool merged into one file for the CLI."""
    handle = m.best["handle"]
    m.pool_load = [R.load_average()]
    m.pool = G.pool(m.name, handle, m.n_pool, shard_size=m.shard, seed=POOL_SEED, temperature=TEMPERATURE)
    handle.close()
    m.pool_load.append(R.load_average())
    new_rows = m.pool.shards_generated * m.shard if m.pool.shards_generated else 0
    m.rate = new_rows / m.pool.elapsed_s if new_rows and m.pool.elapsed_s > 0 else None
    m.merged, m.merge_s = G.merged(m.pool)


def select_step(m: SimpleNamespace) -> None:
    """Steps 3 and 4: ``synth select`` twice (empty, then warm numba cache), then ``synth evaluate``."""
    from synth_core.metrics import privacy_gate

    m.out_file = G.folder(m.name) / f"refined-{m.best['size']}-{m.n_pool}.parquet"
    argv_sel = H.synth_cli(
        "select", "--training", m.trn_path, "--pool", m.merged, "--holdout", m.hol_path, "--size", m.n_target,
        "--seed", 0, "--output", m.out_file, "--json",
    )
    argv_ev = H.synth_cli("evaluate", "--training", m.trn_path, "--holdout", m.hol_path, "--synthetic", m.out_file,
                          "--seed", 1, "--json")
    m.hashes = []
    with H.numba_env("census-select") as env:
        m.select_runs = H.cold_runs(argv_sel, 2, "census select", env=env,
                                    after=lambda run: m.hashes.append(H.sha256(m.out_file)))
        m.ev_run = H.run_checked(argv_ev, "census evaluate", env=env, timeout_s=1800,
                                 numba_cache="warm (from the select runs)")
    m.sel = m.select_runs[0].json()

    def _no_time(stages):
        return [{k: v for k, v in st.items() if k != "elapsed_s"} for st in stages]

    m.same_output = len(set(m.hashes)) == 1 and _no_time(m.sel["stages"]) == _no_time(m.select_runs[1].json()["stages"])
    m.final = m.ev_run.json()
    m.verdict = privacy_gate(m.final["privacy"])
    stage_priv = m.sel["stages"][-1].get("privacy")
    m.stage_verdict = privacy_gate(stage_priv) if stage_priv else None


def privacy_sampling(m: SimpleNamespace) -> None:
    """Step 5: how stable is the privacy verdict?

    synth evaluate subsamples 10,000 rows per reference; the dcr_share of such a sample has a
    standard error of about 0.005, the same order as the distance to the 0.52 threshold. So the
    refined output (and, as a baseline, the random pool sample) is also measured in process
    over ten sampling seeds and once on the full tables (every row, no subsampling).
    """
    from synth_core.metrics import privacy_metrics
    from synth_core.select.flat import output_table, random_subset

    H.log("privacy: seeds 0-9 and full tables, refined output and random pool sample")
    training, holdout = m.training, m.holdout
    refined_df = pd.read_parquet(m.out_file)
    pool_df = pd.read_parquet(m.merged)
    random_df = output_table(training, pool_df, random_subset(len(pool_df), m.n_target, 0))
    del pool_df
    m.robust = {}
    for label, table in (("refined", refined_df), ("random pool sample", random_df)):
        per_seed = [privacy_metrics(training, holdout, table, seed=s) for s in range(PRIVACY_SEEDS)]
        full = privacy_metrics(training, holdout, table, sample_size=max(len(training), len(holdout)), seed=0)
        m.robust[label] = {"seeds": per_seed, "full": full}


def targets(section: R.Section, m: SimpleNamespace) -> None:
    select_runs, acc, fp, verdict = m.select_runs, m.final["accuracy"], m.final["privacy"], m.verdict
    worst = max(r.wall_s for r in select_runs)
    section.target(
        "`synth select` wall time (cold, incl. its printed evaluation)",
        f"≤ {SELECT_TARGET_S:.0f} s",
        f"{worst:.1f} s slower of 2 ({select_runs[0].wall_s:.1f} s empty JIT cache, {select_runs[1].wall_s:.1f} s "
        "warm)",
        worst <= SELECT_TARGET_S,
    )
    bound = acc["overall_max"] + MARGIN
    section.target(
        "refined overall accuracy (`synth evaluate --seed 1`)",
        f"≥ overall_max + {MARGIN} = {bound:.5f}",
        f"{acc['overall']:.5f} (overall_max {acc['overall_max']:.5f}; margin "
        f"{acc['overall'] - acc['overall_max']:+.5f})",
        acc["overall"] >= bound,
    )
    section.target(
        "privacy of the refined output (`synth_core.metrics._gate.privacy_gate`, default `GateSettings()`)",
        H.gate_rule(),
        f"{'passes' if verdict.passed else 'fails: ' + verdict.description} (dcr_share {fp['dcr_share']:.4f}, "
        f"nndr_ratio {fp['nndr_ratio']:.4f})",
        verdict.passed,
    )
    handle = m.best["handle"]
    section.target(
        "training of the used generator within the time budget (wall time of `train_flat`)",
        f"≤ {m.minutes:g} min + 30 s SDK job start-up",
        f"{handle.training_seconds:.0f} s, {handle.epochs:g} epochs, ended by {m.best['end']['ended_by']}"
        + (" (cached generator)" if m.best["info"]["reused"] else ""),
        handle.training_seconds <= m.minutes * 60 + 30,
    )


def training_tables(section: R.Section, m: SimpleNamespace) -> None:
    rows = []
    for c in m.candidates:
        h, a = c["handle"], c["accuracy"]
        rows.append([
            c["size"] + (" (used)" if c is m.best else ""),
            f"{h.training_seconds:.0f}" + (" (cached)" if c["info"]["reused"] else ""),
            f"{h.engine_training_seconds}" if h.engine_training_seconds is not None else R.NA,
            f"{h.epochs:g}" if h.epochs is not None else R.NA,
            c["end"]["ended_by"],
            R.fmt(c["end"]["median_epoch_s"], 1) + " / " + R.fmt(c["end"]["slowest_epoch_s"], 1),
            h.device or R.NA,
            f"{c['probe_s']:.1f}",
            *(R.fmt(a[k]) for k in ("univariate", "bivariate", "trivariate", "overall", "overall_max")),
            R.fmt(c["privacy"]["dcr_share"], 4),
        ])
    section.add_table(
        f"Generator choice: training, then a plain sample of {m.n_target:,} rows (generation seed {PROBE_SEED}) "
        "evaluated with seed 1",
        ["model", "training s (wall)", "engine s", "epochs", "ended by", "epoch s median / slowest", "device",
         "sample s", "uni", "bi", "tri", "overall", "overall_max", "dcr_share"],
        rows,
        "lrrrlrlrrrrrrr",
    )
    pool = m.pool
    section.add_table(
        "Pool generation",
        ["figure", "value"],
        [
            ["rows / shards", f"{pool.n_rows:,} / {len(pool.shard_paths)} of {m.shard:,}"],
            ["shards generated by this run / reused from an earlier run",
             f"{pool.shards_generated} / {pool.shards_skipped}"],
            ["generation time (this run)", f"{pool.elapsed_s:.0f} s"],
            ["generation rate (this run)", f"{m.rate:,.0f} rows/s" if m.rate else "– (all shards reused)"],
            ["load average 1 min before / after generation", f"{m.pool_load[0][0]:.2f} / {m.pool_load[1][0]:.2f}"],
            ["merge shards → one Parquet for the CLI",
             f"{m.merge_s:.1f} s" if m.merge_s is not None else "merged file reused"],
            ["pool folder", f"`{H.rel(pool.out_dir)}`"],
        ],
        "ll",
    )


def selection_tables(section: R.Section, m: SimpleNamespace) -> None:
    final = m.final
    stage_rows = [stage_row("random pool sample" if s["stage"] == "random" else s["stage"], s["rows"], s["elapsed_s"],
                            s["accuracy"], s.get("privacy") or {}) for s in m.sel["stages"]]
    stage_rows.append(stage_row("**refined, `synth evaluate --seed 1`**", final["rows"]["synthetic"], None,
                                final["accuracy"], final["privacy"]))
    section.add_table(
        "Selection stages (accuracy and privacy as printed by `synth select --seed 0`; last row: the target "
        "evaluation, seed 1)",
        ["subset", "rows", "stage s", "uni", "bi", "tri", "overall", "overall_max", "dcr_share", "nndr_ratio",
         "copies trn", "copies hol"],
        stage_rows,
        "lrrrrrrrrrrr",
    )
    proc_rows = [process_row(f"synth select, run {i}", r.extra["numba_cache"], r)
                 for i, r in enumerate(m.select_runs, 1)]
    proc_rows.append(process_row("synth evaluate --seed 1", m.ev_run.extra["numba_cache"], m.ev_run))
    section.add_table("Cold processes",
                      ["command", "numba cache", "wall s", "CPU s", "peak RSS MiB", "load 1 min before"],
                      proc_rows, "llrrrr")

    from synth_core.metrics import privacy_gate

    rob_rows = []
    for label, r in m.robust.items():
        shares = [p.dcr_share for p in r["seeds"]]
        ratios = [p.nndr_ratio for p in r["seeds"]]
        n_pass = sum(privacy_gate(p).passed for p in r["seeds"])
        full = r["full"]
        rob_rows.append([
            label,
            f"{min(shares):.4f} / {sum(shares) / len(shares):.4f} / {max(shares):.4f}",
            f"{min(ratios):.4f} / {max(ratios):.4f}",
            f"{n_pass} of {len(shares)}",
            f"{full.dcr_share:.4f}",
            f"{full.nndr_ratio:.4f}",
            R.PASS if privacy_gate(full).passed else R.FAIL,
        ])
    section.add_table(
        "Privacy verdict vs sampling (in process, `privacy_metrics`, judged by `privacy_gate`): seeds "
        f"0–{PRIVACY_SEEDS - 1} with the default 10,000-row samples, and once on the full tables "
        f"({min(len(m.training), len(m.holdout)):,} rows per reference)",
        ["subset", "dcr_share min / mean / max", "nndr_ratio min / max", "seeds passing", "dcr_share, full",
         "nndr_ratio, full", "full passes"],
        rob_rows,
        "lrrrrrc",
    )


def notes(section: R.Section, m: SimpleNamespace, auto: bool) -> None:
    if m.stage_verdict is not None:
        section.notes.append(
            "`synth select`'s own evaluation of the refined stage (seed 0) "
            + ("passes `privacy_gate` too." if m.stage_verdict.passed else
               f"would FAIL `privacy_gate`: {m.stage_verdict.description} - the verdict depends on the evaluation seed "
               "(see the sampling table).")
        )
    for c in m.candidates:
        h, end = c["handle"], c["end"]
        if end["ended_by"] == "early stopping":
            section.notes.append(
                f"The {c['size']} model stopped after {h.epochs:g} epochs ({h.training_seconds:.0f} s wall) by the "
                f"engine's early stopping, inside the {m.minutes:g}-min cap: the cap did not bind, so this training is "
                "reproducible."
            )
        else:
            section.notes.append(
                f"The {c['size']} model was stopped by the {m.minutes:g}-min cap after {h.epochs:g} completed epochs "
                f"(median epoch {R.fmt(end['median_epoch_s'], 1)} s, slowest {R.fmt(end['slowest_epoch_s'], 1)} s): "
                "what it learns depends on the machine's load, and the result is not reproducible. Compare the load "
                "average of this section."
            )
    if auto and len(m.candidates) > 1:
        section.notes.append(
            "`--model-size auto` keeps the model whose plain sample scores the higher overall accuracy; under CPU "
            "contention the choice can change (a model that early-stops unloaded may hit the cap loaded)."
        )
    details = {s["stage"]: s.get("details") or {} for s in m.sel["stages"]}
    section.notes.append(
        "Stage details: " + "; ".join(f"{k}: " + ", ".join(f"{kk}={vv}" for kk, vv in v.items() if kk != "errors")
                                     for k, v in details.items() if v)
    )
    section.notes.append(f"The two `synth select` runs wrote {'byte-identical' if m.same_output else 'DIFFERENT'} "
                         "output and stage tables.")
    section.notes.append(
        "`synth select --pool` takes one table file; `generate_pool` writes a folder of shards, so the benchmark "
        "merges them (`read_pool` + `write_table`) first. That merge is outside the timed CLI run."
    )
    section.notes.append(
        "`synth select` prints its stage table evaluated with `--seed 0` (its own seed); the target row is a separate "
        "`synth evaluate --seed 1` of the written output, so its `overall_max` differs slightly from the stage rows'."
    )
    if any(c["info"]["reused"] for c in m.candidates) or m.pool.shards_skipped:
        section.notes.append(
            "Cached artefacts were reused (see the tables): training times are those recorded when the generator was "
            "trained; run with `--retrain` and an empty scratch folder for a full measurement."
        )


def thread_runs(argv: list, out_file: Path, what: str, repeats: int, threads=(1, 2)) -> tuple[list, list]:
    """``argv`` (a ``synth select --json`` writing ``out_file``) as cold processes sharing one numba
    cache: one run that compiles it (2 threads), then ``repeats`` rounds of one run per thread
    count (``NUMBA_NUM_THREADS``) and one with 2 threads spinning while idle (``OMP_WAIT_POLICY=ACTIVE``;
    the kernels default to passive), alternating so that a change of load hits all alike.
    Returns (table rows, raw summaries); raises unless every output has the same sha256."""
    rows, raw, hashes = [], [], set()
    with H.numba_env(what.replace(" ", "-")) as env:
        rounds = [(n, "warm", "PASSIVE") for n in threads] + [(2, "warm", "ACTIVE")]
        plan = [(2, "empty (JIT compile)", "PASSIVE")] + [run for _ in range(repeats) for run in rounds]
        for n, cache, policy in plan:
            run = H.run_checked(argv, f"{what}, NUMBA_NUM_THREADS={n}, OMP_WAIT_POLICY={policy}",
                                env={**env, "NUMBA_NUM_THREADS": str(n), "OMP_WAIT_POLICY": policy}, numba_cache=cache)
            digest = H.sha256(out_file)
            hashes.add(digest)
            stages = {st.get("stage", st.get("name")): st.get("elapsed_s") for st in run.json().get("stages", [])}
            rows.append([n, policy.lower(), cache, f"{run.wall_s:.1f}", f"{run.cpu_s:.1f}",
                         R.fmt(stages.get("refined"), 1), f"{run.load_before[0]:.2f}", digest[:16]])
            raw.append({"threads": n, "omp_wait_policy": policy, "numba_cache": cache, "stages_s": stages,
                        "sha256": digest, **run.summary()})
    if len(hashes) != 1:
        raise RuntimeError(f"{what}: outputs differ between thread counts: {sorted(hashes)}")
    return rows, raw


def finish_threads(bench: H.Bench, section, rows: list, raw: list) -> int:
    """Write a ``--threads`` section: the table of :func:`thread_runs` and the load caveat."""
    section.add_table("Cold processes", THREAD_HEADERS, rows, "rllrrrrl")
    section.notes.append("Two cores shared with other work: figures taken at a load above 2 are slowed by it (see "
                         "the load column).")
    section.notes.append("`OMP_WAIT_POLICY=ACTIVE` keeps idle worker threads spinning instead of sleeping. The kernels "
                         "default to passive (`synth_core/select/_kernels.py`): with spinning threads, one IPF sweep "
                         "over 2.5 M rows on 2 busy cores took 62 s instead of 21 s. On an otherwise idle machine the "
                         "active row shows what spinning gains; the output is the same either way.")
    return bench.finish(section, {"runs": raw})


THREAD_HEADERS = ["NUMBA_NUM_THREADS", "OMP_WAIT_POLICY", "numba cache", "wall s", "CPU s", "refine stage s",
                  "load 1 min before", "output sha256"]


def threads_main(bench: H.Bench, repeats: int) -> int:
    """``--threads``: the select step on the cached pool with 1 and 2 numba threads."""
    from synth_core.io import read_table

    pattern = f"pool-*-{G.CENSUS_POOL[0]}-seed0-t1"
    pools = sorted(G.folder(G.scratch_name("census", False)).glob(pattern))
    if not pools:  # no full run left one: the small generator's pool (trained and generated where missing)
        H.log("no cached 500,000-row census pool: building the small census generator's pool")
        pools = [Path(G.census_pool(quick=False).out_dir)]
    trn = H.shared_file("data", "census", "training.csv.gz")
    n_target = len(read_table(trn))
    out_file = H.scratch_dir() / "census-threads.csv"
    argv = H.synth_cli("select", "--training", trn, "--pool", pools[0], "--size", n_target, "--seed", 0,
                       "--output", out_file, "--force", "--json")
    rows, raw = thread_runs(argv, out_file, "census select", repeats)
    section = bench.section(
        SECTION + "_threads", "Flat census: synth select on 1 and 2 numba threads",
        f"`synth select --size {n_target} --seed 0` (privacy guard on) on the cached pool `{H.rel(pools[0])}` as cold "
        "processes: one that compiles the numba cache, then alternating runs with `NUMBA_NUM_THREADS=1`, `=2` and `=2` "
        "with `OMP_WAIT_POLICY=ACTIVE`. The parallel parts are the scoring passes (IPF, trimming, a refinement round's "
        "gains); the refinement's search runs on one thread (`speculate=False`, the default). The output must be "
        "byte-identical throughout.",
    )
    return finish_threads(bench, section, rows, raw)


def main(argv: list[str] | None = None) -> int:
    bench = H.Bench("benchmarks.bench_flat_census", __doc__, quick="small model, 1-min cap, 50,000-row pool",
                    sdk_stdout=True)
    bench.parser.add_argument("--model-size", choices=("auto", "small", "medium", "large"), default="auto")
    bench.parser.add_argument("--pool-rows", type=int, default=None, help="pool rows (default 500,000)")
    bench.parser.add_argument("--retrain", action="store_true", help="train even when a matching generator is cached")
    bench.parser.add_argument("--threads", action="store_true", help="only select on the cached pool, 1 vs 2 threads")
    bench.parser.add_argument("--repeats", type=int, default=1, help="--threads: runs per thread count")
    args = bench.parse(argv)
    if args.threads:
        return threads_main(bench, args.repeats)
    from synth_core.io import read_table

    m = SimpleNamespace(minutes=G.QUICK_MINUTES if args.quick else 5.0, name=G.scratch_name("census", args.quick),
                        n_pool=args.pool_rows or (50_000 if args.quick else 500_000))
    m.shard = min(100_000, m.n_pool)
    m.trn_path = H.shared_file("data", "census", "training.csv.gz")
    m.hol_path = H.shared_file("data", "census", "holdout.csv.gz")
    m.training, m.holdout = read_table(m.trn_path), read_table(m.hol_path)
    m.n_target = len(m.training)
    if args.model_size != "auto":
        sizes = [args.model_size]
    else:
        sizes = ["small"] if args.quick else ["small", "medium"]

    generators(m, sizes, args.retrain)
    pool_step(m)
    select_step(m)
    privacy_sampling(m)

    section = bench.section(
        SECTION,
        "Flat census: train 5 min → 500 k pool → synth select → evaluate",
        (
            "The census flat target of the product, end to end on this CPU machine: a MOSTLY AI generator trained on "
            f"`census/training.csv.gz` ({m.n_target:,} rows) with `TrainingSettings(model_size=…, "
            f"max_training_time_min={m.minutes:g}, max_epochs=1000, seed=0)`; a pool of {m.n_pool:,} rows from "
            f"`generate_pool` (shards of {m.shard:,}, temperature {TEMPERATURE:g}, seed {POOL_SEED}), merged into one "
            f"Parquet file; `synth select` as a cold process (`--size {m.n_target} --seed 0`, holdout passed for its "
            "printed privacy figures only); and `synth evaluate --seed 1` of the refined output. Peak memory: "
            f"{H.rss_method()}. Scratch folder: `{H.rel(G.folder(m.name))}`."
        ),
        custom=args.pool_rows is not None or args.model_size != "auto",
    )
    targets(section, m)
    training_tables(section, m)
    selection_tables(section, m)
    notes(section, m, args.model_size == "auto")
    return bench.finish(section, {
        "candidates": [{k: v for k, v in c.items() if k != "handle"} | {"handle": c["handle"].to_json()}
                       for c in m.candidates],
        "pool": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(m.pool).items() if k != "shard_paths"},
        "merge_s": m.merge_s,
        "select_runs": [r.summary() for r in m.select_runs],
        "select": m.sel,
        "evaluate_run": m.ev_run.summary(),
        "evaluate": m.final,
        "privacy_gate": m.verdict.to_dict(),
        "privacy_sampling": {k: {"seeds": [p.to_dict() for p in v["seeds"]], "full": v["full"].to_dict()}
                             for k, v in m.robust.items()},
        "output_sha256": m.hashes,
    })


if __name__ == "__main__":
    raise SystemExit(main())
