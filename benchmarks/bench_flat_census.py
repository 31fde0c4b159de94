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
   ``overall_max``), and ``privacy_passes`` true.

Generators, the pool and the merged pool file live in ``$SYNTH_BENCH_SCRATCH/census-flat``
(default ``/tmp/synth-bench``) and are reused by later runs when present (a generator only when
its settings match; ``--retrain`` forces training). The results say what was reused.

Usage: ``python benchmarks/bench_flat_census.py [--model-size auto|small|medium] [--retrain] [--quick] [--no-write]``
(``--quick``: small model, 1-minute cap, 50,000-row pool, nothing written; a non-default model
size or pool size writes the section ``flat_census_custom``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402

import harness as H  # noqa: E402
import results as R  # noqa: E402

SECTION = "flat_census"
SELECT_TARGET_S = 60.0
MARGIN = 0.002
PROBE_SEED = 12345
POOL_SEED = 0
TEMPERATURE = 1.0
PRIVACY_SEEDS = 10


def settings_for(size: str, minutes: float):
    from synth_core.generator import TrainingSettings

    return TrainingSettings(model_size=size, max_training_time_min=minutes, max_epochs=1000, seed=0)


def get_generator(size: str, minutes: float, training: pd.DataFrame, retrain: bool, folder: Path):
    """(handle, info): the cached generator when its settings match, else a freshly trained one."""
    from synth_core.generator import GeneratorHandle, train_flat

    settings = settings_for(size, minutes)
    workdir = folder / f"generator-{size}-{minutes:g}min"
    if not retrain and (workdir / "generator.json").is_file():
        try:
            handle = GeneratorHandle.load(workdir)
            if asdict(handle.settings) == asdict(settings) and handle.n_training_rows == len(training):
                H.log(f"generator {size}: reusing {workdir} (trained earlier in {handle.training_seconds:.0f} s)")
                return handle, {"reused": True, "workdir": str(workdir)}
            H.log(f"generator {size}: settings changed, retraining")
        except Exception as exc:  # an unusable cache is retrained, not an error
            H.log(f"generator {size}: cannot reuse {workdir} ({exc}); retraining")
    H.log(f"generator {size}: training (cap {minutes:g} min) in {workdir}")
    t = time.perf_counter()
    handle = train_flat(training, workdir, settings, name=f"bench-census-{size}")
    wall = time.perf_counter() - t
    H.log(f"generator {size}: {handle.epochs} epochs, {handle.training_seconds:.0f} s")
    return handle, {"reused": False, "workdir": str(workdir), "wall_s": wall}


def training_end(handle, minutes: float) -> dict:
    """How training ended, from the wall time and the engine's per-epoch progress messages.

    The engine applies its time cap to its own wall clock, which includes SDK job start-up that
    ``engine_training_seconds`` (the last completed epoch's timestamp) does not; a run whose wall
    time reaches the cap is taken as stopped by the cap, anything shorter as early stopping.
    """
    import csv

    totals = []
    for path in sorted(Path(handle.model_dir).glob("ModelStore/*/model-data/progress-messages.csv")):
        with open(path) as fh:
            totals.extend(float(r["total_time"]) for r in csv.DictReader(fh))
    steps = [b - a for a, b in zip([0.0] + totals[:-1], totals)]
    by_cap = handle.training_seconds >= 0.97 * minutes * 60
    return {
        "ended_by": "time cap" if by_cap else "early stopping",
        "slowest_epoch_s": max(steps) if steps else None,
        "median_epoch_s": sorted(steps)[len(steps) // 2] if steps else None,
    }


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-size", choices=("auto", "small", "medium", "large"), default="auto")
    ap.add_argument("--pool-rows", type=int, default=None, help="pool rows (default 500,000)")
    ap.add_argument("--retrain", action="store_true", help="train even when a matching generator is cached")
    ap.add_argument("--quick", action="store_true", help="small model, 1-min cap, 50,000-row pool")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone (implied by --quick)")
    args = ap.parse_args(argv)
    if args.quick:
        args.no_write = True  # development runs never replace the recorded figures
    quick = args.quick
    minutes = 1.0 if quick else 5.0
    n_pool = args.pool_rows or (50_000 if quick else 500_000)
    shard = min(100_000, n_pool)
    sizes = ["small", "medium"] if args.model_size == "auto" and not quick else [("small" if quick and args.model_size == "auto" else args.model_size)]
    script_args = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--no-write"]

    # the SDK prints status lines ("Stopping Synthetic Data SDK ...") on stdout, also at exit:
    # send them to stderr, so that stdout carries only the final table
    table_out = sys.stdout
    sys.stdout = sys.stderr

    from synth_core.evaluate import evaluate
    from synth_core.io import write_table
    from synth_core.pool import generate_pool, read_pool
    from synth_core.privacy import PrivacyResult, privacy_passes

    facts = R.machine_facts()
    started = time.perf_counter()
    H.log(f"machine: {facts['cpu_count']} CPUs, load {facts['load_before']}")
    trn_path = H.shared_file("data", "census", "training.csv.gz")
    hol_path = H.shared_file("data", "census", "holdout.csv.gz")
    training, holdout = pd.read_csv(trn_path), pd.read_csv(hol_path)
    n_target = len(training)
    folder = H.scratch_dir() / "census-flat"
    folder.mkdir(parents=True, exist_ok=True)
    raw: dict = {"facts": facts}

    # ------------------------------------------------------------------ 1. generator(s)
    candidates = []
    for size in sizes:
        load0 = R.load_average()
        handle, info = get_generator(size, minutes, training, args.retrain, folder)
        H.log(f"generator {size}: probe sample of {n_target:,} rows")
        t = time.perf_counter()
        probe = handle.sample(n_target, seed=PROBE_SEED, temperature=TEMPERATURE)
        probe_s = time.perf_counter() - t
        ev = evaluate(training, probe, holdout, seed=1)
        acc = ev.accuracy.to_dict()
        H.log(f"generator {size}: probe overall {acc['overall']:.5f} (max {acc['overall_max']:.5f}), {probe_s:.1f} s to generate")
        candidates.append(
            {
                "end": training_end(handle, minutes),
                "size": size,
                "handle": handle,
                "info": info,
                "probe_s": probe_s,
                "accuracy": acc,
                "privacy": ev.privacy.to_dict(),
                "load_before": load0,
            }
        )
        handle.close()
    best = max(candidates, key=lambda c: c["accuracy"]["overall"])
    handle = best["handle"]
    size = best["size"]
    H.log(f"using the {size} generator")

    # ------------------------------------------------------------------ 2. pool
    pool_dir = folder / f"pool-{size}-{minutes:g}min-{n_pool}-seed{POOL_SEED}-t{TEMPERATURE:g}"
    manifest = pool_dir / "pool.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("generator_id") != handle.generator_id:
        H.log(f"pool: {pool_dir} belongs to another generator; removing it")
        H.remove_tree(pool_dir)
    merged = pool_dir.with_suffix(".parquet")

    def progress(done, total, rows, rate, eta):
        H.log(f"pool: shard {done}/{total}, {rows:,} rows, {rate:,.0f} rows/s, eta {eta if eta is None else round(eta)} s")

    load0 = R.load_average()
    pool = generate_pool(handle, n_pool, pool_dir, shard_size=shard, seed=POOL_SEED, temperature=TEMPERATURE, progress=progress)
    handle.close()
    pool_load_after = R.load_average()
    new_rows = pool.shards_generated * shard if pool.shards_generated else 0
    rate = new_rows / pool.elapsed_s if new_rows and pool.elapsed_s > 0 else None
    H.log(f"pool: {pool.n_rows:,} rows, {pool.shards_generated} shards generated, {pool.shards_skipped} reused, {pool.elapsed_s:.0f} s")
    merge_s = None
    if not merged.is_file() or merged.stat().st_mtime < max(p.stat().st_mtime for p in pool.shard_paths):
        t = time.perf_counter()
        write_table(read_pool(pool_dir), merged)
        merge_s = time.perf_counter() - t
        H.log(f"pool: merged into {merged} in {merge_s:.1f} s")

    # ------------------------------------------------------------------ 3. synth select (cold, twice)
    out_file = folder / f"refined-{size}-{n_pool}.parquet"
    argv_sel = H.synth_cli(
        "select", "--training", trn_path, "--pool", merged, "--holdout", hol_path, "--size", n_target, "--seed", 0,
        "--output", out_file, "--json",
    )
    cache = H.fresh_numba_cache("census-select")
    env = H.child_env(numba_cache=cache)
    select_runs = []
    hashes = []
    for i in range(2):
        H.log(f"select: cold run {i + 1}/2 ({'empty' if i == 0 else 'warm'} numba cache)")
        run = H.run_cold(argv_sel, env=env, timeout_s=3600)
        H.check_run(run, f"synth select run {i + 1}")
        run.extra["numba_cache"] = "empty (JIT compile)" if i == 0 else "warm"
        select_runs.append(run)
        hashes.append(sha256(out_file))
        H.log(f"select: {run.wall_s:.1f} s wall, peak RSS {run.max_rss_mib or 0:.0f} MiB")
    sel = select_runs[0].json()
    def _no_time(stages):
        return [{k: v for k, v in st.items() if k != "elapsed_s"} for st in stages]

    same_output = len(set(hashes)) == 1 and _no_time(select_runs[0].json()["stages"]) == _no_time(select_runs[1].json()["stages"])

    # ------------------------------------------------------------------ 4. synth evaluate (seed 1)
    argv_ev = H.synth_cli("evaluate", "--training", trn_path, "--holdout", hol_path, "--synthetic", out_file, "--seed", 1, "--json")
    H.log("evaluate: refined output, seed 1")
    ev_run = H.run_cold(argv_ev, env=env, timeout_s=1800)
    H.remove_tree(cache)
    H.check_run(ev_run, "synth evaluate of the refined output")
    final = ev_run.json()
    acc = final["accuracy"]
    priv = PrivacyResult(**final["privacy"])
    passed, reasons = privacy_passes(priv)

    # ------------------------------------------------------------------ 5. privacy: how stable is the verdict?
    # synth evaluate subsamples 10,000 rows per reference; the dcr_share of such a sample has a
    # standard error of about 0.005, the same order as the distance to the 0.52 threshold. So the
    # refined output (and, as a baseline, the random pool sample) is also measured in process
    # over ten sampling seeds and once on the full tables (every row, no subsampling).
    from synth_core.privacy import privacy_metrics
    from synth_core.select import output_table, random_subset

    H.log("privacy: seeds 0-9 and full tables, refined output and random pool sample")
    refined_df = pd.read_parquet(out_file)
    pool_df = pd.read_parquet(merged)
    random_df = output_table(training, pool_df, random_subset(len(pool_df), n_target, 0))
    del pool_df
    robust = {}
    for label, table in (("refined", refined_df), ("random pool sample", random_df)):
        per_seed = [privacy_metrics(training, holdout, table, seed=s) for s in range(PRIVACY_SEEDS)]
        full = privacy_metrics(training, holdout, table, sample_size=max(len(training), len(holdout)), seed=0)
        robust[label] = {"seeds": per_seed, "full": full}
    refined_stage_priv = sel["stages"][-1].get("privacy")
    stage_verdict = privacy_passes(PrivacyResult(**refined_stage_priv)) if refined_stage_priv else None

    # ------------------------------------------------------------------ results
    section = R.Section(
        name=SECTION if not quick and args.pool_rows is None and args.model_size == "auto" else SECTION + "_custom",
        title="Flat census: train 5 min → 500 k pool → synth select → evaluate" + (" (--quick)" if quick else ""),
        what=(
            "The census flat target of the product, end to end on this CPU machine: a MOSTLY AI generator trained on "
            f"`census/training.csv.gz` ({n_target:,} rows) with `TrainingSettings(model_size=…, max_training_time_min={minutes:g}, "
            f"max_epochs=1000, seed=0)`; a pool of {n_pool:,} rows from `generate_pool` (shards of {shard:,}, temperature "
            f"{TEMPERATURE:g}, seed {POOL_SEED}), merged into one Parquet file; `synth select` as a cold process "
            f"(`--size {n_target} --seed 0`, holdout passed for its printed privacy figures only); and `synth evaluate --seed 1` "
            f"of the refined output. Peak memory: {H.rss_method()}. Scratch folder: `{folder}`."
        ),
        command=H.reproduce_command("bench_flat_census.py", script_args),
        facts=facts,
    )
    worst = max(r.wall_s for r in select_runs)
    section.target(
        "`synth select` wall time (cold, incl. its printed evaluation)",
        f"≤ {SELECT_TARGET_S:.0f} s",
        f"{worst:.1f} s slower of 2 ({select_runs[0].wall_s:.1f} s empty JIT cache, {select_runs[1].wall_s:.1f} s warm)",
        worst <= SELECT_TARGET_S,
    )
    bound = acc["overall_max"] + MARGIN
    section.target(
        "refined overall accuracy (`synth evaluate --seed 1`)",
        f"≥ overall_max + {MARGIN} = {bound:.5f}",
        f"{acc['overall']:.5f} (overall_max {acc['overall_max']:.5f}; margin {acc['overall'] - acc['overall_max']:+.5f})",
        acc["overall"] >= bound,
    )
    section.target(
        "privacy of the refined output (`privacy_passes`)",
        "passes (dcr_share ≤ 0.52, nndr_ratio ≥ 0.5, no excess training copies)",
        f"{'passes' if passed else 'fails: ' + '; '.join(reasons)} (dcr_share {priv.dcr_share:.4f}, nndr_ratio {priv.nndr_ratio:.4f})",
        passed,
    )
    section.target(
        "training of the used generator within the time budget (wall time of `train_flat`)",
        f"≤ {minutes:g} min + 30 s SDK job start-up",
        f"{handle.training_seconds:.0f} s, {handle.epochs:g} epochs, ended by {best['end']['ended_by']}"
        + (" (cached generator)" if best["info"]["reused"] else ""),
        handle.training_seconds <= minutes * 60 + 30,
    )

    rows = []
    for c in candidates:
        h, a = c["handle"], c["accuracy"]
        rows.append(
            [
                c["size"] + (" (used)" if c is best else ""),
                f"{h.training_seconds:.0f}" + (" (cached)" if c["info"]["reused"] else ""),
                f"{h.engine_training_seconds}" if h.engine_training_seconds is not None else R.NA,
                f"{h.epochs:g}" if h.epochs is not None else R.NA,
                c["end"]["ended_by"],
                R.fmt(c["end"]["median_epoch_s"], 1) + " / " + R.fmt(c["end"]["slowest_epoch_s"], 1),
                h.device or R.NA,
                f"{c['probe_s']:.1f}",
                R.fmt(a["univariate"]),
                R.fmt(a["bivariate"]),
                R.fmt(a["trivariate"]),
                R.fmt(a["overall"]),
                R.fmt(a["overall_max"]),
                R.fmt(c["privacy"]["dcr_share"], 4),
            ]
        )
    section.add_table(
        f"Generator choice: training, then a plain sample of {n_target:,} rows (generation seed {PROBE_SEED}) evaluated with seed 1",
        ["model", "training s (wall)", "engine s", "epochs", "ended by", "epoch s median / slowest", "device", "sample s", "uni", "bi", "tri", "overall", "overall_max", "dcr_share"],
        rows,
        "lrrrlrlrrrrrrr",
    )
    section.add_table(
        "Pool generation",
        ["figure", "value"],
        [
            ["rows / shards", f"{pool.n_rows:,} / {len(pool.shard_paths)} of {shard:,}"],
            ["shards generated by this run / reused from an earlier run", f"{pool.shards_generated} / {pool.shards_skipped}"],
            ["generation time (this run)", f"{pool.elapsed_s:.0f} s"],
            ["generation rate (this run)", f"{rate:,.0f} rows/s" if rate else "– (all shards reused)"],
            ["load average 1 min before / after generation", f"{load0[0]:.2f} / {pool_load_after[0]:.2f}"],
            ["merge shards → one Parquet for the CLI", f"{merge_s:.1f} s" if merge_s is not None else "merged file reused"],
            ["pool folder", f"`{pool_dir}`"],
        ],
        "ll",
    )
    stage_rows = []
    for s in sel["stages"]:
        a, p = s["accuracy"], s.get("privacy") or {}
        label = "random pool sample" if s["stage"] == "random" else s["stage"]
        stage_rows.append(
            [
                label,
                f"{s['rows']:,}",
                f"{s['elapsed_s']:.1f}",
                R.fmt(a["univariate"]),
                R.fmt(a["bivariate"]),
                R.fmt(a["trivariate"]),
                R.fmt(a["overall"]),
                R.fmt(a["overall_max"]),
                R.fmt(p.get("dcr_share"), 4),
                R.fmt(p.get("nndr_ratio"), 4),
                R.fmt(p.get("exact_copy_training"), 4),
                R.fmt(p.get("exact_copy_holdout"), 4),
            ]
        )
    fp = final["privacy"]
    stage_rows.append(
        [
            "**refined, `synth evaluate --seed 1`**",
            f"{final['rows']['synthetic']:,}",
            R.NA,
            R.fmt(acc["univariate"]),
            R.fmt(acc["bivariate"]),
            R.fmt(acc["trivariate"]),
            R.fmt(acc["overall"]),
            R.fmt(acc["overall_max"]),
            R.fmt(fp["dcr_share"], 4),
            R.fmt(fp["nndr_ratio"], 4),
            R.fmt(fp["exact_copy_training"], 4),
            R.fmt(fp["exact_copy_holdout"], 4),
        ]
    )
    section.add_table(
        "Selection stages (accuracy and privacy as printed by `synth select --seed 0`; last row: the target evaluation, seed 1)",
        ["subset", "rows", "stage s", "uni", "bi", "tri", "overall", "overall_max", "dcr_share", "nndr_ratio", "copies trn", "copies hol"],
        stage_rows,
        "lrrrrrrrrrrr",
    )
    proc_rows = []
    for i, r in enumerate(select_runs, 1):
        proc_rows.append([f"synth select, run {i}", r.extra["numba_cache"], f"{r.wall_s:.1f}", f"{r.cpu_s:.1f}", f"{r.max_rss_mib:,.0f}" if r.max_rss_mib else R.NA, f"{r.load_before[0]:.2f}"])
    proc_rows.append(["synth evaluate --seed 1", "warm (from the select runs)", f"{ev_run.wall_s:.1f}", f"{ev_run.cpu_s:.1f}", f"{ev_run.max_rss_mib:,.0f}" if ev_run.max_rss_mib else R.NA, f"{ev_run.load_before[0]:.2f}"])
    section.add_table("Cold processes", ["command", "numba cache", "wall s", "CPU s", "peak RSS MiB", "load 1 min before"], proc_rows, "llrrrr")

    rob_rows = []
    for label, r in robust.items():
        shares = [p.dcr_share for p in r["seeds"]]
        ratios = [p.nndr_ratio for p in r["seeds"]]
        n_pass = sum(privacy_passes(p)[0] for p in r["seeds"])
        full = r["full"]
        rob_rows.append(
            [
                label,
                f"{min(shares):.4f} / {sum(shares) / len(shares):.4f} / {max(shares):.4f}",
                f"{min(ratios):.4f} / {max(ratios):.4f}",
                f"{n_pass} of {len(shares)}",
                f"{full.dcr_share:.4f}",
                f"{full.nndr_ratio:.4f}",
                R.PASS if privacy_passes(full)[0] else R.FAIL,
            ]
        )
    section.add_table(
        f"Privacy verdict vs sampling (in process, `privacy_metrics`): seeds 0–{PRIVACY_SEEDS - 1} with the default "
        f"10,000-row samples, and once on the full tables ({min(len(training), len(holdout)):,} rows per reference)",
        ["subset", "dcr_share min / mean / max", "nndr_ratio min / max", "seeds passing", "dcr_share, full", "nndr_ratio, full", "full passes"],
        rob_rows,
        "lrrrrrc",
    )
    if stage_verdict is not None:
        ok, why = stage_verdict
        section.notes.append(
            "`synth select`'s own evaluation of the refined stage (seed 0) "
            + ("passes `privacy_passes` too." if ok else f"would FAIL `privacy_passes`: {'; '.join(why)} - the verdict depends on the evaluation seed (see the sampling table).")
        )
    for c in candidates:
        h, end = c["handle"], c["end"]
        if end["ended_by"] == "early stopping":
            section.notes.append(
                f"The {c['size']} model stopped after {h.epochs:g} epochs ({h.training_seconds:.0f} s wall) by the engine's early "
                f"stopping, inside the {minutes:g}-min cap: the cap did not bind, so this training is reproducible."
            )
        else:
            section.notes.append(
                f"The {c['size']} model was stopped by the {minutes:g}-min cap after {h.epochs:g} completed epochs (median epoch "
                f"{R.fmt(end['median_epoch_s'], 1)} s, slowest {R.fmt(end['slowest_epoch_s'], 1)} s): what it learns depends on the "
                "machine's load, and the result is not reproducible. Compare the load average of this section."
            )
    if args.model_size == "auto" and len(candidates) > 1:
        section.notes.append(
            "`--model-size auto` keeps the model whose plain sample scores the higher overall accuracy; under CPU contention "
            "the choice can change (a model that early-stops unloaded may hit the cap loaded)."
        )
    details = {s["stage"]: s.get("details") or {} for s in sel["stages"]}
    section.notes.append(
        "Stage details: " + "; ".join(f"{k}: " + ", ".join(f"{kk}={vv}" for kk, vv in v.items() if kk != "errors") for k, v in details.items() if v)
    )
    section.notes.append(f"The two `synth select` runs wrote {'byte-identical' if same_output else 'DIFFERENT'} output and stage tables.")
    section.notes.append(
        "`synth select --pool` takes one table file; `generate_pool` writes a folder of shards, so the benchmark merges them "
        "(`read_pool` + `write_table`) first. That merge is outside the timed CLI run."
    )
    section.notes.append(
        "`synth select` prints its stage table evaluated with `--seed 0` (its own seed); the target row is a separate "
        "`synth evaluate --seed 1` of the written output, so its `overall_max` differs slightly from the stage rows'."
    )
    if any(c["info"]["reused"] for c in candidates) or pool.shards_skipped:
        section.notes.append(
            "Cached artefacts were reused (see the tables): training times are those recorded when the generator was trained; "
            "run with `--retrain` and an empty scratch folder for a full measurement."
        )
    section.elapsed_s = time.perf_counter() - started
    section.load_after = R.load_average()
    raw.update(
        {
            "candidates": [{k: v for k, v in c.items() if k != "handle"} | {"handle": c["handle"].to_json()} for c in candidates],
            "pool": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(pool).items() if k != "shard_paths"},
            "merge_s": merge_s,
            "select_runs": [r.summary() for r in select_runs],
            "select": sel,
            "evaluate_run": ev_run.summary(),
            "evaluate": final,
            "privacy_passes": [passed, reasons],
            "privacy_sampling": {k: {"seeds": [p.to_dict() for p in v["seeds"]], "full": v["full"].to_dict()} for k, v in robust.items()},
            "output_sha256": hashes,
        }
    )
    H.save_json("bench_flat_census", raw)
    print(section.summary(), file=table_out, flush=True)
    if not args.no_write:
        path = R.write(section)
        H.log(f"wrote section '{section.name}' of {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
