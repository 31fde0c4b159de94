"""Operations layer: the source-file sensor, the cleanup job and the schedules, with Dagster's test helpers.

The flat job's partitions come from the test catalog of tests/conftest.py (tiny_flat, empty_flat,
unknown_column, pool_too_small). The sensor is pointed at a temporary datasets file whose data files
the tests touch; its dataset names are partitions of that job.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from synth_core.ops import load_catalog
from synth_orchestration import common
from synth_orchestration.definitions import defs, flat_job
from synth_orchestration.operations import cleanup_job, cleanup_schedule, source_file_sensor, watched_files
from synth_orchestration.resources import ArtifactStore

HOUR = 3600.0


# --------------------------------------------------------------------------------------------
# helpers


def _set_mtime(path: Path, seconds_ago: float) -> None:
    stamp = time.time() - seconds_ago
    os.utime(path, (stamp, stamp))


def _rewrite(path: Path, text: str, seconds_ago: float = HOUR) -> None:
    path.write_text(text)
    _set_mtime(path, seconds_ago)


@pytest.fixture()
def catalog(tmp_path):
    """A datasets file with file-backed flat datasets (one file shared), a demo one and a sequential one."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("shared.csv", "shared-holdout.csv", "other.csv", "seq.csv", "extra.csv"):
        _rewrite(data / name, "a,b\n1,2\n", seconds_ago=2 * HOUR)
    entries = [
        {"name": "tiny_flat", "kind": "flat", "source": "data/shared.csv", "holdout": "data/shared-holdout.csv"},
        {"name": "pool_too_small", "kind": "flat", "source": "data/shared.csv"},
        {"name": "empty_flat", "kind": "flat", "source": str(data / "other.csv")},  # absolute path
        {"name": "diamonds", "kind": "flat", "source": "demo:diamonds"},
        {"name": "panel", "kind": "sequential", "source": "data/seq.csv", "group_key": "a"},
    ]
    path = tmp_path / "datasets.yaml"

    def write(extra: list[dict] | None = None) -> None:
        path.write_text(yaml.safe_dump({"datasets": entries + (extra or [])}))

    write()
    return path, data, write


def _sensor(path: Path, **kwargs) -> dg.SensorDefinition:
    return source_file_sensor(flat_job, "flat", catalog=lambda: (load_catalog(path, check_files=False), path.parent),
                              **kwargs)


def _tick(sensor: dg.SensorDefinition, cursor: str | None, instance: dg.DagsterInstance):
    return sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor, instance=instance, definitions=defs))


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


# --------------------------------------------------------------------------------------------
# source-file sensor


def test_watches_source_and_holdout_files_of_the_kind_only(catalog):
    path, data, _ = catalog
    files = watched_files(load_catalog(path, check_files=False), "flat", path.parent)
    assert files == {
        str((data / "shared.csv").resolve()): ["tiny_flat", "pool_too_small"],
        str((data / "shared-holdout.csv").resolve()): ["tiny_flat"],
        str((data / "other.csv").resolve()): ["empty_flat"],
    }


def test_first_tick_records_then_a_changed_file_requests_its_datasets(catalog, instance):
    path, data, _ = catalog
    sensor = _sensor(path)
    first = _tick(sensor, None, instance)
    assert first.run_requests == [] and "first tick" in first.skip_message
    cursor = json.loads(first.cursor)
    assert sorted(cursor) == sorted(str((data / n).resolve())
                                    for n in ("shared.csv", "shared-holdout.csv", "other.csv"))
    assert all(len(v) == 16 for v in cursor.values())

    quiet = _tick(sensor, first.cursor, instance)
    assert quiet.run_requests == [] and "no change" in quiet.skip_message and quiet.cursor == first.cursor

    _rewrite(data / "shared.csv", "a,b\n1,2\n3,4\n")
    changed = _tick(sensor, quiet.cursor, instance)
    requests = {r.partition_key: r for r in changed.run_requests}
    assert sorted(requests) == ["pool_too_small", "tiny_flat"]
    assert all(r.job_name in (None, "flat_pipeline") for r in requests.values())
    assert requests["tiny_flat"].tags["synth/trigger"] == "source_file_changed"
    assert requests["tiny_flat"].tags["dataset"] == "tiny_flat"
    assert requests["tiny_flat"].run_key.startswith("tiny_flat-")
    assert requests["tiny_flat"].run_key != requests["pool_too_small"].run_key
    # the same file versions give the same run keys (Dagster launches a run key once)
    replay = _tick(sensor, quiet.cursor, instance)
    assert [r.run_key for r in replay.run_requests] == [r.run_key for r in changed.run_requests]

    after = _tick(sensor, changed.cursor, instance)
    assert after.run_requests == []

    # a holdout change concerns only the dataset that reads it, with a new run key
    _rewrite(data / "shared-holdout.csv", "a,b\n9,9\n")
    holdout = _tick(sensor, after.cursor, instance)
    assert [r.partition_key for r in holdout.run_requests] == ["tiny_flat"]
    assert holdout.run_requests[0].run_key != requests["tiny_flat"].run_key


