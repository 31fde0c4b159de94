"""One call for a full evaluation: qa accuracy plus our privacy metrics, with input checks.

This is what ``synth evaluate``, the pipelines' quality report and the checks use. It imports
neither torch, mostlyai nor dagster.

With a holdout the evaluation also carries the verdict of the privacy gate
(:func:`synth_core.metrics._gate.privacy_gate`, default thresholds unless given). Without a holdout
there is nothing unseen to compare with: privacy and the gate are None (``null`` in JSON), and
the readable report says so.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from synth_core.errors import InputError
from synth_core.metrics._accuracy import AccuracyReport, accuracy
from synth_core.metrics._gate import CheckResult, GateSettings, privacy_gate

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """Accuracy (qa's fields), privacy and the privacy gate's verdict (both None without a
    holdout), row counts, elapsed time and warnings for the user."""

    accuracy: AccuracyReport
    privacy: Any | None  # synth_core.metrics._privacy.PrivacyResult
    rows: dict[str, int]
    elapsed_s: float
    warnings: list[str] = field(default_factory=list)
    privacy_gate: CheckResult | None = None
    details: dict[str, Any] | None = field(default=None, repr=False)  # evaluate(..., details=True)

    def to_dict(self, worst: int = 5) -> dict[str, Any]:
        out: dict[str, Any] = {
            "accuracy": self.accuracy.to_dict(),
            "privacy": self.privacy.to_dict() if self.privacy is not None else None,
            "privacy_gate": self.privacy_gate.to_dict() if self.privacy_gate is not None else None,
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
            notes.append(f"{names[role]}: ignoring {len(extra)} column(s) not in training: "
                         f"{', '.join(map(str, extra[:5]))}")
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
    drop: list[str] | tuple[str, ...] = (),
    gate: GateSettings | None = None,
    membership: bool = True,
    privacy: bool = True,
    details: bool = False,
) -> Evaluation:
    """Accuracy as qa computes it (seeded like ``qa.set_random_state(seed)``), privacy and the
    privacy gate.

    Parameters
    ----------
    training, synthetic, holdout : DataFrame
        Privacy and the gate need a holdout: without one they are None.
    group_key : str, optional
        Sequential data: the column linking a sequence's rows.
    seed : int, default 0
    privacy_sample_size : int, optional
        Units per privacy reference (default: :data:`synth_core.metrics._privacy.DEFAULT_SAMPLE`).
    names : dict, optional
        What the user called the tables (file paths), for messages.
    drop : sequence of str
        Columns removed from all three tables before anything is computed (identifiers); each
        must be a training column. Reported in ``privacy.excluded_columns`` as "dropped".
    gate : GateSettings, optional
        Thresholds of the privacy gate (default: :class:`GateSettings`'s).
    membership : bool, default True
        Run the membership audit.
    privacy : bool, default True
        Compute the privacy figures and the gate when there is a holdout; False keeps the holdout
        as part of the accuracy's reference only (intermediate selection stages).
    details : bool, default False
        Keep what the quality report draws (:mod:`synth_core.report`) in ``Evaluation.details``:
        ``accuracy`` (:class:`synth_core.metrics._accuracy.AccuracyDetails`), ``privacy`` (the
        per-unit distances and attack scores, see ``privacy_metrics(collect=...)``; None without
        a holdout) and ``sequence_lengths`` (per table, rows per group; None for flat data).
        The figures are the same either way.

    Returns
    -------
    Evaluation
        Its warnings include one line per column left out of the privacy figures because it
        looks like an identifier.
    """
    started = time.perf_counter()
    labels = {"training": "training", **(names or {})}
    for col in drop:
        if col not in training.columns:
            raise InputError(f"{labels['training']}: no column {col!r} to drop")
        if col == group_key:
            raise InputError(f"cannot drop the group key {col!r}")
    if drop:
        training = training.drop(columns=list(drop))
        synthetic = synthetic.drop(columns=list(drop), errors="ignore")
        holdout = holdout.drop(columns=list(drop), errors="ignore") if holdout is not None else None
    notes = check_inputs(training, synthetic, holdout, group_key=group_key, names=names)
    for note in notes:
        log.info(note)
    columns = list(training.columns)
    synthetic = synthetic[columns]
    holdout = holdout[columns] if holdout is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        acc = accuracy(training, synthetic, holdout, group_key=group_key, seed=seed, details=details)
    priv = verdict = None
    collected: dict | None = {} if details else None
    if holdout is not None and privacy:
        from synth_core.metrics._privacy import privacy_metrics

        priv = privacy_metrics(
            training, holdout, synthetic, group_key=group_key, sample_size=privacy_sample_size, seed=seed,
            membership=membership, collect=collected,
        )
        for col, why in priv.excluded_columns.items():
            notes.append(f"privacy: column {col!r} looks like an identifier ({why}): "
                         "left out of distances and exact copies")
        if drop:
            priv = replace(priv, excluded_columns={**{c: "dropped" for c in drop}, **priv.excluded_columns})
        verdict = privacy_gate(priv, gate)
    rows = _table_sizes({"training": training, "holdout": holdout, "synthetic": synthetic}, group_key)
    extra = None
    if details:
        tables = {"training": training, "holdout": holdout, "synthetic": synthetic}
        lengths = None if group_key is None else {
            name: t.groupby(group_key, sort=False).size().to_numpy() for name, t in tables.items() if t is not None}
        extra = {"accuracy": acc.details, "privacy": collected if priv is not None else None,
                 "sequence_lengths": lengths}
    return Evaluation(acc, priv, rows, time.perf_counter() - started, notes, verdict, extra)


def format_evaluation(ev: Evaluation, worst: int = 5) -> str:
    """A readable report: accuracy fields, privacy fields, worst columns and pairs."""
    lines = ["accuracy (mostlyai-qa definitions)"]
    acc = ev.accuracy.to_dict()
    for name in ("overall", "univariate", "bivariate", "trivariate", "coherence"):
        value, ref = acc[name], acc[name + "_max"]
        if value is None:
            continue
        lines.append(f"  {name:<12} {value:.5f}   (max {ref:.5f})")
    lines += format_privacy(ev)
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


def format_privacy(ev: Evaluation) -> list[str]:
    """The readable privacy lines: every figure, intervals beside their values, the verdict."""
    if ev.privacy is None:
        return ["privacy: not evaluated (no holdout to compare with)"]
    p = ev.privacy.to_dict()
    unit = "groups" if p.get("exact_copy_training_sequences") is not None else "rows"
    lines = [f"privacy ({p['n']:,} {unit} per reference, {p['n_synthetic']:,} synthetic)"]
    skip = {"n", "n_synthetic", "rows", "dcr_share_ci", "membership_auc_ci", "membership_attack",
            "membership_auc_by_attack", "membership_auc_two_sided_ci", "membership_attack_two_sided",
            "membership_direction", "membership_auc_ci_by_attack", "membership_tpr_at_fpr",
            "attribute_inference_risk_ci", "linkability_risk_ci", "singling_out_risk_ci"}
    for key, value in p.items():
        if key in skip or value is None:
            continue
        if key == "excluded_columns":
            if value:
                lines.append(f"  {key:<32} " + ", ".join(f"{c} ({why})" for c, why in value.items()))
            continue
        text = f"{value:.5f}" if isinstance(value, float) else str(value)
        if key.endswith("_risk") and p.get(f"{key}_ci"):
            text += "   95% CI {:.5f}-{:.5f} (0 = members no easier than unseen records)".format(*p[f"{key}_ci"])
        if key == "dcr_share" and p.get("dcr_share_ci"):
            text += "   95% CI {:.5f}-{:.5f}".format(*p["dcr_share_ci"])
        if key == "membership_auc" and p.get("membership_auc_ci"):
            by = ", ".join(f"{a} {v:.5f}" for a, v in p["membership_auc_by_attack"].items())
            text += "   95% CI {:.5f}-{:.5f} (best attack {}; {})".format(*p["membership_auc_ci"],
                                                                           p["membership_attack"], by)
        if key == "membership_auc_two_sided" and p.get("membership_auc_two_sided_ci"):
            text += "   95% CI {:.5f}-{:.5f} ({}, members sit {} the synthetic data)".format(
                *p["membership_auc_two_sided_ci"], p["membership_attack_two_sided"],
                {"closer": "closer to", "farther": "farther from"}[p["membership_direction"]])
        lines.append(f"  {key:<32} {text}")
        if key == "membership_auc_two_sided" and p.get("membership_tpr_at_fpr"):
            for attack, rates in p["membership_tpr_at_fpr"].items():
                shown = ", ".join(f"{'n/a' if r is None else f'{r:.4f}'} at FPR {float(f):g}" for f, r in rates.items())
                lines.append(f"  {'membership_tpr_at_fpr ' + attack:<32} {shown}")
    gate = ev.privacy_gate
    if gate is not None:
        lines.append("privacy_gate: passed" if gate.passed else "privacy_gate: FAILED")
        lines += [f"  {reason}" for reason in gate.reasons]
    return lines


def _table_sizes(tables: dict[str, pd.DataFrame | None], group_key: str | None) -> dict[str, int]:
    """Rows per table (and groups, for sequences), in the order the evaluation reports them."""
    order = ("training", "synthetic", "holdout")
    rows = {name: len(tables[name]) for name in order if tables[name] is not None}
    if group_key is not None:
        rows.update({f"{name}_groups": int(tables[name][group_key].nunique())
                     for name in order if tables[name] is not None})
    return rows
