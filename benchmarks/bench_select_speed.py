"""Benchmark ``synth select`` on the census flat case before and after a change: seconds per stage, accuracy, privacy.

The case is the one of ``bench_flat_census.py``: census ``training.csv.gz`` (24,421 rows), the cached
500,000-row pool of the small census generator (:func:`generated.census_pool`, merged into one
Parquet file; built first when no run left one) and ``synth -v select --training T --pool P
--holdout H --size 24421 --seed 0 --output O --json``, in fresh processes with a warm numba cache.

"Before" is this working tree with the files in ``CHANGED`` taken from ``--baseline`` (default
``HEAD``, read with ``git show``; nothing in the checkout changes) and "after" the working tree
as it is, each in its own copy of ``synth_core`` with its own numba cache. Each variant runs once
to compile its cache, then ``--repeats`` times, before and after alternating so that both see the
same load; the tables give the median of each figure and the load average before every run (the
development machine has 2 cores, shared with other work). "after" also runs once with
``NUMBA_NUM_THREADS=1``: its output must be byte-identical to the 2-thread runs'.

Seconds per stage: ``prepare`` (binning, privacy guard, MI pairs, from the ``-v`` log), then the
stage records of the JSON (IPF, trimming, refinement); ``selection`` is their sum, ``process`` the
wall time of the whole command (reading, the four stage evaluations, writing included). Targets:
selection ≤ 12 s after; the refined output's overall accuracy (qa definitions, as printed) not
below before's by more than 0.0005; its ``dcr_share`` inside before's 95 % interval; identical
output for 1 and 2 threads.

Usage: ``python -m benchmarks.bench_select_speed [--baseline REF] [--repeats N] [--no-write]``
(``--quick``: one repeat, nothing written). Section ``select_speed``.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
from pathlib import Path

from benchmarks import generated as G
from benchmarks import harness as H
from benchmarks import results as R

SECTION = "select_speed"
SIZE = 24_421
SELECTION_TARGET_S = 12.0
ACCURACY_SLACK = 0.0005
# the files the change touched: "before" takes them from the baseline ref
CHANGED = (
    "synth_core/select/_kernels.py",
    "synth_core/select/flat/_ipf.py",
    "synth_core/select/flat/_pipeline.py",
    "synth_core/select/flat/_refine.py",
)
STAGES = ("prepare", "ipf", "trimmed", "refined")
PRIVACY = ("dcr_share", "dcr_share_ci", "nndr_ratio", "membership_auc_two_sided", "exact_copy_training")
PREPARE_LINE = re.compile(r"binning \+ guard \+ MI: .*?([0-9.]+) s\s*$", re.MULTILINE)

bench = H.Bench("benchmarks.bench_select_speed", __doc__, quick="one repeat")
bench.parser.add_argument("--baseline", default="HEAD", help="git ref of the files in CHANGED for 'before'")
bench.parser.add_argument("--repeats", type=int, default=2, help="timed runs per variant (after one warm-up)")


def code_copy(name: str, baseline: str | None) -> Path:
    """A copy of the working tree's ``synth_core`` in the scratch folder (``baseline``: with the
    files in ``CHANGED`` as they are at that ref); the folder to run the CLI from."""
    root = H.scratch_dir() / "select-speed" / name
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(H.REPO / "synth_core", root / "synth_core", ignore=shutil.ignore_patterns("__pycache__"))
    for path in CHANGED if baseline else ():
        text = subprocess.run(["git", "show", f"{baseline}:{path}"], cwd=H.REPO, check=True, capture_output=True,
                              text=True).stdout
        (root / path).write_text(text)
    return root


def stage_seconds(run: H.ColdRun) -> dict[str, float]:
    """Seconds per stage of one ``synth -v select --json`` run, and their sum."""
    found = PREPARE_LINE.findall(run.stderr)
    if not found:
        raise RuntimeError(f"no 'binning + guard + MI' line in the log of {H.shell_join(run.argv)}")
    out = {"prepare": float(found[-1])}
    for st in run.json()["stages"]:
        if st["stage"] in STAGES:
            out[st["stage"]] = float(st["elapsed_s"])
    out["selection"] = sum(out[s] for s in STAGES)
    out["process"] = run.wall_s
    return out


def figures(run: H.ColdRun) -> dict:
    """Accuracy per stage and the privacy figures of the random pool sample and of the output."""
    js = run.json()
    stages = js["stages"]
    return {"overall": {st["stage"]: st["accuracy"]["overall"] for st in stages},
            "privacy_random": {k: stages[0]["privacy"].get(k) for k in PRIVACY},
            "privacy_output": {k: stages[-1]["privacy"].get(k) for k in PRIVACY},
            "refine": stages[-1]["details"], "ipf": stages[1]["details"], "passed": js["passed"]}


def main() -> int:
    args = bench.parse()
    repeats = 1 if args.quick else max(1, args.repeats)
    training = H.shared_file("data", "census", "training.csv.gz")
    holdout = H.shared_file("data", "census", "holdout.csv.gz")
    pool_file, _ = G.merged(G.census_pool())
    folders = {"before": code_copy("before", args.baseline), "after": code_copy("after", None)}
    caches = {v: H.fresh_numba_cache(f"select-speed-{v}") for v in folders}
    out_dir = H.scratch_dir() / "select-speed"

    def run(variant: str, label: str, threads: int = 2) -> H.ColdRun:
        out = out_dir / f"{variant}-{label}.parquet"
        argv = H.synth_cli("-v", "select", "--training", training, "--pool", pool_file, "--holdout", holdout,
                           "--size", SIZE, "--seed", 0, "--output", out, "--json")
        env = H.child_env(caches[variant], {"PYTHONPATH": str(folders[variant]), "NUMBA_NUM_THREADS": str(threads)})
        result = H.run_cold(argv, env=env, cwd=folders[variant], timeout_s=1800)
        H.check_run(result, f"{variant} select")
        result.extra.update(variant=variant, label=label, threads=threads, sha256=H.sha256(out))
        H.log(f"{variant} {label}: {result.wall_s:.1f} s, load {result.load_before[0]:.2f}, "
              f"{result.extra['sha256'][:12]}")
        return result

    try:
        for variant in folders:  # compile each variant's numba cache
            run(variant, "warmup")
        runs = {v: [] for v in folders}
        for i in range(repeats):
            for variant in folders:
                runs[variant].append(run(variant, f"run{i + 1}"))
        one_thread = run("after", "threads1", threads=1)
    finally:
        for cache in caches.values():
            H.remove_tree(cache)

    seconds = {v: [stage_seconds(r) for r in rs] for v, rs in runs.items()}
    med = {v: {k: statistics.median(s[k] for s in seconds[v]) for k in seconds[v][0]} for v in seconds}
    fig = {v: figures(rs[0]) for v, rs in runs.items()}
    hashes = {v: sorted({r.extra["sha256"] for r in rs}) for v, rs in runs.items()}

    section = bench.section(SECTION, "`synth select` speed on census (500 k pool → 24,421 rows): before / after",
                            __doc__.split("\n\n")[1] + "\n\n" + __doc__.split("\n\n")[2])
    after_sel, before_acc, after_acc = med["after"]["selection"], fig["before"]["overall"], fig["after"]["overall"]
    section.target("selection seconds (prepare + IPF + trim + refine), after", f"≤ {SELECTION_TARGET_S:.0f} s",
                   f"{after_sel:.1f} s (before {med['before']['selection']:.1f} s)", after_sel <= SELECTION_TARGET_S)
    section.target("refined overall accuracy, after vs before", f"≥ before − {ACCURACY_SLACK}",
                   f"{after_acc['refined']:.5f} vs {before_acc['refined']:.5f}",
                   after_acc["refined"] >= before_acc["refined"] - ACCURACY_SLACK)
    lo, hi = fig["before"]["privacy_output"]["dcr_share_ci"]
    dcr = fig["after"]["privacy_output"]["dcr_share"]
    section.target("output dcr_share, after", f"inside before's 95 % interval {lo:.4f} – {hi:.4f}", f"{dcr:.4f}",
                   lo <= dcr <= hi)
    same = len(hashes["after"]) == 1 and one_thread.extra["sha256"] == hashes["after"][0]
    section.target("output, NUMBA_NUM_THREADS=1 vs 2 (after)", "byte-identical",
                   f"sha256 {one_thread.extra['sha256'][:12]} vs {', '.join(h[:12] for h in hashes['after'])}", same)
    section.add_table(
        f"Seconds per stage (median of {repeats} runs per variant, alternating; 2 numba threads):",
        ["variant", *STAGES, "selection", "process"],
        [[v, *(f"{med[v][k]:.1f}" for k in (*STAGES, "selection", "process"))] for v in folders])
    section.add_table(
        "Every timed run (load average before the run, 1 min):",
        ["run", "threads", "load", *STAGES, "selection", "process", "output sha256"],
        [[f"{r.extra['variant']} {r.extra['label']}", r.extra["threads"], f"{r.load_before[0]:.2f}",
          *(f"{s[k]:.1f}" for k in (*STAGES, "selection", "process")), r.extra["sha256"][:12]]
         for v in folders for r, s in zip(runs[v], seconds[v])]
        + [[f"after {one_thread.extra['label']}", 1, f"{one_thread.load_before[0]:.2f}",
            *(f"{stage_seconds(one_thread)[k]:.1f}" for k in (*STAGES, "selection", "process")),
            one_thread.extra["sha256"][:12]]])
    section.add_table(
        "Overall accuracy per stage (qa definitions, against training ∪ holdout, as `synth select` prints it):",
        ["variant", "random", "ipf", "trimmed", "refined", "IPF sweeps", "refine swaps / rounds"],
        [[v, *(R.fmt(fig[v]["overall"].get(s)) for s in ("random", "ipf", "trimmed", "refined")),
          f"{fig[v]['ipf'].get('sweeps')} ({fig[v]['ipf'].get('stop_reason')})",
          f"{fig[v]['refine'].get('swaps')} / {fig[v]['refine'].get('rounds')}"] for v in folders])
    section.add_table(
        "Privacy (random pool sample → output):",
        ["variant", *PRIVACY],
        [[v, *(f"{_cell(fig[v]['privacy_random'][k])} → {_cell(fig[v]['privacy_output'][k])}" for k in PRIVACY)]
         for v in folders])
    section.notes.append(f"before: the working tree with {', '.join(f'`{p}`' for p in CHANGED)} at `{args.baseline}`")
    raw = {"seconds": seconds, "median": med, "figures": fig, "hashes": hashes,
           "runs": {v: [r.summary() for r in rs] for v, rs in runs.items()}, "one_thread": one_thread.summary()}
    return bench.finish(section, raw)


def _cell(value) -> str:
    if isinstance(value, (list, tuple)):
        return "–".join(f"{x:.4f}" for x in value)
    return R.fmt(value, 4)


if __name__ == "__main__":
    raise SystemExit(main())
