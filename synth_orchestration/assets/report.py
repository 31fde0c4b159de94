"""``<kind>/quality_report``: the run's stage table, the output beside a random pool sample, privacy and
what the guard left out; publishes the gated output with its HTML quality report
(:mod:`synth_core.report`) beside it."""

import json
import pickle
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd

from synth_core.io import atomic_path
from synth_core.ops import FINAL_ASSET, REPORT_ASSET, STAGES, asset_name
from synth_core.report import Status, build_report, dec, num, pct, stages_png, write_report
from synth_orchestration.assets.source import read_source
from synth_orchestration.common import Stage, spec_for, user_errors, write_json
from synth_orchestration.deploy_tags import step_tags
from synth_orchestration.resources import ArtifactStore, MetricStoreResource


def stage_table(store, run_id: str, dataset: str, kind: str) -> pd.DataFrame:
    """Per-stage accuracy against training (recorded by each stage in this run), with the Dagster step
    that made each subset and that step's time: the random pool sample's row carries the pool step's
    time, generation included, and says so rather than passing it off as the sample's."""
    frame = store.frame(dataset=dataset, run_id=run_id)
    rows = []
    for label, asset in STAGES[kind]:
        sub = frame[frame["asset"] == asset_name(kind, asset)]
        values = dict(zip(sub["metric"], sub["value"]))
        rows.append({
            "stage": "random pool sample" if label == "random" else label,
            "step": asset,
            "univariate": values.get("accuracy_univariate"),
            "bivariate": values.get("accuracy_bivariate"),
            "trivariate": values.get("accuracy_trivariate"),
            "coherence": values.get("accuracy_coherence"),
            "overall": values.get("accuracy_overall"),
            "elapsed_s": values.get("elapsed_s"),
        })
    return pd.DataFrame(rows)


def quality_markdown(store, run_id: str, dataset: str, kind: str, evaluation: dict) -> tuple[str, dict]:
    """The run's quality summary as Markdown (stages, the output beside a random pool sample, privacy,
    the guard) and the tables behind it."""
    table = stage_table(store, run_id, dataset, kind)
    fin, rnd = evaluation["final"], evaluation["random"]
    fields = ["univariate", "bivariate", "trivariate", "coherence", "overall", "overall_max"]
    side = pd.DataFrame({
        "metric": fields,
        "random pool sample": [rnd["accuracy"].get(f) for f in fields],
        "output": [fin["accuracy"].get(f) for f in fields],
    })
    priv_keys = ["dcr_share", "dcr_share_ci", "nndr_ratio", "exact_copy_training", "exact_copy_holdout",
                 "exact_copy_training_sequences", "exact_copy_holdout_sequences", "membership_auc", "membership_auc_ci",
                 "membership_auc_two_sided", "membership_auc_two_sided_ci", "membership_direction",
                 "membership_attack", "dcr_training", "dcr_holdout"]
    priv_keys = [k for k in priv_keys if fin["privacy"].get(k) is not None]

    def shown(value):  # readable: shares as percentages, the rest rounded; intervals as "low – high"
        if isinstance(value, list):
            return " – ".join(shown(v) for v in value)
        return value if isinstance(value, str) or value is None else dec(value, 4)

    priv = pd.DataFrame({
        "metric": priv_keys,
        "random pool sample": [shown(rnd["privacy"].get(k)) for k in priv_keys],
        "output": [shown(fin["privacy"].get(k)) for k in priv_keys],
    })
    md = [
        f"### {kind}/{dataset}: accuracy by stage (against training)",
        _readable(table).to_markdown(index=False),
        "",
        f"![accuracy by stage](data:image/png;base64,{stages_png(table)})",
        "",
        "### Against training ∪ holdout (mostlyai-qa definitions)",
        _readable(side).to_markdown(index=False),
        "",
        "### Privacy",
        priv.to_markdown(index=False),
    ]
    guard = guard_table(store, run_id, dataset, kind)
    if len(guard):
        md += ["", "### What selection left out (privacy guard)",
               guard.assign(value=[num(v, 4) for v in guard["value"]]).to_markdown(index=False)]
    payload = {"stages": table.to_dict("records"), "evaluation": side.to_dict("records"),
               "privacy": priv.to_dict("records"), "guard": guard.to_dict("records")}
    return "\n".join(md), payload


def _readable(frame: pd.DataFrame) -> pd.DataFrame:
    """Accuracy shares as percentages (2 decimals) and seconds with one decimal, for the UI."""
    out = frame.copy()
    for col in out.columns:
        if col == "elapsed_s":
            out[col] = [f"{v:.1f} s" if pd.notna(v) else "–" for v in out[col]]
        elif col not in ("stage", "step", "metric"):
            out[col] = [pct(v) for v in out[col]]
    return out


GUARD_FIGURES = ("pool_replicas_seen", "pool_replicas_removed", "near_copies_avoided", "near_copy_threshold",
                 "guard_candidates", "closeness_error")


def guard_table(store, run_id: str, dataset: str, kind: str) -> pd.DataFrame:
    """The privacy guard's figures recorded by ``refined_output`` in this run (empty when none)."""
    frame = store.frame(dataset=dataset, run_id=run_id)
    sub = frame[(frame["asset"] == asset_name(kind, FINAL_ASSET)) & frame["metric"].isin(GUARD_FIGURES)]
    values = dict(zip(sub["metric"], sub["value"]))
    return pd.DataFrame({"figure": [k for k in GUARD_FIGURES if k in values],
                         "value": [values[k] for k in GUARD_FIGURES if k in values]})


