"""MST and AIM (smartnoise-synth, on private-pgm) as DP baselines, run from the main venv.

smartnoise-synth pins ``mbi`` < 2 and an old opacus, so it lives in its own venv
(``.synth/baselines-venv``, built by ``benchmarks/dp_baselines/setup.sh`` from its
requirements.txt) and runs as a subprocess: :func:`run_baseline` writes the codes and the public
domain to a temporary folder, calls ``benchmarks/dp_baselines/worker.py`` with that venv's python
and reads the synthetic codes back. Both sides see the same :class:`~benchmarks._public_domain.
PublicDomain`, so every code 0..size-1 is possible and no budget goes to preprocessing (the
worker's docstring says how that is enforced).

Results are cached under ``$SYNTH_BENCH_SCRATCH/dp_baselines/`` (default
``/tmp/synth-bench/dp_baselines/``), keyed by a hash of the method, ε, δ, seed, rows, knobs, the
domain, the data's digest, requirements.txt and the worker's ``WORKER_VERSION``: a benchmark re-run
does not retrain (and gets the same rows, although OpenDP's noise itself cannot be seeded), and a
change to what the worker outputs (bump ``WORKER_VERSION``) never reuses older entries. Version 1
drew its rows with mbi 1.1.0's ``synthetic_data``, which ties columns to the row order and makes
independent columns strongly dependent (worker.py's docstring); its entries are invalid. Usage::

    from benchmarks._public_domain import census_domain
    from benchmarks._dp_baselines import run_baseline

    domain = census_domain(training)
    codes, info = run_baseline("aim", domain.encode(training), domain, 1.0, 1e-6, seed=0,
                               n_rows=len(training), max_model_size=20, timeout_s=900)
    synthetic = domain.decode(codes, seed=0)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._public_domain import PublicDomain

HERE = Path(__file__).resolve().parent / "dp_baselines"
REPO = HERE.parent.parent
SETUP = HERE / "setup.sh"
WORKER = HERE / "worker.py"
REQUIREMENTS = HERE / "requirements.txt"
METHODS = ("mst", "aim")
# knob -> worker flag; md_iters applies to both methods, the rest to AIM only
KNOBS = {"max_model_size": "--max-model-size", "rounds": "--rounds", "max_cells": "--max-cells",
         "degree": "--degree", "md_iters": "--md-iters"}
AIM_ONLY = {"max_model_size", "rounds", "max_cells", "degree"}


def worker_version() -> int:
    """``WORKER_VERSION`` of worker.py (read from its text: the worker runs in the other venv)."""
    found = re.search(r"^WORKER_VERSION = (\d+)", WORKER.read_text(), re.MULTILINE)
    if found is None:
        raise BaselineError(f"DP baselines: no WORKER_VERSION in {WORKER}")
    return int(found.group(1))


class BaselineError(RuntimeError):
    """The baselines' venv could not be built or the worker failed; the message is one line."""


def venv_dir() -> Path:
    return Path(os.environ.get("SYNTH_BASELINES_VENV", REPO / ".synth" / "baselines-venv"))


def scratch_dir() -> Path:
    return Path(os.environ.get("SYNTH_BENCH_SCRATCH", "/tmp/synth-bench")) / "dp_baselines"


def ensure_venv() -> Path:
    """The baselines' python, building the venv with setup.sh first when it is missing or stale."""
    python = venv_dir() / "bin" / "python"
    stamp = venv_dir() / ".requirements.sha256"
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return python
    env = {**os.environ, "SYNTH_BASELINES_VENV": str(venv_dir())}
    proc = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not python.exists():
        raise BaselineError(f"DP baselines: could not build the venv at {venv_dir()} "
                            f"(setup.sh exit {proc.returncode}): {_last_line(proc.stderr)}")
    return python


