"""Rate-limited progress lines for long loops (IPF sweeps, trimming batches, refinement rounds).

A :class:`Progress` is told how much work is done after each step; it writes one ``logging``
line at most every ``every_s`` seconds (default 5), with the rate and, when the total is
known, the share done and an ETA. Timing only decides *when* a line is written, never what
the loop does, so results stay deterministic.

>>> p = Progress(log, "trim", total=25_000, unit="rows")
>>> for ...: p.update(removed, objective=err)   # logs "trim: 12,000/25,000 rows (48%), 2,400 rows/s, ETA 5 s, objective=..."
>>> p.finish(removed)                             # one closing line at DEBUG level
"""

from __future__ import annotations

import logging
import time

DEFAULT_EVERY_S = 5.0


class Progress:
    """Progress of one loop; ``update`` is cheap (one clock read) when no line is due."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        total: float | None = None,
        unit: str = "steps",
        every_s: float = DEFAULT_EVERY_S,
        clock=time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what
        self.total = total
        self.unit = unit
        self.every_s = float(every_s)
        self.clock = clock
        self.started = clock()
        self.last = self.started
        self.lines = 0

    def elapsed(self) -> float:
        return self.clock() - self.started

    def message(self, done: float, extra: dict) -> str:
        elapsed = max(self.elapsed(), 1e-9)
        rate = done / elapsed
        if self.total:
            text = f"{self.what}: {done:,.0f}/{self.total:,.0f} {self.unit} ({100.0 * done / self.total:.0f}%)"
        else:
            text = f"{self.what}: {done:,.0f} {self.unit}"
        text += f", {rate:,.1f} {self.unit}/s, {elapsed:.0f} s"
        if self.total and rate > 0 and done < self.total:
            text += f", ETA {(self.total - done) / rate:.0f} s"
        for key, value in extra.items():
            text += f", {key}={value:.6g}" if isinstance(value, float) else f", {key}={value}"
        return text

    def update(self, done: float, **extra) -> bool:
        """Log a line if ``every_s`` has passed since the last one; returns whether it did."""
        now = self.clock()
        if now - self.last < self.every_s:
            return False
        self.last = now
        self.lines += 1
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info(self.message(done, extra))
        return True

    def finish(self, done: float, **extra) -> None:
        """A closing line (DEBUG) with the overall rate."""
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug(self.message(done, extra) + " (done)")


__all__ = ["DEFAULT_EVERY_S", "Progress"]
