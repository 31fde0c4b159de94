"""Cached generators and pools for the benchmarks: train once, generate once, reuse after.

A generator is cached under ``$SYNTH_BENCH_SCRATCH/<name>/generator-<key>`` where the key hashes
the kind, the training settings and the training table's content; a pool under
``.../pool-<generator id>-<units>-seed<seed>-t<temperature>`` (shards, resumable), and a pool
merged into one Parquet file for the command line beside it (``<pool folder>[-<k>shards].parquet``).
A changed table or setting therefore trains anew instead of reusing something that no longer
matches, and a pool always belongs to the generator named in its folder.

Benchmarks that train the same generator share it by using the same ``name``: the census and
prize generators of ``bench_flat_census.py``/``bench_sequential_prize.py`` and
``bench_privacy_guard.py`` live in ``census/`` and ``prize/``; ``--quick`` runs use
``census-quick/`` and ``prize-quick/`` (:func:`scratch_name`), so that a development run never
becomes the pool a full run picks up.

Sharing is only a saving, never a precondition: every benchmark asks these helpers for what it
needs, and a miss trains or generates it, so each benchmark runs alone on an empty scratch folder.
:func:`census_pool` is the census pool several benchmarks read (small generator, 5-min cap,
500,000 rows in shards of 100,000; ``--quick``: 1-min cap, 50,000 rows).
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from benchmarks import harness as H

QUICK_MINUTES = 1.0  # training cap of every --quick generator


def _digest(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    return hashlib.sha256(hashed + json.dumps([str(c) for c in frame.columns]).encode()).hexdigest()[:16]


def scratch_name(name: str, quick: bool) -> str:
    """The scratch sub-folder of a dataset's generators and pools: ``--quick`` runs get their own."""
    return f"{name}-quick" if quick else name


def folder(name: str) -> Path:
    """``$SYNTH_BENCH_SCRATCH/<name>``, created."""
    path = H.scratch_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def training_settings(model_size: str, minutes: float | None = None, *, max_epochs: int = 1000):
    """The benchmarks' ``TrainingSettings``: seed 0, capped by wall time (minutes) and epochs;
    ``minutes`` None keeps the library's default cap."""
    from synth_core.generate import TrainingSettings

    if minutes is None:
        return TrainingSettings(model_size=model_size, max_epochs=max_epochs, seed=0)
    # the cache key hashes the settings as JSON, where 5 and 5.0 differ: whole minutes as int
    minutes = int(minutes) if float(minutes).is_integer() else minutes
    return TrainingSettings(model_size=model_size, max_training_time_min=minutes, max_epochs=max_epochs, seed=0)


def generator(name: str, training: pd.DataFrame, settings, *, group_key: str | None = None,
              context_columns: tuple[str, ...] = (), retrain: bool = False):
    """(handle, info) of the generator of ``training`` under ``settings``, trained when not cached.

    Parameters
    ----------
    name : str
        Scratch sub-folder (and the SDK's generator name, ``bench-<name>``).
    training : DataFrame
    settings : TrainingSettings
    group_key : str, optional
        Sequential data: train a subject table of the keys with the events linked to it.
    context_columns : tuple of str
    retrain : bool, default False
        Train even when a matching generator is cached (the cached one is replaced).

    Returns
    -------
    handle : GeneratorHandle
    info : dict
        ``reused`` (bool), ``workdir`` (as :func:`harness.rel` writes it), ``training_s`` (as
        recorded when trained) and, when trained now, ``wall_s``.
    """
    from synth_core.generate import GeneratorHandle, train_flat, train_sequential

    identity = {"kind": "sequential" if group_key else "flat", "settings": asdict(settings), "data": _digest(training),
                "group_key": group_key, "context": list(context_columns)}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
    workdir = folder(name) / f"generator-{key}"
    if (workdir / "generator.json").is_file() and not retrain:
        try:
            handle = GeneratorHandle.load(workdir)
            H.log(f"{name}: reusing the generator in {H.rel(workdir)} (trained in {handle.training_seconds:.0f} s)")
            return handle, {"reused": True, "workdir": H.rel(workdir), "training_s": handle.training_seconds}
        except Exception as exc:  # an unusable cache is retrained, not an error
            H.log(f"{name}: cannot reuse {H.rel(workdir)} ({exc}); retraining")
    H.remove_tree(workdir)  # what is left of an interrupted or replaced training
    H.log(f"{name}: training a generator ({settings}) in {H.rel(workdir)}")
    t = time.perf_counter()
    if group_key is None:
        handle = train_flat(training, workdir, settings, name=f"bench-{name}")
    else:
        handle = train_sequential(training, group_key, workdir, settings, context_columns=list(context_columns),
                                  name=f"bench-{name}")
    wall = time.perf_counter() - t
    H.log(f"{name}: trained in {wall:.0f} s ({handle.epochs} epochs)")
    return handle, {"reused": False, "workdir": H.rel(workdir), "training_s": handle.training_seconds, "wall_s": wall}


