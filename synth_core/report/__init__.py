"""The quality report: one self-contained HTML file that shows a synthetic table's accuracy and
privacy at a glance, drawn from the figures :func:`synth_core.metrics.evaluate` computes exactly.

``synth evaluate --report FILE.html`` and the pipelines' ``quality_report`` write it; a pipeline
run refused by a blocking check writes it too, into the run's folder. Contents, in order: the
verdict (:class:`Status`: published, or not with every failed check's reason; for ``synth
evaluate`` a failed privacy gate); a headline (overall accuracy against ``overall_max``, the
privacy gate's verdict with the DCR share's interval, the membership audit); what the run did with
each source column (when it says: the pipeline's ``source_data`` schema); accuracy by selection
stage and the trend over the last runs (pipeline runs only); every column on the metric's own
bins, worst first; the 10 worst pairs as binned heatmaps and the change of every pair's
association; for sequences the length distribution and the coherence parts of the worst columns;
privacy: distances to the closest record, the attacks' ROC curves and what selection's privacy
guard removed.

Pictures are PNGs embedded as ``data:`` URIs; the page has no script and loads nothing, so it
opens offline. The same evaluation gives the same bytes. Pure library: no Dagster import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from synth_core.errors import InputError
from synth_core.io import atomic_path, check_writable_folder
from synth_core.report import _figures as F
from synth_core.report._data import ReportData, report_data
from synth_core.report._html import Page, card, count, dec, esc, image, interval, note, num, pct, status_banner, table

__all__ = ["Report", "ReportData", "Status", "build_report", "check_report_path", "count", "curve_png", "dec", "num",
           "pct", "report_data", "stages_png", "write_report"]

curve_png = F.curve_png  # the pictures the Dagster metadata shows beside the report's
stages_png = F.stages_png

REPORT_SUFFIXES = (".html", ".htm")


@dataclass
class Report:
    """A rendered report: the page and its key pictures (base64 PNG by name), for places that
    show pictures without the file (the Dagster UI)."""

    html: str
    key_figures: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Status:
    """The verdict a report is headed with.

    Parameters
    ----------
    label : str
        The heading, e.g. ``"Published"`` or ``"Not published"``.
    passed : bool
        Good news (green) or not (red).
    explanation : str
        One sentence under the label.
    reasons : tuple of str
        One line per failed check, ``"<check>: <why>"``.
    """

    label: str
    passed: bool
    explanation: str = ""
    reasons: tuple[str, ...] = ()

    @classmethod
    def published(cls) -> Status:
        """A run every blocking check passed."""
        return cls("Published", True, "Every blocking check passed: this output is the published one.")

    @classmethod
    def refused(cls, reasons: Sequence[str]) -> Status:
        """A run a blocking check refused; ``reasons``: ``"<check>: <why>"`` per failed check."""
        return cls("Not published", False, "A blocking check failed: the output stays in the run's folder and "
                   "nothing published was changed.", tuple(reasons))


def measured_status(evaluation) -> Status | None:
    """The verdict of a plain evaluation (``synth evaluate``): only the privacy gate is judged there, so
    only its failure heads the page; None when it passed or was not judged."""
    gate = evaluation.privacy_gate
    if gate is None or gate.passed:
        return None
    return Status("Would not be published", False, "The privacy gate failed (accuracy floor and integrity are "
                  "judged by synth select and the pipeline).", tuple(f"privacy_gate: {r}" for r in gate.reasons))


SCHEMA_FIELDS = ("column", "kind", "action", "note")


def check_report_path(path: str | os.PathLike, inputs: Mapping[str, str | os.PathLike | None], *,
                      option: str = "--report") -> Path:
    """Refuse a report path before any work: not ``.html``, a folder, in a folder that does not
    exist or cannot be written, or the same file as an input. Raises :class:`InputError` naming
    ``option``."""
    path = Path(path)
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise InputError(f"{option} {path}: the report is an HTML file, name it *.html")
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder, not a file")
    if not path.parent.is_dir():
        raise InputError(f"{option} {path}: folder {path.parent} does not exist")
    for name, given in inputs.items():
        if given is not None and _same_file(path, Path(given)):
            raise InputError(f"{option} {path} is the same file as {name} {given}: refusing to overwrite an input")
    check_writable_folder(path.parent, what=f"{option} {path}")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b) if a.exists() and b.exists() else a.resolve() == b.resolve()
    except OSError:
        return False


def build_report(evaluation, *, title: str = "Quality report", stages: pd.DataFrame | None = None,
                 trend: pd.DataFrame | None = None, selection: Mapping[str, float] | None = None,
                 dp: Mapping | None = None, status: Status | None = None,
                 schema: Sequence[Mapping] | None = None) -> Report:
    """Render the report of an evaluation made with ``evaluate(..., details=True)``.

    Parameters
    ----------
    evaluation : synth_core.metrics._evaluate.Evaluation
    title : str
        The page's heading (e.g. the dataset and run).
    stages : DataFrame, optional
        Accuracy by selection stage: ``stage`` and any of ``univariate``, ``bivariate``,
        ``trivariate``, ``coherence``, ``overall`` (shares), ``elapsed_s``.
    trend : DataFrame, optional
        The last runs, oldest first: ``eval_overall`` and ``eval_random_overall`` (shares),
        optionally ``run_id`` and ``recorded_at`` (:func:`synth_core.ops.load_history`'s columns).
    selection : mapping, optional
        What selection's privacy guard removed (figure name → value).
    dp : mapping, optional
        A differentially private run's composed statement (``PrivacyStatement.to_dict()`` plus
        ``covers``, as the run's manifest holds it), shown in the headline.
    status : Status, optional
        The verdict heading the page (default: :func:`measured_status`, the privacy gate's failure
        or nothing).
    schema : sequence of mapping, optional
        What the run did with each source column: ``column``, ``kind``, ``action`` (e.g. ``model``,
        ``drop``), ``note``; shown as the "Columns" table when given.

    Returns
    -------
    Report
    """
    data = report_data(evaluation)
    rows = evaluation.rows
    unit = "groups" if "training_groups" in rows else "rows"
    sizes = ", ".join(f"{t} {count(rows.get(f'{t}_groups', rows.get(t)), unit)}"
                      for t in ("training", "holdout", "synthetic") if t in rows)
    # no time of day or elapsed seconds on the page: the same evaluation gives the same bytes
    page = Page(title, f"{sizes} · accuracy as mostlyai-qa defines it")
    status = status if status is not None else measured_status(evaluation)
    if status is not None:
        page.banner = status_banner(status.label, status.passed, status.explanation, status.reasons)
        page.tab_prefix = "" if status.passed else f"{status.label} · "
    key: dict[str, str] = {}
    # the banner already lists a failed gate's reasons
    _headline(page, evaluation, dp, reasons=status is None or not status.reasons)
    _schema(page, schema)
    _stages(page, stages, trend, key)
    _columns(page, data, key)
    _pairs(page, data)
    if data.sequence_lengths is not None:
        _sequences(page, data)
    _privacy(page, data, evaluation, selection, key)
    return Report(page.render(), key)


def write_report(path: str | os.PathLike, report: Report) -> Path:
    """Write the page atomically (a reader never sees half a file); returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(report.html, encoding="utf-8")
    return path


def _headline(page: Page, ev, dp: Mapping | None = None, reasons: bool = True) -> None:
    parts = page.section("headline", "Headline")
    acc = ev.accuracy.to_dict()
    cards = [card("overall accuracy", pct(acc["overall"]),
                  f"max {pct(acc['overall_max'])} (a sample of the real data)")]
    gate, priv = ev.privacy_gate, ev.privacy
    if priv is None:
        cards.append(card("privacy", "not evaluated", "no holdout to compare with"))
    else:
        verdict = "passed" if gate is None or gate.passed else "FAILED"
        cards.append(card("privacy gate", verdict, f"DCR share {pct(priv.dcr_share, 1)} "
                          f"(95 % CI {interval(priv.dcr_share_ci, lambda v: pct(v, 1))}; fair ≈ 50 %)",
                          "pass" if verdict == "passed" else "fail"))
        if priv.membership_auc_two_sided is not None:
            cards.append(card("membership audit (both directions, best attack AUC)", dec(priv.membership_auc_two_sided),
                              f"95 % CI {interval(priv.membership_auc_two_sided_ci, dec)}; "
                              f"{priv.membership_attack_two_sided}, members {priv.membership_direction}; "
                              "0.5 = tells nothing"))
        elif priv.membership_auc is not None:
            cards.append(card("membership audit (best attack AUC)", dec(priv.membership_auc),
                              f"95 % CI {interval(priv.membership_auc_ci, dec)}; {priv.membership_attack}; "
                              "0.5 = tells nothing"))
    if dp is not None:
        cards.append(_dp_card(dp))
    parts.append(f'<div class="cards">{"".join(cards)}</div>')
    if dp is not None:
        parts.append(note(_dp_scope(dp)))
    fields = ["univariate", "bivariate", "trivariate", "coherence", "overall"]
    shown = [f for f in fields if acc.get(f) is not None]
    parts.append(table(pd.DataFrame({"part": shown, "accuracy": [pct(acc[f]) for f in shown],
                                     "max (sampling noise alone)": [pct(acc[f + "_max"]) for f in shown]})))
    if reasons and gate is not None and not gate.passed:
        parts.append("<ul>" + "".join(f'<li class="fail">{esc(r)}</li>' for r in gate.reasons) + "</ul>")
    for warning in ev.warnings:
        parts.append(note(f"warning: {warning}"))


def _schema(page: Page, schema: Sequence[Mapping] | None) -> None:
    """What the run did with each source column; nothing when the run does not say."""
    if not schema:
        return
    parts = page.section("schema", "Columns")
    rows = [["" if entry.get(f) is None else entry.get(f) for f in SCHEMA_FIELDS] for entry in schema]
    parts.append(table(pd.DataFrame(rows, columns=list(SCHEMA_FIELDS))))


def _dp_scope(dp: Mapping) -> str:
    """What a run's (ε, δ) covers and what it does not, in the reader's words."""
    covers = dp.get("covers") or ("the published table's dependence on any one training record"
                                  if dp.get("epsilon") is not None else "selection's use of training only")
    stated = dp.get("statement") or f"ε = {dp.get('epsilon') or dp.get('selection_epsilon'):.4g}, covering {covers}"
    return (f"Differential privacy: {stated}. Not covered: the evaluation on this page (the privacy gate and the "
            "accuracy figures read training and holdout) and anything released besides the table.")


def _dp_card(dp: Mapping) -> str:
    """The composed (ε, δ) of a differentially private run: generator plus selection (basic composition), or
    selection's part alone when the pool's generator is not known to be DP."""
    sel = f"selection ε {dp['selection_epsilon']:.3g} (δ {dp['selection_delta']:.1e})"
    if dp.get("epsilon") is None:
        return card("differential privacy", f"ε = {dp['selection_epsilon']:.3g}", f"{sel}; {dp.get('covers', '')}")
    return card("differential privacy", f"ε = {dp['epsilon']:.3g}, δ = {dp['delta']:.1e}",
                f"generator ε {dp['generator_epsilon']:.3g} (δ {dp['generator_delta']:.1e}) + {sel}")


def _stages(page: Page, stages: pd.DataFrame | None, trend: pd.DataFrame | None, key: dict) -> None:
    parts = page.section("stages", "Accuracy by stage")
    if stages is None or len(stages) == 0:
        parts.append(note("Stages and the trend over runs are shown for pipeline runs "
                          "(the metric store records them)."))
        return
    png = F.stages_png(stages)
    key["accuracy by stage"] = png
    parts.append(image(png, "accuracy by stage", "accuracy of each stage's subset against training"))
    shown = stages.copy()
    for col in shown.columns:
        if col == "elapsed_s":
            shown[col] = [f"{v:.1f} s" if pd.notna(v) else "–" for v in shown[col]]
        elif col not in ("stage", "step"):
            shown[col] = [pct(v) for v in shown[col]]
    # a pipeline's table names the step behind each row: its time is the step's, not the subset's
    parts.append(table(shown.rename(columns={"elapsed_s": "step time" if "step" in shown.columns else "time"})))
    if trend is not None and len(trend) > 0:
        parts.append("<h3>Trend over the last runs</h3>")
        parts.append(image(F.trend_png(trend), "trend over runs", "overall accuracy of each run's output"))


def _columns(page: Page, data: ReportData, key: dict) -> None:
    parts = page.section("columns", "Every column (worst first)")
    parts.append(note("Training, holdout and synthetic on the metric's own bins (numeric: histogram steps, training "
                      "filled; categorical: bars); accuracy = 1 − ½ L1 of the binned shares."))
    tables = list(data.columns[0].shares) if data.columns else []
    parts.append('<p class="note">' + " ".join(
        f'<span style="display:inline-block;width:12px;height:12px;background:{F.COLOURS[t]}"></span> {esc(t)}'
        for t in tables) + "</p>")
    cells = []
    for i, col in enumerate(data.columns):
        png = F.column_png(col)
        if i == 0:
            key[f"worst column: {col.name}"] = png
        cells.append(image(png, f"column {col.name}", f"{col.name}: {pct(col.accuracy)} (max {pct(col.accuracy_max)})"))
    parts.append(f'<div class="grid">{"".join(cells)}</div>')


def _pairs(page: Page, data: ReportData) -> None:
    parts = page.section("pairs", "Worst pairs and associations")
    if not data.pairs:
        parts.append(note("One column: no pairs."))
        return
    cells = [image(F.pair_png(p), f"pair {p.columns[0]} × {p.columns[1]}") for p in data.pairs]
    parts.append(f'<div class="grid">{"".join(cells)}</div>')
    if data.association is not None:
        parts.append("<h3>Association difference</h3>")
        parts.append(image(F.association_png(data.association), "association difference matrix",
                           "Cramér's V of every binned column pair, synthetic minus training "
                           "(red: stronger in synthetic)"))


def _sequences(page: Page, data: ReportData) -> None:
    parts = page.section("sequences", "Sequences")
    parts.append(image(F.sequence_lengths_png(data.sequence_lengths), "sequence lengths", "rows per sequence"))
    if len(data.coherence):
        parts.append("<h3>Coherence of the worst columns</h3>")
        parts.append(image(F.coherence_png(data.coherence), "coherence parts",
                           "next row, distinct categories per sequence, sequences per category"))
        shown = data.coherence.copy()
        for col in shown.columns[1:]:
            shown[col] = [pct(v) for v in shown[col]]
        parts.append(table(shown))


def _privacy(page: Page, data: ReportData, ev, selection: Mapping[str, float] | None, key: dict) -> None:
    parts = page.section("privacy", "Privacy")
    p = ev.privacy
    if p is None:
        parts.append(note("Not evaluated: privacy compares with a holdout, and none was given."))
        return
    unit = "groups" if p.exact_copy_training_sequences is not None else "rows"
    rows = [
        ("DCR share (closer to training than to holdout)",
         f"{pct(p.dcr_share, 1)} (95 % CI {interval(p.dcr_share_ci, lambda v: pct(v, 1))})"),
        ("mean distance to closest record: training / holdout", f"{num(p.dcr_training)} / {num(p.dcr_holdout)}"),
        ("5th percentile distance: training / holdout", f"{num(p.dcr_training_p5)} / {num(p.dcr_holdout_p5)}"),
        ("NNDR ratio (training / holdout)", num(p.nndr_ratio)),
        ("exact copies of training / holdout rows", f"{pct(p.exact_copy_training)} / {pct(p.exact_copy_holdout)}"),
    ]
    if p.exact_copy_training_sequences is not None:
        rows.append(("exact copies of whole sequences: training / holdout",
                     f"{pct(p.exact_copy_training_sequences)} / {pct(p.exact_copy_holdout_sequences)}"))
    if p.membership_auc is not None:
        by = ", ".join(f"{a.replace('_', ' ')} {dec(v)}" for a, v in (p.membership_auc_by_attack or {}).items())
        rows.append(("membership audit AUC (best attack)",
                     f"{dec(p.membership_auc)} (95 % CI {interval(p.membership_auc_ci, dec)}); {by}"))
    if p.membership_auc_two_sided is not None:
        rows.append(("membership audit AUC, either direction (direction chosen on the other fold)",
                     f"{dec(p.membership_auc_two_sided)} (95 % CI {interval(p.membership_auc_two_sided_ci, dec)}); "
                     f"{(p.membership_attack_two_sided or '').replace('_', ' ')}: members sit {p.membership_direction} "
                     "(closer to / farther from the synthetic data)"))
    for name, label in (("attribute_inference", "attribute inference risk (a hidden column from the others)"),
                        ("linkability", "linkability risk (two halves of a record's columns)"),
                        ("singling_out", "singling-out risk (a description that fits one record)")):
        value = getattr(p, f"{name}_risk")
        if value is not None:
            rows.append((label, f"{dec(value)} (95 % CI {interval(getattr(p, f'{name}_risk_ci'), dec)}; 0 = members "
                                "no easier than unseen records)"))
    for attack, rates in (p.membership_tpr_at_fpr or {}).items():
        shown = ", ".join(f"{'n/a' if r is None else pct(r)} at {pct(float(f))}" for f, r in rates.items())
        rows.append((f"true-positive rate at low false-positive rates: {attack.replace('_', ' ')}",
                     shown + " (a blind attacker: equal to the false-positive rate)"))
    rows.append(("units per reference", f"{count(p.n, unit)} ({count(p.n_synthetic, unit)} synthetic)"))
    parts.append(table(pd.DataFrame(rows, columns=["figure", "value"])))
    if data.dcr is not None:
        png = F.dcr_png(data.dcr)
        key["distance to closest record"] = png
        parts.append(image(png, "distance to closest record", "a leak shows as synthetic units closer to training"))
    if data.roc:
        parts.append(image(F.roc_png(data.roc, p.membership_auc_by_attack or {}), "membership attack ROC curves",
                           "members (training) vs non-members (holdout), both audit folds pooled"))
    parts.append("<h3>What selection removed</h3>")
    if selection:
        parts.append(table(pd.DataFrame({"figure": list(selection),
                                         "value": [num(v, 4) if isinstance(v, float) and not float(v).is_integer()
                                                   else count(v) for v in selection.values()]})))
    else:
        parts.append(note("Not recorded: the privacy guard's figures come from a pipeline run."))
