"""Run smartnoise-synth's MST or AIM on a table of integer codes; the DP baselines' worker.

Runs under the baselines' own interpreter (``.synth/baselines-venv/bin/python``, see setup.sh) and
imports nothing but that venv's packages: no synth_core, no benchmarks.

Input: a headered CSV of integer codes (column j holds 0 .. sizes[j]-1) and a JSON
``{"columns": [...], "sizes": [...]}`` giving the public domain. Output: ``synthetic.csv`` (same
header, integer codes) and ``info.json`` (seconds taken and the settings actually used) in
``--out``.

Public domain, no budget on preprocessing
-----------------------------------------
``Synthesizer.fit`` (snsynth/base.py, ``_get_train_data``) only fits its TableTransformer, and so
only looks at the data to discover categories or spends ``preprocessor_eps`` on bounds, when
``transformer.fit_complete`` is False. We hand it a TableTransformer whose column transformers are
``LabelTransformer(nullable=False)`` already fitted on ``range(size)`` (the public code list, never
the rows): ``fit_complete`` is True, so the transformer is not refitted, category discovery never
reads the data, and the odometer stays at 0 (``preprocessor_eps`` is 0 as well; we check both
after fitting). LabelTransformer sorts its integer labels, so code i maps to label i and back:
the cardinalities MST/AIM see are exactly the public sizes, codes absent from the data included.

Randomness
----------
``--seed`` seeds numpy's global generator, which drives snsynth's exponential mechanism (AIM's and
MST's selection), MST's decompression and mbi's sampling of records. The Gaussian noise itself
comes from OpenDP's ``make_gaussian`` (snsynth/utils.py ``gaussian_noise``), which draws from a
cryptographically secure source and cannot be seeded: two runs with the same seed differ. The
caller caches outputs so that a benchmark re-run reuses them.

Sampling: mbi 1.1.0's ``synthetic_data`` is replaced
----------------------------------------------------
Both wrappers draw their rows with ``MarkovRandomField.synthetic_data(rows)`` (default
``method="round"``). In mbi 1.1.0 that method samples one column at a time given the columns
already drawn, and within each group of rows sharing those parents' values it hands out stratified
uniforms ``(rank + U) / count`` with ``rank`` = the row's position *in row order*. So inside a
group every column drawn this way is a nondecreasing function of the row index: two columns
drawn under the same parents (siblings in MST's tree, e.g. census fnlwgt and hours_per_week) come
out almost comonotone, and the dependence leaks down the tree, although the fitted model says
they are independent (checked: the model's own pair marginal has correlation 0, the rows 0.9+).
Every one-way marginal stays right, which is why only pair/triple accuracy suffered.

:func:`_synthetic_data` (installed by :func:`_install_sampler` as that method) draws the rows
instead: columns in reverse elimination order of the model's junction tree, each given its
already-drawn neighbours in the *triangulated* graph (a clique of it, so the joint marginal is
read off one junction-tree marginal and the conditioning is exact also for AIM's non-tree
models), with stratified rounding inside each parent group whose ranks are a fresh random
permutation, so that counts track the model's conditionals closely without tying columns to
the row order. The worker records ``sampler`` in info.json; :data:`WORKER_VERSION` goes into
the caller's cache key, so outputs of the old sampling are never reused.

What else the wrappers assume (snsynth 1.0.8): MST passes the exact row count to mbi as
``known_total`` (treated as public); AIM estimates it from its noisy one-way marginals. AIM's
knobs are constructor arguments (max_model_size, rounds, max_cells, degree); the mirror-descent
iteration counts (MST 1000/5000, AIM 1000 per round) are hard-coded there, and ``--md-iters``
overrides them by wrapping the ``estimation`` module the wrappers call.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd


def _public_transformer(sizes):
    from snsynth.transform.label import LabelTransformer
    from snsynth.transform.table import TableTransformer

    columns = []
    for size in sizes:
        t = LabelTransformer(nullable=False)
        t.fit(list(range(int(size))))  # the public code list, not the data
        assert t.cardinality == [int(size)] and t.categories == list(range(int(size)))
        columns.append(t)
    table = TableTransformer(columns)
    assert table.fit_complete and not table.needs_epsilon
    return table


WORKER_VERSION = 2  # 1: mbi 1.1.0's synthetic_data (rows tied to row order); 2: _synthetic_data
SAMPLER = "worker stratified sampler, random ranks within parent groups (mbi synthetic_data bypassed)"


def _synthetic_data(self, rows=None, method="round"):
    """Rows drawn from the MarkovRandomField ``self``; see the module docstring.

    ``method``: "round" (stratified within each parent group, the default) or "sample" (i.i.d.).
    Randomness comes from numpy's global generator, which the worker seeds.
    """
    from mbi import Dataset, junction_tree, marginal_oracles

    if method not in ("round", "sample"):
        raise ValueError(f"unknown sampling method {method!r}")
    total = max(1, int(rows or self.total))
    domain = self.domain
    jtree, order = junction_tree.make_junction_tree(domain, [tuple(cl) for cl in self.cliques])
    nodes = [tuple(node) for node in jtree.nodes]
    marginals = marginal_oracles.message_passing_stable(self.potentials.expand(nodes))

    data = {}
    for col in reversed(order):
        # already-drawn neighbours of col in the triangulated graph: they share a junction-tree node
        parents = tuple(a for a in domain.attrs if a in data and any(col in n and a in n for n in nodes))
        attrs = parents + (col,)
        joint = np.asarray(marginals.project(attrs).transpose(attrs).datavector(flatten=False), dtype=np.float64)
        k = domain[col]
        joint = np.clip(joint.reshape(-1, k), 0.0, None)
        mass = joint.sum(axis=1, keepdims=True)
        cond = np.where(mass > 0, joint / np.where(mass > 0, mass, 1.0), 1.0 / k)
        cdf = np.minimum(np.cumsum(cond, axis=1), 1.0)
        cdf[:, -1] = 1.0
        if parents:
            group = np.ravel_multi_index(tuple(data[a] for a in parents), tuple(domain[a] for a in parents))
        else:
            group = np.zeros(total, dtype=np.int64)
        if method == "sample":
            u = np.random.random_sample(total)
        else:
            counts = np.bincount(group, minlength=len(cdf))
            starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
            # rows sorted by group, in random order inside each group: rank = position - group start
            by_group = np.lexsort((np.random.random_sample(total), group))
            rank = np.empty(total, dtype=np.int64)
            rank[by_group] = np.arange(total) - starts[group[by_group]]
            u = (rank + np.random.random_sample(total)) / counts[group]
        # searchsorted on each row's own cdf, done at once: row g's cdf is shifted by g
        flat = (cdf + np.arange(len(cdf))[:, None]).ravel()
        pos = np.searchsorted(flat, group + u, side="right") - group * k
        data[col] = np.clip(pos, 0, k - 1).astype(np.int64)
    return Dataset({a: data[a] for a in domain.attrs}, domain)


def _install_sampler():
    from mbi.markov_random_field import MarkovRandomField

    MarkovRandomField.synthetic_data = _synthetic_data


def _override_iters(module, iters):
    """Make ``module.estimation.mirror_descent`` run ``iters`` iterations whatever it is asked."""
    original = module.estimation

    def mirror_descent(*args, **kwargs):
        kwargs["iters"] = iters
        return original.mirror_descent(*args, **kwargs)

    module.estimation = types.SimpleNamespace(**{**vars(original), "mirror_descent": mirror_descent})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--codes", required=True, type=Path, help="CSV of integer codes, with a header")
    p.add_argument("--domain", required=True, type=Path, help='JSON {"columns": [...], "sizes": [...]}')
    p.add_argument("--out", required=True, type=Path, help="folder for synthetic.csv and info.json")
    p.add_argument("--method", required=True, choices=["mst", "aim"])
    p.add_argument("--epsilon", required=True, type=float)
    p.add_argument("--delta", required=True, type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rows", type=int, required=True, help="rows to sample")
    p.add_argument("--max-model-size", type=float, default=None, help="AIM, MiB (snsynth default 80)")
    p.add_argument("--rounds", type=int, default=None, help="AIM rounds (snsynth default 16 x columns)")
    p.add_argument("--max-cells", type=int, default=None, help="AIM workload marginal cap (default 10000)")
    p.add_argument("--degree", type=int, default=None, help="AIM workload degree (default 2)")
    p.add_argument("--md-iters", type=int, default=None, help="override mirror-descent iterations")
    args = p.parse_args(argv)

    import snsynth
    from snsynth.aim import aim as aim_module
    from snsynth.mst import mst as mst_module

    domain = json.loads(args.domain.read_text())
    columns, sizes = list(domain["columns"]), [int(s) for s in domain["sizes"]]
    frame = pd.read_csv(args.codes)
    if list(frame.columns) != columns:
        raise SystemExit(f"worker: CSV columns {list(frame.columns)} differ from the domain's {columns}")
    codes = frame.to_numpy()
    if not np.issubdtype(codes.dtype, np.integer):
        raise SystemExit("worker: the CSV must hold integer codes only")
    bad = [c for j, c in enumerate(columns) if len(codes) and (codes[:, j].min() < 0 or codes[:, j].max() >= sizes[j])]
    if bad:
        raise SystemExit(f"worker: codes outside 0..size-1 in {bad}")

    np.random.seed(args.seed)
    settings: dict = {"method": args.method, "epsilon": args.epsilon, "delta": args.delta, "seed": args.seed,
                      "rows": args.rows, "snsynth": _version("smartnoise-synth"), "mbi": _version("mbi"),
                      "worker_version": WORKER_VERSION, "sampler": SAMPLER}
    if args.method == "mst":
        if any(v is not None for v in (args.max_model_size, args.rounds, args.max_cells, args.degree)):
            raise SystemExit("worker: max_model_size/rounds/max_cells/degree are AIM knobs")
        synth = snsynth.Synthesizer.create("mst", epsilon=args.epsilon, delta=args.delta)
        if args.md_iters is not None:
            _override_iters(mst_module, args.md_iters)
        settings["md_iters"] = args.md_iters or "snsynth default (1000 select, 5000 final)"
    else:
        knobs = {k: v for k, v in (("max_model_size", args.max_model_size), ("rounds", args.rounds),
                                   ("max_cells", args.max_cells), ("degree", args.degree)) if v is not None}
        synth = snsynth.Synthesizer.create("aim", epsilon=args.epsilon, delta=args.delta, verbose=True, **knobs)
        if args.md_iters is not None:
            _override_iters(aim_module, args.md_iters)
        settings.update(max_model_size=synth.max_model_size, rounds=synth.rounds or 16 * len(columns),
                        max_cells=synth.max_cells, degree=synth.degree,
                        md_iters=args.md_iters or "snsynth default (1000 per round)")

    transformer = _public_transformer(sizes)
    started = time.perf_counter()
    synth.fit(pd.DataFrame(codes, columns=columns), transformer=transformer, preprocessor_eps=0.0)
    fit_s = time.perf_counter() - started
    spent, _ = transformer.odometer.spent
    if spent != 0.0 or synth.epsilon != args.epsilon:
        raise SystemExit(f"worker: preprocessing spent epsilon {spent} (left {synth.epsilon}); expected none")
    _install_sampler()
    out = synth.sample(args.rows)
    total_s = time.perf_counter() - started

    out = pd.DataFrame(np.asarray(out, dtype=np.int64), columns=columns)
    args.out.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.out / "synthetic.csv", index=False)
    settings["preprocessor_epsilon_spent"] = spent
    info = {"seconds": round(total_s, 2), "fit_seconds": round(fit_s, 2), "settings": settings}
    (args.out / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info), file=sys.stderr)


def _version(name):
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
