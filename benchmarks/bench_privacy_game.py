"""A privacy game for the whole pipeline: does selection give an attacker an advantage over a
random sample of the same pool?

A census subsample of 4,000 rows is the population. Game g cuts it at random (seed g) into
members (2,000 rows) and non-members (2,000 rows), trains a small MOSTLY AI generator on the
members alone, generates a pool 10× their size, and publishes two tables of 2,000 rows: the
pipeline's selection (``run_selection``, default settings, privacy guard on) and a random sample
of the same pool. The attacker then scores every member and non-member with the audit's attacks
(:mod:`synth_core.metrics._membership`, run by ``privacy_metrics`` with the members as training
and the non-members as holdout: two folds, each attack free to flip its score, the direction
chosen on the other fold), and we read the true-positive rate at a 1 % false-positive rate and
the AUC of either direction. Selection must add no advantage beyond the game's noise: the mean
over games of (selected − random) within 1.96 standard errors of that paired difference.

Usage: ``.venv/bin/python -m benchmarks.bench_privacy_game [--games N] [--quick] [--no-write]``
from the repository root (``--quick``: 2 games, nothing written).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import harness as H
from benchmarks import results as R

SECTION = "privacy_game"
POPULATION = 4_000
POOL_FACTOR = 10
TRAINING = {"model_size": "small", "max_epochs": 30, "seed": 0}  # early stopping ends most games sooner
PLOT = Path(__file__).resolve().parent / "privacy_game.png"
Z95 = 1.959964


def population() -> pd.DataFrame:
    """A seeded subsample of the shared census training table (the holdout file stays unused)."""
    from synth_core.io import read_table

    table = read_table(H.shared_dir() / "data" / "census" / "training.csv.gz")
    rows = np.sort(np.random.default_rng(12345).choice(len(table), POPULATION, replace=False))
    return table.iloc[rows].reset_index(drop=True)


def play(table: pd.DataFrame, game: int, scratch: Path) -> dict:
    """One game: train on a random half, select and sample from the pool, attack both."""
    from synth_core.conform import conform_table
    from synth_core.generate import TrainingSettings, generate_pool, read_pool, train_flat
    from synth_core.metrics._privacy import privacy_metrics
    from synth_core.select.flat import SelectionSettings, output_table, run_selection

    order = np.random.default_rng(game).permutation(len(table))
    members = table.iloc[np.sort(order[: len(table) // 2])].reset_index(drop=True)
    non_members = table.iloc[np.sort(order[len(table) // 2:])].reset_index(drop=True)
    started = time.perf_counter()
    handle = train_flat(members, scratch / f"game-{game}", TrainingSettings(**TRAINING), name=f"game{game}")
    result = generate_pool(handle, POOL_FACTOR * len(members), scratch / f"pool-{game}", shard_size=20_000, seed=game)
    pool = conform_table(read_pool(result.out_dir)[list(members.columns)], members, name="pool")
    handle.close()
    _, records = run_selection(members, pool, len(members), SelectionSettings(seed=game))
    tables = {"selected": output_table(members, pool, records[-1].rows),
              "random": output_table(members, pool, records[0].rows)}
    out = {"game": game, "seconds": time.perf_counter() - started, "epochs": handle.epochs}
    for name, synthetic in tables.items():
        p = privacy_metrics(members, non_members, synthetic, seed=game)
        best = p.membership_attack_two_sided
        out[name] = {
            "auc": p.membership_auc_two_sided,
            "direction": p.membership_direction,
            "attack": best,
            # the stronger attack at each rate (both directions allowed)
            "tpr_1": max(r["0.01"] for r in p.membership_tpr_at_fpr.values()),
            "tpr_01": max(r["0.001"] for r in p.membership_tpr_at_fpr.values()),
            "dcr_share": p.dcr_share,
        }
    H.log(f"game {game}: selected AUC {out['selected']['auc']:.4f} TPR@1% {out['selected']['tpr_1']:.4f}; random "
          f"AUC {out['random']['auc']:.4f} TPR@1% {out['random']['tpr_1']:.4f} ({out['seconds']:.0f} s)")
    return out


def paired(games: list[dict], key: str) -> tuple[float, float, float, float]:
    """Means of the selected and random figure, their mean difference and 1.96 standard errors of it."""
    sel = np.array([g["selected"][key] for g in games])
    rnd = np.array([g["random"][key] for g in games])
    diff = sel - rnd
    noise = Z95 * diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("inf")
    return float(sel.mean()), float(rnd.mean()), float(diff.mean()), float(noise)


def plot(games: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.3))
    for ax, key, label in ((axes[0], "tpr_1", "TPR at FPR 1 %"), (axes[1], "auc", "AUC, either direction")):
        rnd = [g["random"][key] for g in games]
        sel = [g["selected"][key] for g in games]
        lo, hi = min(rnd + sel), max(rnd + sel)
        pad = (hi - lo) * 0.1 + 1e-3
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#bbbbbb", linestyle="--", linewidth=1)
        ax.scatter(rnd, sel, s=18)
        ax.set_xlabel(f"random pool sample: {label}")
        ax.set_ylabel(f"selected: {label}")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
    fig.suptitle("Privacy game: one point per generator (members known to the challenger)", fontsize=9)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_privacy_game",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=None, help="games, one generator each (default 8)")
    parser.add_argument("--quick", action="store_true", help="2 games; writes nothing")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    args.games = args.games or (2 if args.quick else 8)
    args.no_write = args.no_write or args.quick
    facts, started = R.machine_facts(), time.perf_counter()
    table = population()
    with tempfile.TemporaryDirectory(dir=H.scratch_dir()) as scratch:
        games = [play(table, g, Path(scratch)) for g in range(args.games)]
    section = R.Section(
        SECTION, "Privacy game: does selection help a membership attacker?",
        f"Census subsample of {POPULATION:,} rows (shared training file, seed 12345); game g (seed g) trains a "
        f"generator ({TRAINING}) on a random half (the members), generates {POOL_FACTOR}× their size, and "
        "publishes the selection (default settings, privacy guard on) and a random pool sample of the same size. "
        "The attacker scores every member and non-member (the audit's two attacks, either direction, the "
        "direction chosen on one fold and measured on the other); TPR at FPR: the stronger attack.",
        H.reproduce_command("benchmarks.bench_privacy_game"), facts)
    rows = [[g["game"], f"{g['epochs']:.0f}" if g["epochs"] else R.NA,
             f"{g['selected']['tpr_1']:.4f}", f"{g['random']['tpr_1']:.4f}",
             f"{g['selected']['tpr_01']:.4f}", f"{g['random']['tpr_01']:.4f}",
             f"{g['selected']['auc']:.4f} ({g['selected']['direction']})",
             f"{g['random']['auc']:.4f} ({g['random']['direction']})",
             f"{g['selected']['dcr_share']:.4f}", f"{g['random']['dcr_share']:.4f}", f"{g['seconds']:.0f}"]
            for g in games]
    section.add_table("Games (TPR: true-positive rate of the stronger attack; a blind attacker's equals the FPR)",
                      ["game", "epochs", "TPR@1% selected", "TPR@1% random", "TPR@0.1% selected", "TPR@0.1% random",
                       "AUC selected", "AUC random", "dcr_share selected", "dcr_share random", "s"], rows)
    for key, label in (("tpr_1", "TPR at FPR 1 %"), ("auc", "AUC, either direction"),
                       ("dcr_share", "dcr_share")):
        sel, rnd, diff, noise = paired(games, key)
        section.target(f"{label}: selected − random, mean over {len(games)} games, within the game's noise",
                       f"|Δ| ≤ {noise:.4f} (1.96 paired standard errors)",
                       f"{diff:+.4f} ({sel:.4f} vs {rnd:.4f})", abs(diff) <= noise)
    if not args.quick:  # a development run leaves the recorded plot alone
        plot(games)
        section.notes.append(f"Plot: `benchmarks/{PLOT.name}` (each game's selected output against its random pool "
                             "sample; on the diagonal selection adds nothing).")
    section.elapsed_s = time.perf_counter() - started
    print(section.summary())
    if not args.no_write:
        R.write(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
