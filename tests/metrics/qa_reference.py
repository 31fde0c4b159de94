"""Run mostlyai-qa itself (the scorer we reproduce) on small tables, for comparison in tests."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import pandas as pd


def qa_accuracy(
    training: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame | None,
    *,
    group_key: str | None,
    seed: int,
    workdir: Path,
) -> dict:
    """mostlyai-qa's ``Accuracy`` fields from ``qa.report`` under ``qa.set_random_state(seed)``."""
    from mostlyai import qa

    logging.getLogger("mostlyai").setLevel(logging.ERROR)
    qa.set_random_state(seed)
    with contextlib.redirect_stdout(io.StringIO()):
        _, metrics = qa.report(
            syn_tgt_data=synthetic,
            trn_tgt_data=training,
            hol_tgt_data=holdout,
            tgt_context_key=group_key,
            report_path=workdir / "qa-report.html",
            statistics_path=workdir / "qa-statistics",
        )
    assert metrics is not None, "qa exited early (tables too small)"
    return metrics.accuracy.model_dump()
