"""Running one search on every thread count, for the tests that results do not depend on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def runs_by_threads(run: Callable[[bool], Any]) -> dict[tuple[int, bool], Any]:
    """``run(speculate)`` on one numba thread and on two (where numba has two), with and without
    speculation, keyed by ``(threads, speculate)``; the thread count is restored afterwards."""
    import numba

    before = numba.get_num_threads()
    runs = {}
    try:
        for n in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(n)
            for speculate in (False, True):
                runs[n, speculate] = run(speculate)
    finally:
        numba.set_num_threads(before)
    return runs