def test_same_size_rewrite_is_seen_through_mtime(catalog, instance):
    path, data, _ = catalog
    sensor = _sensor(path)
    start = _tick(sensor, None, instance).cursor
    _rewrite(data / "other.csv", "a,b\n1,2\n", seconds_ago=HOUR)  # same bytes, newer mtime
    assert [r.partition_key for r in _tick(sensor, start, instance).run_requests] == ["empty_flat"]


def test_a_file_still_being_written_waits_for_the_next_tick(catalog, instance):
    path, data, _ = catalog
    sensor = _sensor(path, settle_s=600)
    start = _tick(sensor, None, instance).cursor
    (data / "other.csv").write_text("a,b\n5,6\n")  # mtime: now
    waiting = _tick(sensor, start, instance)
    assert waiting.run_requests == [] and "settling" in waiting.skip_message
    assert waiting.cursor == start  # not recorded yet
    _set_mtime(data / "other.csv", 2 * 600)
    settled = _tick(sensor, waiting.cursor, instance)
    assert [r.partition_key for r in settled.run_requests] == ["empty_flat"]


def test_removed_file_runs_nothing_and_its_return_does(catalog, instance):
    path, data, _ = catalog
    sensor = _sensor(path)
    start = _tick(sensor, None, instance).cursor
    (data / "other.csv").unlink()
    gone = _tick(sensor, start, instance)
    assert gone.run_requests == []
    assert json.loads(gone.cursor)[str((data / "other.csv").resolve())] == "missing"
    _rewrite(data / "other.csv", "a,b\n7,8\n")
    back = _tick(sensor, gone.cursor, instance)
    assert [r.partition_key for r in back.run_requests] == ["empty_flat"]


def test_new_files_are_recorded_first_and_unknown_partitions_are_not_requested(catalog, instance):
    path, data, write = catalog
    sensor = _sensor(path)
    start = _tick(sensor, None, instance).cursor
    write([{"name": "not_a_partition", "kind": "flat", "source": "data/extra.csv"}])
    added = _tick(sensor, start, instance)
    assert added.run_requests == [] and str((data / "extra.csv").resolve()) in json.loads(added.cursor)
    _rewrite(data / "extra.csv", "a,b\n0,0\n")
    unknown = _tick(sensor, added.cursor, instance)
    assert unknown.run_requests == []  # the code location must be reloaded to know the dataset


def test_unreadable_datasets_file_skips_and_keeps_the_cursor(catalog, instance):
    path, _, _ = catalog
    sensor = _sensor(path)
    start = _tick(sensor, None, instance).cursor
    path.write_text("datasets: [\n")
    broken = _tick(sensor, start, instance)
    assert broken.run_requests == [] and "unreadable" in broken.skip_message
    assert broken.cursor in (None, start)


@pytest.mark.parametrize("kind", ["flat", "sequential"])
def test_each_kind_has_its_sensor_in_the_definitions(kind):
    sensor = defs.resolve_sensor_def(f"source_file_changed_{kind}")
    assert sensor.job_name == f"{kind}_pipeline"
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    dg.Definitions.validate_loadable(defs)


# --------------------------------------------------------------------------------------------
# cleanup job