def run_baseline(method: str, codes: np.ndarray, domain: PublicDomain, epsilon: float, delta: float,
                 seed: int, n_rows: int, *, timeout_s: float = 3600.0, cache: bool = True,
                 **knobs) -> tuple[np.ndarray, dict]:
    """Train ``method`` (mst | aim) on ``codes`` with (ε, δ) and sample ``n_rows`` rows of codes.

    Parameters
    ----------
    method : {"mst", "aim"}
    codes : ndarray
        (n, d) integer codes of ``domain`` (``domain.encode(frame)``).
    domain : PublicDomain
    epsilon, delta : float
        The whole budget; the baselines spend none of it on preprocessing.
    seed : int
        Seeds numpy's generator in the worker (selection and sampling, not OpenDP's noise).
    n_rows : int
    timeout_s : float, default 3600
        Wall-clock limit of the worker; past it the worker is killed and BaselineError raised.
    cache : bool, default True
        Reuse (and store) the result under :func:`scratch_dir`.
    **knobs
        ``max_model_size`` (MiB), ``rounds``, ``max_cells``, ``degree`` (AIM), ``md_iters``
        (mirror-descent iterations, both). Unset knobs keep snsynth's defaults.

    Returns
    -------
    codes_out : ndarray
        (n_rows, d) int64 codes.
    info : dict
        The worker's ``seconds``, ``fit_seconds`` and ``settings``, plus ``cached``, ``key`` and
        ``cache_dir``.
    """
    if method not in METHODS:
        raise ValueError(f"run_baseline: method must be one of {METHODS}, not {method!r}")
    unknown = set(knobs) - set(KNOBS)
    if unknown:
        raise ValueError(f"run_baseline: unknown knobs {sorted(unknown)} (known: {sorted(KNOBS)})")
    knobs = {k: v for k, v in knobs.items() if v is not None}
    if method == "mst" and AIM_ONLY & set(knobs):
        raise ValueError(f"run_baseline: {sorted(AIM_ONLY & set(knobs))} apply to AIM only")
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    d = len(domain.columns)
    if codes.ndim != 2 or codes.shape[1] != d:
        raise ValueError(f"run_baseline: codes must be (n, {d}), got shape {codes.shape}")
    sizes = np.asarray(domain.sizes)
    if len(codes) and ((codes < 0).any() or (codes >= sizes).any()):
        raise ValueError("run_baseline: codes outside the domain's 0..size-1")

    key = _cache_key(method, codes, domain, epsilon, delta, seed, n_rows, knobs)
    target = scratch_dir() / key
    if cache and (target / "info.json").exists() and (target / "synthetic.npy").exists():
        info = json.loads((target / "info.json").read_text())
        if info.get("settings", {}).get("worker_version") != worker_version():
            raise BaselineError(f"DP baselines: cache entry {target} was written by another worker version")
        return np.load(target / "synthetic.npy"), {**info, "cached": True, "key": key, "cache_dir": str(target)}

    python = ensure_venv()
    scratch_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{method}-", dir=scratch_dir()) as tmp:
        tmp = Path(tmp)
        pd.DataFrame(codes, columns=list(domain.columns)).to_csv(tmp / "codes.csv", index=False)
        (tmp / "domain.json").write_text(json.dumps(domain.to_json()))
        cmd = [str(python), str(WORKER), "--codes", str(tmp / "codes.csv"), "--domain", str(tmp / "domain.json"),
               "--out", str(tmp / "out"), "--method", method, "--epsilon", repr(float(epsilon)),
               "--delta", repr(float(delta)), "--seed", str(int(seed)), "--rows", str(int(n_rows))]
        for name, value in sorted(knobs.items()):
            cmd += [KNOBS[name], str(value)]
        # the worker must see its own venv only: no PYTHONPATH into the project
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env.setdefault("JAX_PLATFORMS", "cpu")
        started = time.perf_counter()
        with open(tmp / "stdout.log", "w") as out, open(tmp / "stderr.log", "w") as err:
            try:
                proc = subprocess.run(cmd, stdout=out, stderr=err, cwd=tmp, env=env, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise BaselineError(f"DP baselines: {method} worker (ε={epsilon}) passed its {timeout_s:g} s "
                                    f"limit after {time.perf_counter() - started:.0f} s and was killed") from None
        if proc.returncode != 0:
            raise BaselineError(f"DP baselines: {method} worker failed (exit {proc.returncode}): "
                                f"{_last_line((tmp / 'stderr.log').read_text())}")
        result = pd.read_csv(tmp / "out" / "synthetic.csv")
        info = json.loads((tmp / "out" / "info.json").read_text())
        if list(result.columns) != list(domain.columns) or len(result) != n_rows:
            raise BaselineError(f"DP baselines: {method} worker returned {result.shape}, "
                                f"expected ({n_rows}, {d}) with the domain's columns")
        out_codes = result.to_numpy(dtype=np.int64)
        if len(out_codes) and ((out_codes < 0).any() or (out_codes >= sizes).any()):
            raise BaselineError(f"DP baselines: {method} worker returned codes outside the domain")
        if cache:
            staged = tmp / "cache"
            staged.mkdir()
            np.save(staged / "synthetic.npy", out_codes)
            (staged / "info.json").write_text(json.dumps(info, indent=2) + "\n")
            shutil.copy(tmp / "stdout.log", staged / "worker.log")
            shutil.rmtree(target, ignore_errors=True)
            staged.rename(target)
    return out_codes, {**info, "cached": False, "key": key, "cache_dir": str(target) if cache else None}


def _cache_key(method, codes, domain, epsilon, delta, seed, n_rows, knobs) -> str:
    data = hashlib.sha256(np.asarray(codes.shape, dtype=np.int64).tobytes() + codes.tobytes()).hexdigest()
    payload = {"method": method, "epsilon": float(epsilon), "delta": float(delta), "seed": int(seed),
               "n_rows": int(n_rows), "knobs": {k: knobs[k] for k in sorted(knobs)},
               "domain": [domain.to_json(), domain.digest()], "data": data,
               "requirements": hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest(),
               "worker_version": worker_version()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output on stderr)"
