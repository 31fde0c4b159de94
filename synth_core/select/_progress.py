"""Rate-limited progress lines for long loops (IPF sweeps, trimming batches, refinement rounds).

A :class:`Progress` is told how much work is done after each step; it writes one ``logging``
line at most every ``every_s`` seconds (default 5), with the rate and, when the total is
known, the share done and an ETA. Timing only decides *when* a line is written, never what
the loop does, so results stay deterministic.

A loop may stop at the first of several caps (refinement: a swap budget and a round budget).
``total`` is then the cap of the main count and ``limits`` names the other counters, passed
to :meth:`Progress.update` as keywords, with their caps; the ETA is the earliest time at which
any cap is reached at the rate so far, so it never exceeds what the caps allow.

>>> p = Progress(log, "trim", total=25_000, unit="rows")
>>> for ...: p.update(removed, objective=err)   # logs "trim: 12,000/25,000 rows (48%), 2,400 rows/s,
...                                             #   ETA 5 s, objective=..."
>>> p.finish(removed)                             # one closing line at DEBUG level
>>> p = Progress(log, "refine", total=5_120, unit="swaps", limits={"rounds_done": 20})
>>> p.update(swaps, rounds_done=3)                # "..., ETA 85 s, rounds_done=3/20": the smaller of both estimates
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
        limits: dict[str, float] | None = None,
        every_s: float | None = None,
        clock=None,
    ) -> None:
        self.logger = logger
        self.what = what
        self.total = total
        self.unit = unit
        self.limits = dict(limits or {})
        # defaults read now, not at import: a test can make every update log a line
        self.every_s = float(DEFAULT_EVERY_S if every_s is None else every_s)
        self.clock = clock or time.monotonic
        self.started = self.clock()
        self.last = self.started
        self.lines = 0

    def elapsed(self) -> float:
        return self.clock() - self.started

    def eta(self, done: float, extra: dict) -> float | None:
        """Seconds until the first cap is reached at the rates so far (None while unknown)."""
        elapsed = max(self.elapsed(), 1e-9)
        counts = [(done, self.total)] + [(extra.get(k), cap) for k, cap in self.limits.items()]
        etas = [(cap - value) * elapsed / value for value, cap in counts if cap and value and value > 0]
        return max(0.0, min(etas)) if etas else None

    def message(self, done: float, extra: dict) -> str:
        elapsed = max(self.elapsed(), 1e-9)
        rate = done / elapsed
        if self.total:
            text = f"{self.what}: {done:,.0f}/{self.total:,.0f} {self.unit} ({100.0 * done / self.total:.0f}%)"
        else:
            text = f"{self.what}: {done:,.0f} {self.unit}"
        text += f", {rate:,.1f} {self.unit}/s, {elapsed:.0f} s"
        eta = self.eta(done, extra)
        if eta is not None and eta > 0:
            text += f", ETA {eta:.0f} s"
        for key, value in extra.items():
            cap = f"/{self.limits[key]:,.0f}" if key in self.limits else ""
            text += f", {key}={value:.6g}{cap}" if isinstance(value, float) else f", {key}={value}{cap}"
        return text

    def update(self, done: float, *, force: bool = False, **extra) -> bool:
        """Log a line if ``every_s`` has passed since the last one (or ``force``); returns whether it did."""
        now = self.clock()
        if not force and now - self.last < self.every_s:
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
