"""What the flat and the grouped swap refinement share (:mod:`synth_core.select.flat._refine`,
:mod:`synth_core.select.sequential._group_refine`): the checks of their options, the log of accepted swaps and the
loop that calls a search kernel until a round is done.

Both refinements run rounds; in a round a numba kernel accepts swaps in chunks (one swap per call
when a callback or verification needs to see each one) and writes them to two buffers, which
:class:`SwapLog` books: the incrementally maintained objective, its trace and the swap list. The
rounds themselves (which keys the heaps start from, when refinement stops) differ and stay in
each module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from synth_core.errors import InputError
from synth_core.select._heap import SWAP_ADDED, SWAP_REMOVED


@dataclass(frozen=True)
class SwapStep:
    """What every accepted-swap event (:class:`synth_core.select.flat._refine.SwapEvent`,
    :class:`synth_core.select.sequential._group_refine.GroupSwapEvent`) starts with; each adds its objective and
    live views of the counts and the subset."""

    step: int  # 1-based number of the accepted swap
    removed: int
    added: int
    gain: float  # exact decrease of the objective (flat: of the count error)


def check_options(eps: float, at_least_0: dict[str, int], at_least_1: dict[str, int | None]) -> None:
    """Refuse budgets below 0, counts below 1 (``None``: not set, not checked) and a
    non-positive ``eps`` (swaps must strictly improve), naming the first offender.

    Raises
    ------
    InputError
    """
    for minimum, values in ((0, at_least_0), (1, at_least_1)):
        for name, value in values.items():
            if value is not None and value < minimum:
                raise InputError(f"{name} must be >= {minimum}, got {value}")
    if not eps > 0:
        raise InputError(f"eps must be > 0 (swaps must strictly improve), got {eps}")


@dataclass
class SwapLog:
    """The accepted swaps of one refinement, booked from a search kernel's output buffers.

    Attributes
    ----------
    err : float
        The objective, maintained incrementally: each accepted swap lowers it by its exact gain.
    scale : float
        The trace holds ``err / scale`` (the flat refinement's count error per target row; 1 for
        the grouped one, where the division is exact).
    buf_swaps : ndarray of shape (capacity, 2), int64
        The kernel writes (removed, added) here (columns ``SWAP_REMOVED``, ``SWAP_ADDED``), ...
    buf_gain : ndarray of shape (capacity,), float64
        ... and each swap's exact gain here.
    trace : list of float
        The scaled objective at the start and after each accepted swap.
    chunks : list of ndarray
        Copies of the buffers' filled parts, in order.
    n_swaps : int
        Swaps booked so far.
    """

    err: float
    scale: float
    buf_swaps: np.ndarray
    buf_gain: np.ndarray
    trace: list[float] = field(default_factory=list)
    chunks: list[np.ndarray] = field(default_factory=list)
    n_swaps: int = 0

    @classmethod
    def start(cls, err: float, scale: float, max_swaps: int, swaps_per_round: int) -> SwapLog:
        """An empty log of objective ``err``, with buffers for a round's worth of swaps (at
        most ``max_swaps``, at least one)."""
        capacity = max(1, min(max_swaps, swaps_per_round))
        return cls(err, scale, np.empty((capacity, 2), dtype=np.int64), np.empty(capacity, dtype=np.float64),
                   [err / scale])

    @property
    def capacity(self) -> int:
        """Swaps one kernel call may write."""
        return self.buf_gain.shape[0]

    @property
    def objective(self) -> float:
        """The current scaled objective."""
        return self.err / self.scale

    def take(self, accepted: int) -> None:
        """Book the first ``accepted`` swaps of the buffers."""
        for s in range(accepted):
            self.err -= float(self.buf_gain[s])
            self.trace.append(self.err / self.scale)
        if accepted:
            self.chunks.append(self.buf_swaps[:accepted].copy())
        self.n_swaps += accepted

    def first(self) -> tuple[int, int, float]:
        """(removed, added, gain) of the buffers' first swap: the one swap of a step-mode call."""
        return int(self.buf_swaps[0, SWAP_REMOVED]), int(self.buf_swaps[0, SWAP_ADDED]), float(self.buf_gain[0])

    def swaps(self) -> np.ndarray:
        """Every booked swap in order, shape (n_swaps, 2)."""
        return np.concatenate(self.chunks) if self.chunks else np.zeros((0, 2), dtype=np.int64)


def run_round(
    log: SwapLog,
    search: Callable[[int], int],
    after: Callable[[int], None],
    *,
    swaps_per_round: int,
    max_swaps: int,
    step_mode: bool,
    chunk: int | None = None,
) -> int:
    """Call ``search(limit)`` (a kernel call that accepts at most ``limit`` swaps into the log's
    buffers and returns how many it did) until the round holds ``swaps_per_round`` swaps, the
    log ``max_swaps``, or a call accepts none. Each call's swaps are booked, then ``after(n)``
    runs (progress, callbacks).

    ``step_mode`` limits every call to one swap, so that ``after`` sees each; ``chunk`` caps the
    swaps of a call (progress lines between calls); neither changes which swaps are made.
    Returns the swaps of the round.
    """
    accepted = 0
    while accepted < swaps_per_round and log.n_swaps < max_swaps:
        room = min(max_swaps - log.n_swaps, swaps_per_round - accepted, log.capacity)
        if chunk is not None:
            room = min(room, chunk)
        n = search(1 if step_mode else room)
        log.take(n)
        accepted += n
        after(n)
        if n == 0:  # heaps exhausted or too many consecutive failures
            break
    return accepted


__all__ = ["SwapLog", "SwapStep", "check_options", "run_round"]
