"""One-off studies: a comparison or a trade-off measured once, with no pass/fail target.

Each writes its own section of ``benchmarks/RESULTS.md`` like a regression benchmark and runs from
the repository root as ``.venv/bin/python -m benchmarks.studies.NAME``; ``make bench`` leaves them
out (``make bench-studies``, or ``python -m benchmarks.run_all --studies``, runs them).
"""
