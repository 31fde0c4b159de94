"""A run that a blocking check refuses still explains itself: ``report.html`` in the run's folder,
headed "Not published" with every failed check's reason, its path in the failed checks' metadata,
one ERROR line in the run's log, and nothing in ``published/``. Both graphs, on pools of their own
(nothing is trained); the thresholds are run config, as a user would set them."""

import html
import json
import logging
import re
from pathlib import Path

import dagster as dg
import pytest

from synth_core.report import Status, pct
from synth_orchestration.assets import flat, sequential
from synth_orchestration.assets.report import html_report
from synth_orchestration.checks import explain_refusal
from synth_orchestration.resources import ArtifactStore, MetricStoreResource

CASES = {"flat": (flat.ASSETS, "own_pool_flat"), "sequential": (sequential.ASSETS, "own_pool_seq")}
STRICT = {"accuracy_floor": 1.0, "max_membership_auc": 0.0}  # no output reaches either: two checks fail
FAILING = ("accuracy_floor", "privacy_gate")


def _resources(root: Path) -> dict:
    return {"artifacts": ArtifactStore(artifact_root=str(root / "artifacts")),
            "metrics": MetricStoreResource(database=str(root / "metrics.duckdb"))}


@pytest.fixture(scope="module", params=sorted(CASES))
def refused(request, tmp_path_factory):
    kind = request.param
    assets, dataset = CASES[kind]
    root = tmp_path_factory.mktemp(f"refused-{kind}")
    instance = dg.DagsterInstance.ephemeral()  # kept, to read the run's log afterwards
    result = dg.materialize(assets, partition_key=dataset, instance=instance, resources=_resources(root),
                            run_config=dg.RunConfig({f"{kind}__refined_output": {"config": STRICT}}),
                            raise_on_error=False)
    yield {"kind": kind, "dataset": dataset, "root": root, "result": result, "logs": instance.all_logs(result.run_id)}
    instance.dispose()


