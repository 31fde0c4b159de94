"""The inference risks against a control set as copies of training rows grow (issue 22).

Census halves: a random half of the holdout plays a synthetic table that never saw training, the
other half the control set, and a random half of training (as many rows) the members. Shares of
the synthetic rows are then replaced by copies of member rows. Each table is scored by
``privacy_metrics`` (evaluation seed 1): singling-out, linkability and attribute-inference risk
with their 95 % intervals, and the seconds of the whole call.

A study (no pass/fail target): ``.venv/bin/python -m benchmarks.studies.bench_inference_risks
[--quick] [--no-write]`` from the repository root; reads only the shared census tables.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import harness as H

SECTION = "inference_risks"
SHARES = (0.0, 0.02, 0.1, 0.16)


def _halves():
    from synth_core.io import read_table

    training = read_table(H.shared_file("data", "census", "training.csv.gz"))
    holdout = read_table(H.shared_file("data", "census", "holdout.csv.gz"))
    rng = np.random.default_rng(0)
    order, half = rng.permutation(len(holdout)), len(holdout) // 2
    synthetic = holdout.iloc[np.sort(order[:half])].reset_index(drop=True)
    controls = holdout.iloc[np.sort(order[half:])].reset_index(drop=True)
    members = training.iloc[np.sort(rng.permutation(len(training))[:half])].reset_index(drop=True)
    return members, controls, synthetic


def main(argv=None) -> int:
    from synth_core.metrics._privacy import privacy_metrics

    bench = H.Bench("benchmarks.studies.bench_inference_risks", __doc__, quick="the same run (it takes seconds)")
    bench.parse(argv)
    members, controls, synthetic = _halves()
    rows, raw = [], []
    for share in SHARES:
        table = synthetic.copy()
        k = int(share * len(table))
        if k:
            table.iloc[:k] = members.iloc[:k].to_numpy()
        started = time.perf_counter()
        r = privacy_metrics(members, controls, table, seed=1)
        seconds = time.perf_counter() - started
        H.log(f"copies {share:.0%}: singling out {r.singling_out_risk:.4f}, {seconds:.1f} s")
        raw.append({"share": share, "seconds": seconds, **{k: v for k, v in r.to_dict().items() if "risk" in k}})
        rows.append([f"{share:.0%}", *(f"{getattr(r, f'{n}_risk'):.4f} [{getattr(r, f'{n}_risk_ci')[0]:.3f}, "
                                       f"{getattr(r, f'{n}_risk_ci')[1]:.3f}]"
                                       for n in ("singling_out", "linkability", "attribute_inference")),
                     f"{seconds:.1f}"])
    section = bench.section(SECTION, "Inference risks against a control set, as copies of training rows grow",
                            __doc__.split("\n\n")[1])
    section.add_table(
        f"Census halves ({len(members):,} members, {len(controls):,} controls, {len(synthetic):,} synthetic rows); "
        "risk [95 % interval]; seconds of the whole privacy_metrics call",
        ["copies of members", "singling out", "linkability", "attribute inference", "s"], rows)
    return bench.finish(section, {"rows": raw})


if __name__ == "__main__":
    raise SystemExit(main())
