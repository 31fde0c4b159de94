"""synth_core.select._progress: rate-limited progress lines and their ETA."""

from __future__ import annotations

import logging


def test_progress_lines_are_rate_limited():
    import logging

    from synth_core.select._progress import Progress

    now = [0.0]
    records = []

    class Sink(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("test.progress")
    logger.setLevel(logging.INFO)
    logger.addHandler(Sink())
    p = Progress(logger, "work", total=100, unit="items", every_s=5.0, clock=lambda: now[0])
    for step in range(1, 101):
        now[0] = step * 0.5  # one item every half second
        p.update(step, objective=0.25)
    assert len(records) == 10  # one line per 5 s of 50 s
    assert records[0] == "work: 10/100 items (10%), 2.0 items/s, 5 s, ETA 45 s, objective=0.25"


def test_progress_eta_is_the_earliest_cap(caplog):
    from synth_core.select._progress import Progress

    now = [0.0]
    logger = logging.getLogger("test.edges.progress")
    p = Progress(logger, "refine", total=20_000, unit="swaps", limits={"rounds_done": 20}, every_s=1.0,
                 clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger=logger.name):
        now[0] = 10.0
        p.update(100, rounds_done=0)  # no round finished yet: the swap rate is all there is
        now[0] = 20.0
        p.update(150, rounds_done=4)  # 5 s per round, 16 rounds left: 80 s, not 2,647 s by swaps
    lines = [r.getMessage() for r in caplog.records]
    assert "ETA 1990 s" in lines[0]
    assert "ETA 80 s" in lines[1] and "rounds_done=4/20" in lines[1]