def _checks(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _user_logs(logs, level: int) -> list[str]:
    return [e.user_message for e in logs if e.dagster_event is None and e.level == level]


def _visible(page: str) -> str:
    """The page's text as a reader sees it: no style sheet, no tags, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page.split("</style>", 1)[1]))


def test_the_refused_run_writes_its_report_into_the_run_folder(refused):
    kind, dataset, root, result = refused["kind"], refused["dataset"], refused["root"], refused["result"]
    assert not result.success
    checks = _checks(result)
    assert {n: c.passed for n, c in checks.items()} == {"accuracy_floor": False, "privacy_gate": False,
                                                        "integrity": True}
    materialised = {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert f"{kind}/quality_report" not in materialised
    expected = root / "artifacts" / kind / dataset / "runs" / result.run_id / "refined_output" / "report.html"
    for name in FAILING:  # the failed checks name it, as a path the UI shows
        assert checks[name].metadata["report"] == dg.MetadataValue.path(str(expected))
    assert "report" not in checks["integrity"].metadata
    page = expected.read_text()
    text = _visible(page)
    assert '<div class="verdict fail">Not published</div>' in page
    assert page.index('<div id="status"') < page.index('<section id="headline">')  # the reasons come first
    for name in FAILING:
        assert f"{name}: {checks[name].description}" in text
    published = root / "artifacts" / kind / dataset / "published"
    assert not published.exists() or not any(published.iterdir())


def test_the_refused_report_is_drawn_from_the_checks_evaluation(refused):
    """Stage table, accuracy and privacy as the checks saw them: the figures of evaluation.json."""
    kind, result = refused["kind"], refused["result"]
    report = Path(_checks(result)["accuracy_floor"].metadata["report"].value)
    page = report.read_text()
    for ident in ("headline", "stages", "columns", "pairs", "privacy"):
        assert f'<section id="{ident}">' in page
    evaluation = json.loads((report.parent / "evaluation.json").read_text())
    assert pct(evaluation["final"]["accuracy"]["overall"]) in page
    assert "<td>refined</td>" in page and page.count("data:image/png;base64,") >= 5
    if kind == "sequential":
        assert '<section id="sequences">' in page


def test_one_error_line_names_the_dataset_every_reason_and_the_report(refused):
    dataset, result, logs = refused["dataset"], refused["result"], refused["logs"]
    checks = _checks(result)
    reasons = "; ".join(f"{n}: {checks[n].description}" for n in FAILING)
    report = checks["accuracy_floor"].metadata["report"].value
    errors = [m for m in _user_logs(logs, logging.ERROR) if "not published" in m]
    assert errors == [f"dataset '{dataset}' not published: {reasons}; report: {report}"]
    assert not [m for m in _user_logs(logs, logging.WARNING) if "could not be drawn" in m]


def test_the_columns_table_comes_from_source_data_when_it_has_a_schema(refused, tmp_path):
    kind, dataset, root, result = refused["kind"], refused["dataset"], refused["root"], refused["result"]
    source = result.output_for_node(f"{kind}__source_data")
    refined = result.output_for_node(f"{kind}__refined_output")
    store = MetricStoreResource(database=str(root / "metrics.duckdb")).store()
    schema = [{"column": "price", "kind": "numeric", "action": "model", "note": "rounded to whole dollars"},
              {"column": "row_id", "kind": "identifier", "action": "drop", "note": "unique per row"}]
    (tmp_path / "with").mkdir()
    (tmp_path / "without").mkdir()
    status = Status.refused(["accuracy_floor: below the floor"])
    page, _ = html_report(store, result.run_id, dataset, kind, refined, {**source, "schema": schema},
                          tmp_path / "with", status=status)
    text = page.read_text()
    assert "<h2>Columns</h2>" in text
    assert "<tr><td>row_id</td><td>identifier</td><td>drop</td><td>unique per row</td></tr>" in text
    without = {k: v for k, v in source.items() if k != "schema"}  # a source_data from before schemas
    plain, _ = html_report(store, result.run_id, dataset, kind, refined, without, tmp_path / "without", status=status)
    assert '<section id="schema">' not in plain.read_text()


BROKEN = "flat_broken_report"


@dg.asset(name=BROKEN, check_specs=[dg.AssetCheckSpec("privacy_gate", asset=BROKEN, blocking=True)])
def _broken_report(context: dg.AssetExecutionContext, metrics: MetricStoreResource):
    """explain_refusal on an output whose files are gone: the report cannot be drawn."""
    out = Path(metrics.database).parent
    failed = dg.AssetCheckResult(check_name="privacy_gate", passed=False, description="dcr_share 0.6 > 0.52",
                                 metadata={"dcr_share": 0.6})
    checks = explain_refusal(context, "flat", "broken", [failed], {"manifest": str(out / "gone.json")},
                             {"training": str(out / "gone.parquet")}, metrics, out)
    return dg.MaterializeResult(check_results=checks)


def test_a_report_that_cannot_be_drawn_leaves_the_check_failure_as_it_was(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    try:
        result = dg.materialize([_broken_report], instance=instance, resources=_resources(tmp_path),
                                raise_on_error=False)
        logs = instance.all_logs(result.run_id)
    finally:
        instance.dispose()
    [check] = result.get_asset_check_evaluations()
    assert check.passed is False and check.description == "dcr_share 0.6 > 0.52"
    assert set(check.metadata) == {"dcr_share"}
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "blocking asset check failed" in failure.step_failure_data.error.message  # the check's failure, no other
    [warning] = [m for m in _user_logs(logs, logging.WARNING) if "could not be drawn" in m]
    assert "FileNotFoundError" in warning
    errors = [m for m in _user_logs(logs, logging.ERROR) if "not published" in m]
    assert errors == ["dataset 'broken' not published: privacy_gate: dcr_share 0.6 > 0.52; "
                      "report: not written (see the warning above)"]
    assert not list(tmp_path.rglob("report.html"))


def test_a_published_run_is_headed_published_and_logs_no_refusal(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    try:
        result = dg.materialize(flat.ASSETS, partition_key="own_pool_flat", instance=instance,
                                resources=_resources(tmp_path))
        logs = instance.all_logs(result.run_id)
    finally:
        instance.dispose()
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert all("report" not in e.metadata for e in result.get_asset_check_evaluations())
    page = Path(result.output_for_node("flat__quality_report")["published"]["report"])
    assert page.parent.name == "published"
    assert '<div class="verdict pass">Published</div>' in page.read_text()
    assert not list((tmp_path / "artifacts").rglob("refined_output/report.html"))
    assert not [m for m in _user_logs(logs, logging.ERROR) if "not published" in m]
