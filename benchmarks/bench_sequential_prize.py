"""Benchmark the sequential prize task: train → pool → ``synth select --group-key`` → evaluate.

(work in progress: preparation phase only)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402

import harness as H  # noqa: E402
import results as R  # noqa: E402

SECTION = "sequential_prize"
GROUP_KEY = "group_id"
MODEL_SIZE = "medium"
TRAIN_MINUTES = 50.0
POOL_SEED = 0
TEMPERATURE = 1.0
SHARD_GROUPS = 20_000
POOL_GROUPS = 300_000


def settings_for(size: str, minutes: float):
    from synth_core.generator import TrainingSettings

    return TrainingSettings(model_size=size, max_training_time_min=minutes, max_epochs=1000, seed=0)


def folder() -> Path:
    path = H.scratch_dir() / "prize-seq"
    path.mkdir(parents=True, exist_ok=True)
    return path


def get_generator(size: str, minutes: float, training: pd.DataFrame, retrain: bool = False):
    """(handle, info): the cached generator when its settings match, else a freshly trained one."""
    from synth_core.generator import GeneratorHandle, train_sequential

    settings = settings_for(size, minutes)
    workdir = folder() / f"generator-{size}-{minutes:g}min"
    if not retrain and (workdir / "generator.json").is_file():
        try:
            handle = GeneratorHandle.load(workdir)
            if asdict(handle.settings) == asdict(settings) and handle.n_training_rows == len(training):
                H.log(f"generator: reusing {workdir} (trained earlier in {handle.training_seconds:.0f} s)")
                return handle, {"reused": True, "workdir": str(workdir)}
            H.log("generator: settings changed, retraining")
        except Exception as exc:  # an unusable cache is retrained, not an error
            H.log(f"generator: cannot reuse {workdir} ({exc}); retraining")
    H.log(f"generator: training {size} (cap {minutes:g} min) in {workdir}")
    t = time.perf_counter()
    handle = train_sequential(training, GROUP_KEY, workdir, settings, name=f"bench-prize-seq-{size}")
    wall = time.perf_counter() - t
    H.log(f"generator: {handle.epochs} epochs, {handle.training_seconds:.0f} s")
    return handle, {"reused": False, "workdir": str(workdir), "wall_s": wall}


def get_pool(handle, n_groups: int):
    from synth_core.pool import generate_pool

    pool_dir = folder() / f"pool-{handle.generator_id}-{n_groups}-seed{POOL_SEED}-t{TEMPERATURE:g}"

    def progress(done, total, groups, rate, eta):
        H.log(f"pool: shard {done}/{total}, {groups:,} groups, {rate:,.0f} groups/s, eta {eta if eta is None else round(eta)} s")

    return generate_pool(handle, n_groups, pool_dir, shard_size=SHARD_GROUPS, seed=POOL_SEED,
                         temperature=TEMPERATURE, progress=progress)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepare-only", action="store_true")
    args = ap.parse_args(argv)
    sys.stdout = sys.stderr
    training = pd.read_csv(H.shared_file("data", "prize-sequential", "training.csv.gz"))
    H.log(f"load {R.load_average()}")
    handle, info = get_generator(MODEL_SIZE, TRAIN_MINUTES, training)
    H.log(json.dumps(info))
    pool = get_pool(handle, POOL_GROUPS)
    H.log(f"pool: {pool.n_total:,} groups, {pool.n_rows:,} rows, {pool.elapsed_s:.0f} s")
    handle.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