def training_end(handle, minutes: float | None) -> dict:
    """How training ended, from the wall time and the engine's per-epoch progress messages.

    The engine applies its time cap to its own wall clock, which includes SDK job start-up that
    ``engine_training_seconds`` (the last completed epoch's timestamp) does not; a run whose wall
    time reaches the cap is taken as stopped by the cap, anything shorter as early stopping.

    Returns
    -------
    dict
        ``ended_by`` ("time cap" or "early stopping"), ``median_epoch_s``, ``slowest_epoch_s``
        and ``last_val_loss`` (None where the log does not say).
    """
    totals, losses = [], []
    for path in sorted(Path(handle.model_dir).glob("ModelStore/*/model-data/progress-messages.csv")):
        with open(path) as fh:
            for row in csv.DictReader(fh):
                totals.append(float(row["total_time"]))
                if row.get("val_loss"):
                    losses.append(float(row["val_loss"]))
    steps = sorted(b - a for a, b in zip([0.0] + totals[:-1], totals))
    by_cap = minutes is not None and handle.training_seconds >= 0.97 * minutes * 60
    return {
        "ended_by": "time cap" if by_cap else "early stopping",
        "median_epoch_s": steps[len(steps) // 2] if steps else None,
        "slowest_epoch_s": steps[-1] if steps else None,
        "last_val_loss": losses[-1] if losses else None,
    }


def pool(name: str, handle, n_units: int, *, shard_size: int, seed: int = 0, temperature: float = 1.0):
    """The generator's pool of ``n_units`` rows (groups) in shards, generated where missing.

    Returns
    -------
    synth_core.generate._pool.PoolResult
        ``shards_generated`` / ``shards_skipped`` say what this call generated and what it found.
    """
    from synth_core.generate import generate_pool

    out = folder(name) / f"pool-{handle.generator_id}-{n_units}-seed{seed}-t{temperature:g}"

    def progress(done, total, units, rate, eta):
        H.log(f"{name}: pool shard {done}/{total}, {units:,} units, {rate:,.0f}/s, "
              f"eta {eta if eta is None else round(eta)} s")

    result = generate_pool(handle, n_units, out, shard_size=shard_size, seed=seed, temperature=temperature,
                           progress=progress)
    H.log(f"{name}: pool of {result.n_total:,} units, {result.n_rows:,} rows ({result.shards_generated} shards "
          f"generated, {result.shards_skipped} reused, {result.elapsed_s:.0f} s)")
    return result


def pool_table(name: str, handle, n_units: int, *, shard_size: int, seed: int = 0,
               temperature: float = 1.0) -> pd.DataFrame:
    """:func:`pool`, read into memory (all shards, in order)."""
    from synth_core.generate import read_pool

    return read_pool(pool(name, handle, n_units, shard_size=shard_size, seed=seed, temperature=temperature).out_dir)


CENSUS_MINUTES = 5.0  # the census generator of bench_flat_census.py (small) and bench_privacy_guard.py
CENSUS_POOL = (500_000, 100_000)  # its pool: rows, rows per shard
QUICK_CENSUS_POOL = (50_000, 50_000)


def census_pool(quick: bool = False, training: pd.DataFrame | None = None):
    """The shared census pool (:func:`pool` of the small census generator, trained when not cached):
    the one ``bench_flat_census.py`` (small model) and ``bench_privacy_guard.py`` build, in
    ``census/`` (``census-quick/`` for ``quick``).

    Returns
    -------
    synth_core.generate._pool.PoolResult
    """
    if training is None:
        from synth_core.io import read_table

        training = read_table(H.shared_file("data", "census", "training.csv.gz"))
    name = scratch_name("census", quick)
    handle, _ = generator(name, training, training_settings("small", QUICK_MINUTES if quick else CENSUS_MINUTES))
    rows, shard = QUICK_CENSUS_POOL if quick else CENSUS_POOL
    try:
        return pool(name, handle, rows, shard_size=shard)
    finally:
        handle.close()


def merged(result, n_shards: int | None = None) -> tuple[Path, float | None]:
    """One Parquet file of the pool's first ``n_shards`` shards (all by default), for
    ``synth select --pool``; rebuilt when a shard is newer.

    The file lies beside the shard folder, not in it: a shard folder reads as the pool, and a
    merged file inside it would be read as more pool.

    Returns
    -------
    path : Path
    seconds : float or None
        Time to merge, None when the existing file was current.
    """
    from synth_core.io import write_table

    shards = result.shard_paths if n_shards is None else result.shard_paths[:n_shards]
    suffix = "" if n_shards is None or n_shards >= len(result.shard_paths) else f"-{n_shards}shards"
    path = result.out_dir.with_name(result.out_dir.name + suffix + ".parquet")
    if path.is_file() and path.stat().st_mtime >= max(p.stat().st_mtime for p in shards):
        return path, None
    t = time.perf_counter()
    write_table(pd.concat([pd.read_parquet(p) for p in shards], ignore_index=True), path)
    seconds = time.perf_counter() - t
    H.log(f"pool: {len(shards)} shards merged into {H.rel(path)} in {seconds:.1f} s")
    return path, seconds


__all__ = ["CENSUS_MINUTES", "CENSUS_POOL", "QUICK_CENSUS_POOL", "QUICK_MINUTES", "census_pool", "folder", "generator",
           "merged", "pool", "pool_table", "scratch_name", "training_end", "training_settings"]
