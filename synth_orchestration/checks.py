"""The publication gate of ``<kind>/refined_output``: its three blocking checks, the final output
with its manifest, the evaluation they judge (rules and defaults: :mod:`synth_core.metrics._gate`),
and, when a check fails, the report that says why (:func:`explain_refusal`)."""

import hashlib
import pickle
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from synth_core.io import atomic_path, write_table
from synth_core.metrics import GateSettings
from synth_core.ops import FINAL_ASSET
from synth_core.schema import Schema
from synth_orchestration.assets.source import read_source
from synth_orchestration.common import readable, write_json

_GATE = GateSettings()  # the gate's default thresholds, for the check descriptions
DETAILS_FILE = "evaluation.pkl"  # the output's Evaluation with the report's details, beside evaluation.json
GATE_KEYS = ("accuracy_floor", "max_dcr_share", "min_nndr_ratio", "exact_copy_tolerance", "max_membership_auc",
             "eval_seed")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages behind an output, for its manifest (``not installed`` when absent)."""
    out = {}
    for name in ("synth-twin", "numpy", "pandas", "numba", "duckdb", "dagster", "mostlyai", "mostlyai-engine", "torch"):
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_final_output(out: Path, final: pd.DataFrame, manifest: dict) -> dict:
    """The final table as Parquet and CSV (atomic writes) with a run manifest beside it."""
    parquet = write_table(final, out / "output.parquet")
    csv = write_table(final, out / "output.csv")
    manifest = {
        **manifest,
        "created_at": datetime.now(UTC).isoformat(),
        "rows": len(final),
        "columns": {c: str(t) for c, t in final.dtypes.items()},
        "packages": package_versions(),
        "outputs": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (parquet, csv)},
    }
    path = write_json(out / "manifest.json", manifest)
    return {"parquet": str(parquet), "csv": str(csv), "manifest": str(path)}


def _check(name: str, passed: bool, description: str, metadata: dict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        passed=bool(passed),
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={k: (dg.MetadataValue.float(readable(k, v))
                      if isinstance(v, (int, float, np.floating)) and not isinstance(v, bool)
                      else dg.MetadataValue.text(str(v))) for k, v in metadata.items()},
    )


def evaluate_and_gate(final, baseline, training, holdout, settings: dict, *, group_key, target, rows, n_pool,
                      out: Path) -> dict:
    """Evaluate the output and a random pool sample against training ∪ holdout; judge the three checks
    (:func:`synth_core.metrics.judge`) and turn them into the asset's check results, figures and files.

    The rules and their defaults live in :mod:`synth_core.metrics._gate`; ``settings`` (the run's merged config)
    overrides the thresholds it names.
    """
    from synth_core.metrics import GateSettings, evaluate, judge

    gate = GateSettings.from_mapping(settings)
    # the report's pictures come from this evaluation too (kept with details): the output is evaluated once
    ev = evaluate(training, final, holdout, group_key=group_key, seed=gate.eval_seed, gate=gate, details=True)
    with atomic_path(out / DETAILS_FILE) as tmp, open(tmp, "wb") as fh:
        pickle.dump(ev, fh, protocol=pickle.HIGHEST_PROTOCOL)
    base = evaluate(training, baseline, holdout, group_key=group_key, seed=gate.eval_seed, gate=gate)
    acc, base_acc = ev.accuracy.to_dict(), base.accuracy.to_dict()
    priv, base_priv = ev.privacy.to_dict(), base.privacy.to_dict()  # the pipelines always hold a holdout
    verdict = judge(ev, base, final=final, training=training, target=target, selected=rows, n_pool=n_pool,
                    group_key=group_key, settings=gate)
    checks = [_check(v.name, v.passed, v.description, {k: x for k, x in v.figures.items() if x is not None})
              for v in verdict.checks]
    evaluation = {
        "final": {"accuracy": acc, "privacy": priv},
        "random": {"accuracy": base_acc, "privacy": base_priv, "privacy_gate": base.privacy_gate.to_dict()},
        "checks": {c.check_name: {"passed": c.passed, "description": c.description} for c in checks},
        "worst_columns": ev.accuracy.worst_columns(5).to_dict("records"),
        "worst_pairs": ev.accuracy.worst_pairs(5).to_dict("records"),
    }
    write_json(out / "evaluation.json", evaluation)
    figures = {f"eval_{k}": v for k, v in acc.items() if v is not None and not k.endswith("_max")}
    figures.update({f"eval_random_{k}": v for k, v in base_acc.items() if v is not None and not k.endswith("_max")})
    figures["eval_overall_max"] = acc["overall_max"]
    figures.update({k: v for k, v in priv.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    for name in ("dcr_share_ci", "membership_auc_ci", "membership_auc_two_sided_ci", "attribute_inference_risk_ci",
                 "linkability_risk_ci", "singling_out_risk_ci"):  # intervals: two figures
        if priv.get(name):
            figures[f"{name}_low"], figures[f"{name}_high"] = priv[name]
    for attack, value in (priv.get("membership_auc_by_attack") or {}).items():
        figures[f"membership_auc_{attack}"] = value
    for attack, rates in (priv.get("membership_tpr_at_fpr") or {}).items():
        for fpr, rate in rates.items():
            if rate is not None:  # e.g. membership_tpr_distance_at_fpr_0.01
                figures[f"membership_tpr_{attack}_at_fpr_{fpr}"] = rate
    if base_priv.get("membership_auc_two_sided") is not None:
        figures["eval_random_membership_auc_two_sided"] = base_priv["membership_auc_two_sided"]
    if base_priv.get("membership_auc") is not None:
        figures["eval_random_membership_auc"] = base_priv["membership_auc"]
    figures["eval_random_dcr_share"] = base_priv["dcr_share"]
    return {
        "figures": figures,
        "checks": checks,
        "worst_columns_md": ev.accuracy.worst_columns(5).to_markdown(index=False),
        "worst_pairs_md": ev.accuracy.worst_pairs(5).to_markdown(index=False),
    }


def gate_check_specs(kind: str) -> list[dg.AssetCheckSpec]:
    """The three blocking checks of ``<kind>/refined_output`` (names fixed, thresholds in run config)."""
    asset = dg.AssetKey([kind, FINAL_ASSET])
    integrity = "row count equals the target, schema equals training's, rows inside the pool"
    if kind == "sequential":
        integrity = ("group count equals the target, no empty groups, sequence lengths within training's range, "
                     "schema equals training's, groups inside the pool")
    return [
        dg.AssetCheckSpec("accuracy_floor", asset=asset, blocking=True,
                          description="overall accuracy ≥ the configured floor and ≥ the random pool sample's"),
        dg.AssetCheckSpec("privacy_gate", asset=asset, blocking=True,
                          description=f"dcr_share ≤ {_GATE.max_dcr_share} (or its 95% interval reaches 0.5), "
                          f"nndr_ratio ≥ {_GATE.min_nndr_ratio}, exact copies of training (rows and, for sequences, "
                          "whole sequences) not above the holdout's, size-matched, with 95% confidence, "
                          f"membership-inference AUC not above {_GATE.max_membership_auc} with 95% confidence "
                          "(defaults; thresholds in run config)"),
        dg.AssetCheckSpec("integrity", asset=asset, blocking=True, description=integrity),
    ]


def finish_output(context: dg.AssetExecutionContext, kind: str, spec, settings: dict, *, final: pd.DataFrame,
                  baseline: pd.DataFrame, training: pd.DataFrame, source_data: dict, trained_generator: dict,
                  selected: np.ndarray, n_pool: int, out: Path, figures: dict,
                  stop_reason: str, privacy: dict | None = None) -> tuple[dict, dict, dict, list]:
    """Write the final table with its manifest, evaluate it beside the random sample and judge the checks.

    ``training``: the caller's copy of the training part (already read). ``selected``: pool row
    (flat) or group (sequential) indices. Returns the asset's value, its figures (for the store),
    extra metadata, and the check results. The holdout is read here, for the evaluation only.
    """
    holdout = read_source(source_data, "holdout")
    target = int(source_data["target_size"])
    # date-like text goes back in the source's format; the checks judge the typed table
    written = Schema.from_records(source_data.get("schema", ())).restore(final)
    paths = write_final_output(out, written, {
        "dataset": spec.name, "kind": kind, "run_id": context.run.run_id, "seed": settings["seed"],
        "config": {"selection": settings, "gate": {k: settings[k] for k in GATE_KEYS},
                   "training": trained_generator["settings"]},
        "generator_id": trained_generator["generator_id"], "source_hashes": source_data["source_hashes"],
        "target_size": target, "pool_size": n_pool, "group_key": spec.group_key,
        "schema": source_data.get("schema"),
        **({"differential_privacy": privacy} if privacy is not None else {}),  # the composed (ε, δ), DP runs only
    })
    gate = evaluate_and_gate(final, baseline, training, holdout, settings, group_key=spec.group_key, target=target,
                             rows=selected, n_pool=n_pool, out=out)
    figures = {**figures, **gate["figures"]}
    value = {**paths, "evaluation": str(out / "evaluation.json"), "evaluation_details": str(out / DETAILS_FILE)}
    metadata = {
        "stop_reason": dg.MetadataValue.text(stop_reason),
        "output": dg.MetadataValue.path(paths["parquet"]),
        "preview": dg.MetadataValue.md(final.head(10).to_markdown(index=False)),
        "worst_columns": dg.MetadataValue.md(gate["worst_columns_md"]),
        "worst_pairs": dg.MetadataValue.md(gate["worst_pairs_md"]),
    }
    return value, figures, metadata, gate["checks"]


def explain_refusal(context: dg.AssetExecutionContext, kind: str, dataset: str, checks: list[dg.AssetCheckResult],
                    refined_output: dict, source_data: dict, metrics, out: Path) -> list[dg.AssetCheckResult]:
    """When a check failed: write the run's report, headed "Not published", into ``out``, name it in the
    failed checks' metadata and log one ERROR line; otherwise return ``checks`` as they are.
    ``metrics``: the :class:`~synth_orchestration.resources.MetricStoreResource`.

    Call it after ``refined_output`` recorded its figures: the report's stage table reads them. It
    draws from the evaluation the checks made (kept by :func:`evaluate_and_gate`), and a failure to
    draw only logs a warning, so a check's verdict is never replaced by another error.
    """
    failed = [c for c in checks if not c.passed]
    if not failed:
        return checks
    reasons = [f"{c.check_name}: {c.description}" for c in failed]
    page = _refused_report(context, kind, dataset, refined_output, source_data, metrics, out, reasons)
    where = str(page) if page is not None else "not written (see the warning above)"
    context.log.error(f"dataset '{dataset}' not published: {'; '.join(reasons)}; report: {where}")
    if page is None:
        return checks
    return [c if c.passed else _with_metadata(c, {"report": dg.MetadataValue.path(str(page))}) for c in checks]


def _refused_report(context, kind: str, dataset: str, refined_output: dict, source_data: dict, metrics, out: Path,
                    reasons: list[str]) -> Path | None:
    from synth_core.report import Status
    from synth_orchestration.assets.report import html_report

    try:
        page, _ = html_report(metrics.store(), context.run.run_id, dataset, kind, refined_output, source_data, out,
                              status=Status.refused(reasons))
    except Exception as exc:  # the report only explains; the checks' verdict must stand
        context.log.warning(f"dataset '{dataset}': the report of the refused run could not be drawn: "
                            f"{type(exc).__name__}: {exc}")
        return None
    return page


def _with_metadata(check: dg.AssetCheckResult, extra: dict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=check.check_name, asset_key=check.asset_key, passed=check.passed,
                               severity=check.severity, description=check.description,
                               metadata={**check.metadata, **extra})
