"""Cached generators and pools for the benchmarks: train once, generate once, reuse after.

A generator is cached under ``$SYNTH_BENCH_SCRATCH/<name>/generator-<key>`` where the key hashes
the kind, the training settings and the training table's content; a pool under
``.../pool-<generator id>-<units>-seed<seed>-t<temperature>`` (shards, resumable). A changed
table or setting therefore trains anew instead of reusing something that no longer matches.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

import harness as H


def _digest(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    return hashlib.sha256(hashed + json.dumps([str(c) for c in frame.columns]).encode()).hexdigest()[:16]


def generator(name: str, training: pd.DataFrame, settings, *, group_key: str | None = None,
              context_columns: tuple[str, ...] = ()):
    """(handle, info) of the generator of ``training`` under ``settings``, trained when not cached.

    ``info``: ``reused`` (bool), ``workdir``, ``training_s`` (as recorded when trained).
    """
    from synth_core.generator import GeneratorHandle, train_flat, train_sequential

    identity = {"kind": "sequential" if group_key else "flat", "settings": asdict(settings), "data": _digest(training),
                "group_key": group_key, "context": list(context_columns)}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
    workdir = H.scratch_dir() / name / f"generator-{key}"
    if (workdir / "generator.json").is_file():
        handle = GeneratorHandle.load(workdir)
        H.log(f"{name}: reusing the generator in {workdir} (trained in {handle.training_seconds:.0f} s)")
        return handle, {"reused": True, "workdir": str(workdir), "training_s": handle.training_seconds}
    H.log(f"{name}: training a generator ({settings}) in {workdir}")
    t = time.perf_counter()
    if group_key is None:
        handle = train_flat(training, workdir, settings, name=f"bench-{name}")
    else:
        handle = train_sequential(training, group_key, workdir, settings, context_columns=list(context_columns),
                                  name=f"bench-{name}")
    H.log(f"{name}: trained in {time.perf_counter() - t:.0f} s ({handle.epochs} epochs)")
    return handle, {"reused": False, "workdir": str(workdir), "training_s": handle.training_seconds}


def pool(name: str, handle, n_units: int, *, shard_size: int, seed: int = 0, temperature: float = 1.0) -> pd.DataFrame:
    """The first ``n_units`` rows (groups) of the generator's cached pool, generated when missing."""
    from synth_core.pool import generate_pool, read_pool

    out = H.scratch_dir() / name / f"pool-{handle.generator_id}-{n_units}-seed{seed}-t{temperature:g}"

    def progress(done, total, units, rate, eta):
        H.log(f"{name}: pool shard {done}/{total}, {units:,} units, {rate:,.0f}/s")

    result = generate_pool(handle, n_units, out, shard_size=shard_size, seed=seed, temperature=temperature,
                           progress=progress)
    H.log(f"{name}: pool of {result.n_total:,} units ({result.shards_generated} shards generated, "
          f"{result.shards_skipped} reused)")
    return read_pool(Path(out))
