"""Differential privacy for sequences: the prize sequences from a generator trained with DP-SGD at
the level of a whole group (issue 25).

A seeded subsample of the prize training groups (``--groups``, default 4,000) trains the small
sequential generator (the product's epoch budget, ``max_epochs="auto"``: 15 epochs for 4,000 groups;
seed 0) once without differential privacy and once per budget ε ∈ {1, 4, 16} at δ = 1e-6
(``synth_core.generate.train_sequential(..., dp=DPTraining(...))``: every group one DP-SGD sample,
so one user's whole sequence is the unit of privacy). Each generator gives as many groups as it
trained on; that random sample of its output is the release (pure post-processing of the DP
generator: no selection, which would read training again). Every table is scored against the
training subsample and a holdout subsample of as many groups (qa's accuracy, evaluation seed 1;
dcr_share), and for dcr_share also against as many training-file groups left out of the subsample:
the prize's holdout file need not be drawn like its training file, and an output can sit nearer to
one file than to the other without favouring any record it saw. The ε is the engine's own accounting
(the sum over the trained models); seconds are the training's wall time on this machine, shared with
other work.

Reproduce: ``.venv/bin/python -m benchmarks.studies.bench_dp_sequences [--groups N] [--quick] [--no-write]``
from the repository root (``--quick``: 600 groups, 2 epochs). With DP-SGD the noise is calibrated
to spend ε within the epoch cap, so more epochs cost no budget, only noise per step.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import harness as H

SECTION = "dp_sequences"
EPSILONS = (None, 1.0, 4.0, 16.0)
DELTA = 1e-6
KEY = "group_id"


def _subsample(table, n_groups: int, seed: int):
    ids = np.sort(table[KEY].unique())
    keep = np.random.default_rng(seed).choice(ids, min(n_groups, len(ids)), replace=False)
    return table[table[KEY].isin(keep)].reset_index(drop=True)


def main(argv=None) -> int:
    from synth_core.generate import TrainingSettings, generate_pool, read_pool, train_sequential
    from synth_core.generate._generator import DPTraining
    from synth_core.io import read_table
    from synth_core.metrics import evaluate

    bench = H.Bench("benchmarks.studies.bench_dp_sequences", __doc__, quick="600 groups, 2 epochs", sdk_stdout=True)
    bench.parser.add_argument("--groups", type=int, default=4_000, help="training groups (default 4,000)")
    args = bench.parse(argv)
    n_groups, epochs = (600, 2) if args.quick else (args.groups, "auto")
    full = read_table(H.shared_file("data", "prize-sequential", "training.csv.gz"))
    training = _subsample(full, n_groups, 0)
    unused = _subsample(full[~full[KEY].isin(training[KEY].unique())], n_groups, 2)
    holdout = _subsample(read_table(H.shared_file("data", "prize-sequential", "holdout.csv.gz")), n_groups, 1)
    scratch = H.scratch_dir() / "dp_sequences"
    H.remove_tree(scratch)
    settings = TrainingSettings(model_size="small", max_epochs=epochs, max_training_time_min=None, seed=0)
    rows, raw = [], []
    for eps in EPSILONS:
        label = "no DP" if eps is None else f"ε = {eps:g}"
        dp = None if eps is None else DPTraining(max_epsilon=eps, delta=DELTA)
        started = time.perf_counter()
        handle = train_sequential(training, KEY, scratch / f"g-{label}", settings, name=f"dpseq-{eps}", dp=dp)
        train_s = time.perf_counter() - started
        result = generate_pool(handle, training[KEY].nunique(), scratch / f"pool-{label}", seed=0)
        handle.close()
        table = read_pool(result.out_dir)[list(training.columns)]
        ev = evaluate(training, table, holdout, group_key=KEY, seed=1, membership=False)
        a, p = ev.accuracy.to_dict(), ev.privacy
        q = evaluate(training, table, unused, group_key=KEY, seed=1, membership=False).privacy
        spent = "–" if handle.dp_epsilon is None else f"{handle.dp_epsilon:.3g} / {handle.dp_delta:.2g}"
        H.log(f"{label}: overall {a['overall']:.4f}, dcr_share {p.dcr_share:.4f}, spent {spent}, {train_s:.0f} s")
        rows.append([label, spent, f"{handle.epochs:g}",
                     *(f"{a[k]:.4f}" if a.get(k) is not None else "–"
                       for k in ("overall", "univariate", "bivariate", "coherence")),
                     f"{p.dcr_share:.4f} [{p.dcr_share_ci[0]:.3f}, {p.dcr_share_ci[1]:.3f}]",
                     f"{q.dcr_share:.4f} [{q.dcr_share_ci[0]:.3f}, {q.dcr_share_ci[1]:.3f}]", f"{train_s:.0f}"])
        raw.append({"epsilon": eps, "delta": DELTA if eps else None, "spent_epsilon": handle.dp_epsilon,
                    "spent_delta": handle.dp_delta, "epochs": handle.epochs, "train_s": train_s,
                    "dp": handle.dp, "accuracy": a, "dcr_share": p.dcr_share,
                    "dcr_share_ci": list(p.dcr_share_ci), "dcr_share_unused_training": q.dcr_share,
                    "dcr_share_unused_training_ci": list(q.dcr_share_ci)})
    H.remove_tree(scratch)
    section = bench.section(SECTION, "Differential privacy for sequences: DP-SGD at the level of a whole group",
                            __doc__.split("\n\n")[1], custom=args.groups != 4_000)
    section.add_table(
        f"Prize sequences, {training[KEY].nunique():,} training groups ({len(training):,} rows), "
        f"max_epochs {epochs}; "
        "the release is a random sample of the generator's output as large as training (no selection); accuracy "
        "and dcr_share [95 % interval] against a holdout of as many groups, and against as many unused groups of "
        "the training file",
        ["generator", "ε / δ spent (engine)", "epochs", "overall", "univariate", "bivariate", "coherence",
         "dcr_share (holdout file)", "dcr_share (training file)", "training s"], rows)
    section.notes.append("Selection under DP for sequences (noisy group-level tables, as the flat DP mode releases) "
                         "is not built: the DP release is the generator's own output.")
    return bench.finish(section, {"rows": raw})


if __name__ == "__main__":
    raise SystemExit(main())
