"""Real public tables a new user might bring, run through the graphs with the product's defaults and a
small training budget (the fastest cases of ``benchmarks/bench_corpus.py``; the whole corpus is a benchmark)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from synth_orchestration.assets import flat, sequential
from synth_orchestration.resources import ArtifactStore, MetricStoreResource

pytestmark = pytest.mark.slow


def _run(root: Path, assets, partition: str):
    result = dg.materialize(
        assets, partition_key=partition, raise_on_error=False,
        resources={"artifacts": ArtifactStore(artifact_root=str(root / "artifacts")),
                   "metrics": MetricStoreResource(database=str(root / "metrics.duckdb"))})
    meta = {m.materialization.asset_key.to_user_string(): m.materialization.metadata
            for m in result.get_asset_materialization_events()}
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    return result, meta, checks


def _published(root: Path, kind: str, name: str) -> pd.DataFrame:
    return pd.read_csv(root / "artifacts" / kind / name / "published" / "output.csv")


def test_month_and_weekday_names_train_as_categories_and_dates_come_back_as_text(tmp_path):
    source = pd.read_csv(Path(__import__("os").environ["SYNTH_DATASETS"]).parent / "cholera.csv")
    result, meta, checks = _run(tmp_path, flat.ASSETS, "real_cholera")
    kinds = meta["flat/source_data"]["column_kinds"].data
    assert kinds == {"rownames": "identifier", "month": "categorical", "cause_of_death": "categorical",
                     "day_of_month": "integer", "deaths": "integer", "date": "datetime", "day_of_week": "categorical"}
    # training and generation ran (no engine error); accuracy and integrity hold
    assert checks["accuracy_floor"].passed and checks["integrity"].passed
    # 584 training rows: 20 x the target would be 11,680 rows; a small table gets MIN_POOL_ROWS
    assert meta["flat/candidate_pool"]["pool_rows"].value == 20_000
    # the output (published, or refused and kept in its run folder) has dates back as text
    run = next((tmp_path / "artifacts/flat/real_cholera/runs").iterdir()) / "refined_output"
    out = pd.read_parquet(run / "output.parquet")
    assert "rownames" not in out.columns  # an index: left out of the twin
    assert out["date"].str.fullmatch(r"18\d\d-\d\d-\d\d").all()  # text in the source's format
    assert set(out["month"]) <= set(source["month"]) and set(out["day_of_week"]) <= set(source["day_of_week"])
    manifest = json.loads((run / "manifest.json").read_text())
    assert {c["column"]: c["datetime_format"] for c in manifest["schema"]}["date"] == "%Y-%m-%d"


def test_a_table_of_duplicates_passes_the_powered_copy_rule(tmp_path):
    result, meta, checks = _run(tmp_path, flat.ASSETS, "real_titanic")
    assert checks["privacy_gate"].passed, checks["privacy_gate"].description
    assert result.success, {k: c.description for k, c in checks.items() if not c.passed}
    figures = json.loads((tmp_path / "artifacts/flat/real_titanic/published/report.json").read_text())
    privacy = figures["evaluation"]["final"]["privacy"]
    # nearly every row copies some training row (four categorical columns), and as many copy the holdout
    assert privacy["exact_copy_training"] > 0.5 and privacy["exact_copy_holdout"] > 0.5


def test_a_real_panel_publishes_through_the_sequential_graph(tmp_path):
    result, meta, checks = _run(tmp_path, sequential.ASSETS, "real_ohio")
    assert result.success, {k: c.description for k, c in checks.items() if not c.passed}
    out = _published(tmp_path, "sequential", "real_ohio")
    assert out.groupby("id")["smoke"].nunique().eq(1).all()  # context stays constant within a child