def _age(path: Path, days: float) -> Path:
    stamp = time.time() - days * 86400
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture()
def artifact_tree(tmp_path):
    root = tmp_path / "artifacts"
    ds = root / "flat" / "tiny_flat"
    published_run = ds / "runs" / "run-pub" / "refined_output"
    published_run.mkdir(parents=True)
    (published_run / "manifest.json").write_text(json.dumps({"run_id": "run-pub", "generator_id": "g1"}))
    (ds / "runs" / "run-old" / "source_data").mkdir(parents=True)
    (ds / "published").mkdir()
    (ds / "published" / "manifest.json").write_text(json.dumps({"run_id": "run-pub", "generator_id": "g1"}))
    for folder in (ds / "runs" / "run-pub", ds / "runs" / "run-old"):
        _age(folder, 60)
    fresh = ds / "runs" / "run-new"
    fresh.mkdir()
    return root, ds


def test_cleanup_job_deletes_expired_runs_only(artifact_tree, instance):
    root, ds = artifact_tree
    assert any(d.name == "tiny_flat" and d.retention_days == 30 for d in common.DATASETS)
    resources = {"artifacts": ArtifactStore(artifact_root=str(root))}

    dry = cleanup_job.execute_in_process(
        resources=resources, instance=instance,
        run_config={"ops": {"delete_expired_artifacts": {"config": {"dry_run": True}}}},
    )
    assert dry.success
    summary = dry.output_for_node("delete_expired_artifacts")
    assert summary["planned"] == 1 and summary["deleted"] == 0
    assert summary["paths"] == ["flat/tiny_flat/runs/run-old"]
    assert (ds / "runs" / "run-old").exists()

    result = cleanup_job.execute_in_process(resources=resources, instance=instance)
    assert result.success
    assert result.output_for_node("delete_expired_artifacts")["deleted"] == 1
    assert sorted(p.name for p in (ds / "runs").iterdir()) == ["run-new", "run-pub"]
    assert (ds / "published" / "manifest.json").is_file()


def test_cleanup_skips_a_dataset_with_a_running_pipeline(artifact_tree):
    root, ds = artifact_tree
    with dg.instance_for_test() as inst:
        inst.add_run(dg.DagsterRun(job_name="flat_pipeline", run_id="busy-run", status=dg.DagsterRunStatus.STARTED,
                                   tags={"dagster/partition": "tiny_flat"}))
        result = cleanup_job.execute_in_process(resources={"artifacts": ArtifactStore(artifact_root=str(root))},
                                                instance=inst)
    assert result.success
    summary = result.output_for_node("delete_expired_artifacts")
    assert summary["skipped_busy"] == ["tiny_flat"] and summary["deleted"] == 0
    assert (ds / "runs" / "run-old").exists()


def test_cleanup_job_and_schedule_are_in_the_definitions():
    assert defs.resolve_job_def("cleanup_artifacts").name == "cleanup_artifacts"
    assert defs.resolve_schedule_def("cleanup_artifacts_daily").job_name == "cleanup_artifacts"


# --------------------------------------------------------------------------------------------
# schedules


def test_cleanup_schedule_runs_once_a_day():
    when = datetime(2025, 7, 1, 2, 30, tzinfo=UTC)
    data = cleanup_schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=when))
    assert [r.run_key for r in data.run_requests] == ["cleanup-20250701"]
    assert cleanup_schedule.cron_schedule == "30 2 * * *"
    assert cleanup_schedule.execution_timezone == "UTC"


@pytest.mark.parametrize("dataset", [d.name for d in common.DATASETS])
def test_regeneration_schedule_requests_the_dataset_partition(dataset):
    spec = next(d for d in common.DATASETS if d.name == dataset)
    schedule = defs.resolve_schedule_def(f"regenerate_{spec.kind}_{dataset}")
    assert schedule.cron_schedule == spec.schedule and schedule.job_name == f"{spec.kind}_pipeline"
    when = datetime(2025, 7, 7, 3, 0, tzinfo=UTC)
    context = dg.build_schedule_context(scheduled_execution_time=when, repository_def=defs.get_repository_def())
    data = schedule.evaluate_tick(context)
    assert len(data.run_requests) == 1
    request = data.run_requests[0]
    assert request.partition_key == dataset
    assert request.run_key == f"{dataset}-20250707T0300"
    assert request.tags["dataset"] == dataset

