"""Retention rules on a fake artifact tree whose folder ages are set with os.utime."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from synth_core.ops import DatasetSpec, apply_cleanup, plan_cleanup

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)


def _age(path: Path, days: float) -> Path:
    stamp = (NOW - timedelta(days=days)).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def _folder(path: Path, days: float, files: dict[str, object] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, content in (files or {}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content if isinstance(content, str) else json.dumps(content))
    return _age(path, days)  # last: writing inside a folder refreshes its mtime


def _run(ds: Path, run_id: str, days: float, generator_id: str | None = None) -> Path:
    files = {"source_data/training.parquet": "x" * 100}
    if generator_id:
        files["refined_output/manifest.json"] = {"run_id": run_id, "generator_id": generator_id}
        files["refined_output/output.parquet"] = "y" * 1000
    return _folder(ds / "runs" / run_id, days, files)


def _generator(ds: Path, key: str, generator_id: str, days: float) -> Path:
    return _folder(ds / "generators" / key, days,
                   {"generator.json": {"generator_id": generator_id}, "model.bin": "m" * 500})


@pytest.fixture()
def tree(tmp_path):
    """Datasets census (flat, 30 days), wages (sequential, 7 days), and an unlisted one."""
    root = tmp_path / "artifacts"
    census = root / "flat" / "census"
    paths = {
        "published_run": _run(census, "run-published", 90, generator_id="gen-A"),
        "old_run": _run(census, "run-old", 45, generator_id="gen-B"),
        "old_failed_run": _run(census, "run-failed", 31),  # failed before the output: no manifest
        "young_run": _run(census, "run-young", 10, generator_id="gen-C"),
        "old_pool": _folder(census / "pools" / "keyA-tag1", 40, {"shard-00000.parquet": "p" * 2000}),
        "young_pool": _folder(census / "pools" / "keyC-tag1", 5, {"shard-00000.parquet": "p"}),
        "published_gen": _generator(census, "keyA", "gen-A", 120),
        "old_gen": _generator(census, "keyB", "gen-B", 60),
        "old_gen_used_recently": _generator(census, "keyC", "gen-C", 60),
        "young_gen": _generator(census, "keyD", "gen-D", 3),
        "old_scratch": _folder(census / "generators" / ".keyE.abcd1234.tmp", 50, {"partial": "z"}),
        "published": _folder(census / "published", 200, {
            "manifest.json": {"run_id": "run-published", "generator_id": "gen-A"},
            "output.parquet": "o" * 100, "report.json": "{}"}),
    }
    wages = root / "sequential" / "wages"
    paths["wages_8d_run"] = _run(wages, "w-run-8d", 8)
    paths["wages_6d_run"] = _run(wages, "w-run-6d", 6)
    paths["unlisted_run"] = _run(root / "flat" / "retired", "r-old", 400)
    datasets = [
        DatasetSpec(name="census", kind="flat", source="census.csv"),  # retention_days defaults to 30
        DatasetSpec(name="wages", kind="sequential", source="demo:wages", group_key="worker", retention_days=7),
        DatasetSpec(name="never_ran", kind="flat", source="x.csv"),
    ]
    return root, datasets, paths


def test_plan_follows_the_rules(tree):
    root, datasets, p = tree
    plan = plan_cleanup(root, datasets, NOW)
    assert sorted(plan) == sorted([
        p["old_run"], p["old_failed_run"], p["old_pool"], p["old_gen"], p["old_scratch"], p["wages_8d_run"],
    ])
    kept = set(p.values()) - set(plan)
    assert {p["published_run"], p["published_gen"], p["published"], p["young_run"], p["young_pool"],
            p["old_gen_used_recently"], p["young_gen"], p["wages_6d_run"], p["unlisted_run"]} == kept


def test_now_accepts_naive_utc_and_timestamps(tree):
    root, datasets, _ = tree
    expected = sorted(plan_cleanup(root, datasets, NOW))
    assert sorted(plan_cleanup(root, datasets, NOW.replace(tzinfo=None))) == expected
    assert sorted(plan_cleanup(root, datasets, NOW.timestamp())) == expected
    # a year earlier nothing had expired yet (mtimes lie in that "future")
    assert plan_cleanup(root, datasets, NOW - timedelta(days=365)) == []


def test_apply_deletes_exactly_the_plan_and_keeps_the_published_output(tree):
    root, datasets, p = tree
    plan = plan_cleanup(root, datasets, NOW)
    report = apply_cleanup(plan)
    assert sorted(report.removed) == sorted(plan) and report.missing == []
    assert report.bytes_freed >= 100 + 1000 + 2000 + 500  # run, output, pool shard, model
    for path in plan:
        assert not path.exists()
    census = root / "flat" / "census"
    assert (census / "runs" / "run-published" / "refined_output" / "manifest.json").is_file()
    assert (census / "runs" / "run-published" / "refined_output" / "output.parquet").is_file()
    assert sorted(x.name for x in (census / "published").iterdir()) == ["manifest.json", "output.parquet",
                                                                        "report.json"]
    assert (census / "generators" / "keyA" / "generator.json").is_file()
    # idempotent: a second pass finds nothing, and deleting again is not an error
    assert plan_cleanup(root, datasets, NOW) == []
    again = apply_cleanup(plan)
    assert again.removed == [] and sorted(again.missing) == sorted(plan)


def test_unreadable_published_manifest_keeps_all_runs_and_generators(tree):
    root, datasets, p = tree
    (root / "flat" / "census" / "published" / "manifest.json").write_text("{not json")
    plan = plan_cleanup(root, datasets[:1], NOW)
    assert sorted(plan) == [p["old_pool"]]


def test_no_publication_yet_only_age_counts(tmp_path):
    root = tmp_path / "artifacts"
    ds = root / "flat" / "census"
    old = _run(ds, "r1", 40, generator_id="g1")
    gen = _generator(ds, "k1", "g1", 40)
    spec = DatasetSpec(name="census", kind="flat", source="census.csv")
    assert sorted(plan_cleanup(root, [spec], NOW)) == sorted([old, gen])


def test_apply_refuses_paths_outside_runs_pools_generators(tree):
    root, _, p = tree
    with pytest.raises(ValueError, match="refusing"):
        apply_cleanup([p["old_run"], p["published"]])
    with pytest.raises(ValueError, match="refusing"):
        apply_cleanup([root / "flat" / "census"])
    assert p["old_run"].exists() and p["published"].exists()  # nothing deleted before the check


def test_symlinks_are_neither_followed_nor_deleted(tmp_path):
    root = tmp_path / "artifacts"
    ds = root / "flat" / "census"
    outside = _folder(tmp_path / "elsewhere" / "precious", 100, {"keep.txt": "k"})
    (ds / "runs").mkdir(parents=True)
    link = ds / "runs" / "linked-run"
    link.symlink_to(outside, target_is_directory=True)
    spec = DatasetSpec(name="census", kind="flat", source="census.csv")
    assert plan_cleanup(root, [spec], NOW) == []
    with pytest.raises(ValueError, match="refusing"):
        apply_cleanup([link])
    assert (outside / "keep.txt").is_file()