def publish(artifacts: ArtifactStore, kind: str, dataset: str, refined_output: dict, evaluation: dict, table: dict,
            report_html: Path | None = None) -> dict:
    """Copy the gated output (and its HTML report) into ``published/`` (file by file, each replaced atomically)."""
    dest = artifacts.published_dir(kind, dataset)
    sources = [Path(refined_output[key]) for key in ("parquet", "csv", "manifest")]
    for src in sources + ([report_html] if report_html is not None else []):
        with atomic_path(dest / src.name) as tmp:
            shutil.copyfile(src, tmp)
    write_json(dest / "report.json", {"evaluation": evaluation, "table": table})
    out = {"dir": str(dest), "parquet": str(dest / "output.parquet"), "csv": str(dest / "output.csv")}
    if report_html is not None:
        out["report"] = str(dest / report_html.name)
    return out


TREND_RUNS = 10  # runs shown in the report's trend
REPORT_FILE = "report.html"


def html_report(store, run_id: str, dataset: str, kind: str, refined_output: dict, source_data: dict,
                out: Path, status: Status | None = None) -> tuple[Path, dict[str, str]]:
    """Write ``report.html`` into ``out`` from the evaluation the checks made (kept with the pictures'
    data by ``refined_output``); returns its path and key pictures. An output materialised before
    that evaluation was kept is evaluated here, with the checks' seed and gate (the same figures).
    ``status`` heads the page (published, or refused with the failed checks' reasons)."""
    manifest = json.loads(Path(refined_output["manifest"]).read_text())
    ev = _checked_evaluation(refined_output, manifest, source_data)
    trend = store.history(dataset, ["eval_overall", "eval_random_overall"], asset=asset_name(kind, FINAL_ASSET))
    guard = guard_table(store, run_id, dataset, kind)
    report = build_report(ev, title=f"{kind}/{dataset}: quality report of run {run_id[:8]}",
                          stages=stage_table(store, run_id, dataset, kind), trend=trend.tail(TREND_RUNS),
                          selection=dict(zip(guard["figure"], guard["value"])),
                          dp=manifest.get("differential_privacy"), status=status,
                          schema=source_data.get("schema"))
    return write_report(out / REPORT_FILE, report), report.key_figures


def _checked_evaluation(refined_output: dict, manifest: dict, source_data: dict):
    from synth_core.metrics import GateSettings, evaluate

    kept = Path(refined_output.get("evaluation_details", ""))
    if kept.is_file():
        with open(kept, "rb") as fh:
            return pickle.load(fh)
    gate = GateSettings.from_mapping(manifest["config"]["gate"])
    training, holdout = read_source(source_data, "training"), read_source(source_data, "holdout")
    final = pd.read_parquet(refined_output["parquet"])
    return evaluate(training, final, holdout, group_key=manifest.get("group_key"), seed=gate.eval_seed, gate=gate,
                    details=True)


def _materialize(context: dg.AssetExecutionContext, refined_output: dict, source_data: dict, artifacts: ArtifactStore,
                 metrics: MetricStoreResource, kind: str) -> dg.MaterializeResult:
    """Stage table, random sample vs output, privacy, the HTML report; publishes the gated output."""
    spec = spec_for(context, kind)
    stage = Stage(context, metrics, spec.name)
    out = artifacts.run_dir(kind, spec.name, context.run.run_id, REPORT_ASSET)
    with user_errors():
        evaluation = json.loads(Path(refined_output["evaluation"]).read_text())
        markdown, table = quality_markdown(metrics.store(), context.run.run_id, spec.name, kind, evaluation)
        page, pictures = html_report(metrics.store(), context.run.run_id, spec.name, kind, refined_output,
                                     source_data, out, status=Status.published())
        published = publish(artifacts, kind, spec.name, refined_output, evaluation, table, page)
        figures = stage.record({"published": 1.0})
    shown = "\n\n".join(f"**{name}**\n\n![{name}](data:image/png;base64,{png})" for name, png in pictures.items())
    return dg.MaterializeResult(
        value={"published": published, "table": table, "report_html": str(page)},
        metadata={**figures, "report": dg.MetadataValue.md(markdown),
                  "pictures": dg.MetadataValue.md(shown),
                  "report_html": dg.MetadataValue.path(published["report"]),
                  "report_link": dg.MetadataValue.url(Path(published["report"]).resolve().as_uri()),
                  "published": dg.MetadataValue.path(published["dir"])},
    )


def quality_report_asset(kind: str, common: dict, description: str) -> dg.AssetsDefinition:
    """The ``quality_report`` asset of the ``kind`` graph (``common``: the arguments its assets share)."""
    @dg.asset(name=REPORT_ASSET, **common, code_version="2", kinds={"duckdb"},
              op_tags=step_tags(REPORT_ASSET), description=description)
    def quality_report(context: dg.AssetExecutionContext, refined_output: dict, source_data: dict,
                       artifacts: ArtifactStore, metrics: MetricStoreResource):
        return _materialize(context, refined_output, source_data, artifacts, metrics, kind)

    return quality_report
