"""One call for a full evaluation: qa accuracy plus our privacy metrics, with input checks.

This is what ``synth evaluate``, the pipelines' quality report and the checks use. It imports
neither torch, mostlyai nor dagster.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from synth_core.errors import InputError
from synth_core.metrics import AccuracyReport, accuracy

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """Accuracy (qa's fields), privacy (None without a holdout), row counts and elapsed time."""

    accuracy: AccuracyReport
    privacy: Any | None  # synth_core.privacy.PrivacyResult
    rows: dict[str, int]
    elapsed_s: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self, worst: int = 5) -> dict[str, Any]:
        out: dict[str, Any] = {
            "accuracy": self.accuracy.to_dict(),
            "privacy": self.privacy.to_dict() if self.privacy is not None else None,
            "rows": dict(self.rows),
            "elapsed_s": round(self.elapsed_s, 3),
        }
        out["worst"] = {
            "columns": self.accuracy.worst_columns(worst)[["column", "accuracy"]].to_dict("records"),
            "pairs": self.accuracy.worst_pairs(worst)[["column_1", "column_2", "accuracy"]].to_dict("records"),
        }
        return out


def check_inputs(
    training: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame | None = None,
    *,
    group_key: str | None = None,
    names: dict[str, str] | None = None,
) -> list[str]:
    """Validate the three tables; raise :class:`InputError` on a user mistake, return warnings.

    ``names`` maps "training"/"synthetic"/"holdout" to what the user called them (file paths),
    so that messages point at the right file.
    """
    names = {"training": "training", "synthetic": "synthetic", "holdout": "holdout", **(names or {})}
    tables = {"training": training, "synthetic": synthetic, "holdout": holdout}
    notes: list[str] = []
    for role, table in tables.items():
        if table is None:
            continue
        if table.shape[1] == 0 or len(table) == 0:
            raise InputError(f"{names[role]}: table has no rows")
        if group_key is not None and group_key not in table.columns:
            raise InputError(f"{names[role]}: group key {group_key!r} not found")
        if group_key is not None and table[group_key].isna().any():
            raise InputError(f"{names[role]}: group key {group_key!r} has missing values")
        if not table.columns.is_unique:
            dup = table.columns[table.columns.duplicated()][0]
            raise InputError(f"{names[role]}: duplicate column {dup!r}")
    data_columns = [c for c in training.columns if c != group_key]
    if not data_columns:
        raise InputError(f"{names['training']}: no data columns besides the group key")
    for role in ("synthetic", "holdout"):
        table = tables[role]
        if table is None:
            continue
        lacking = [c for c in training.columns if c not in table.columns]
        if lacking:
            raise InputError(f"{names[role]}: lacks training column {lacking[0]!r}")
        extra = [c for c in table.columns if c not in training.columns]
        if extra:
            notes.append(f"{names[role]}: ignoring {len(extra)} column(s) not in training: {', '.join(map(str, extra[:5]))}")
    return notes


def evaluate(
    training: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame | None = None,
    *,
    group_key: str | None = None,
    seed: int = 0,
    privacy_sample_size: int | None = None,
    names: dict[str, str] | None = None,
) -> Evaluation:
    """Accuracy as qa computes it (seeded like ``qa.set_random_state(seed)``) and privacy.

    Privacy needs a holdout: without one it is None.
    """
    started = time.perf_counter()
    notes = check_inputs(training, synthetic, holdout, group_key=group_key, names=names)
    for note in notes:
        log.info(note)
    columns = list(training.columns)
    synthetic = synthetic[columns]
    holdout = holdout[columns] if holdout is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        acc = accuracy(training, synthetic, holdout, group_key=group_key, seed=seed)
    priv = None
    if holdout is not None:
        from synth_core.privacy import privacy_metrics

        priv = privacy_metrics(
            training, holdout, synthetic, group_key=group_key, sample_size=privacy_sample_size, seed=seed
        )
    rows = {"training": len(training), "synthetic": len(synthetic)}
    if holdout is not None:
        rows["holdout"] = len(holdout)
    if group_key is not None:
        rows["training_groups"] = int(training[group_key].nunique())
        rows["synthetic_groups"] = int(synthetic[group_key].nunique())
        if holdout is not None:
            rows["holdout_groups"] = int(holdout[group_key].nunique())
    return Evaluation(acc, priv, rows, time.perf_counter() - started, notes)


def format_evaluation(ev: Evaluation, worst: int = 5) -> str:
    """A readable report: accuracy fields, privacy fields, worst columns and pairs."""
    lines = ["accuracy (mostlyai-qa definitions)"]
    acc = ev.accuracy.to_dict()
    for name in ("overall", "univariate", "bivariate", "trivariate", "coherence"):
        value, ref = acc[name], acc[name + "_max"]
        if value is None:
            continue
        lines.append(f"  {name:<12} {value:.5f}   (max {ref:.5f})")
    if ev.privacy is not None:
        lines.append("privacy")
        for key, value in ev.privacy.to_dict().items():
            if value is None:
                continue
            lines.append(f"  {key:<32} {value:.5f}" if isinstance(value, float) else f"  {key:<32} {value}")
    lines.append(f"worst {worst} columns")
    for r in ev.accuracy.worst_columns(worst).itertuples():
        lines.append(f"  {r.accuracy:.5f}  {r.column}")
    if len(ev.accuracy.bivariate):
        lines.append(f"worst {worst} pairs")
        for r in ev.accuracy.worst_pairs(worst).itertuples():
            lines.append(f"  {r.accuracy:.5f}  {r.column_1} × {r.column_2}")
    lines.append("rows  " + ", ".join(f"{k}={v:,}" for k, v in ev.rows.items()))
    lines.append(f"elapsed {ev.elapsed_s:.1f} s")
    return "\n".join(lines)
