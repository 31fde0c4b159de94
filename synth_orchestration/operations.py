"""Operations: artifact retention (job + daily schedule) and sensors on the datasets' source files.

* ``cleanup_artifacts``: deletes run folders, pools and unreferenced generators older than each
  dataset's ``retention_days`` (rules in :mod:`synth_core.ops._retention`); never the published output
  or its run. Datasets with a queued or running pipeline run are skipped that day.
* ``cleanup_artifacts_daily``: the schedule of that job (02:30 UTC; stopped until switched on).
* :func:`source_file_sensor`: one sensor per kind (``source_file_changed_<kind>``) that watches
  the source and holdout files of the kind's file-backed datasets and requests a run of the
  kind's job for each dataset whose file changed.
"""

# No "from __future__ import annotations": Dagster reads the op's config annotation at runtime.

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import dagster as dg
from pydantic import Field

from synth_core.errors import InputError
from synth_core.ops import (
    DEMO_DATASETS,
    DEMO_PREFIX,
    DatasetSpec,
    apply_cleanup,
    default_catalog_path,
    load_catalog,
    plan_cleanup,
)
from synth_orchestration import common
from synth_orchestration.resources import PROJECT_ROOT, ArtifactStore

# Runs in these states may still read or write their artifact folders.
ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
PARTITION_TAG = "dagster/partition"
MISSING = "missing"
MAX_LISTED = 50


# --------------------------------------------------------------------------------------------
# Retention


class CleanupConfig(dg.Config):
    """Run configuration of the artifact cleanup."""

    dry_run: bool = Field(default=False, description="only list what would be deleted")


def _busy_datasets(instance: dg.DagsterInstance, own_run_id: str | None) -> set[str]:
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES))
    return {r.tags[PARTITION_TAG] for r in runs if r.run_id != own_run_id and PARTITION_TAG in r.tags}


def _path_list(listed: list[str]) -> str:
    if not listed:
        return "nothing to delete"
    lines = [f"- `{p}`" for p in listed[:MAX_LISTED]]
    if len(listed) > MAX_LISTED:
        lines.append(f"- … and {len(listed) - MAX_LISTED} more")
    return "\n".join(lines)


@dg.op(name="delete_expired_artifacts", description="Delete artifact folders older than each dataset's retention_days.")
def cleanup_artifacts_op(context: dg.OpExecutionContext, config: CleanupConfig, artifacts: ArtifactStore) -> dict:
    """Delete the expired artifact folders of the datasets without a queued or running run; return a summary."""
    datasets = list(common.catalog().datasets)
    busy = _busy_datasets(context.instance, context.run_id)
    if busy:
        context.log.info(f"skipping datasets with a queued or running pipeline run: {', '.join(sorted(busy))}")
    datasets = [d for d in datasets if d.name not in busy]
    plan = plan_cleanup(artifacts.artifact_root, datasets)
    root = Path(artifacts.artifact_root)
    listed = [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in plan]
    if config.dry_run:
        removed, freed = [], 0
        context.log.info(f"dry run: would delete {len(plan)} folder(s)")
    else:
        report = apply_cleanup(plan)
        removed, freed = report.removed, report.bytes_freed
        context.log.info(f"deleted {len(report.removed)} folder(s), {freed / 2**20:.1f} MiB")
    summary = {
        "planned": len(plan),
        "deleted": len(removed),
        "bytes_freed": int(freed),
        "dry_run": config.dry_run,
        "skipped_busy": sorted(busy),
        "paths": listed,
    }
    context.add_output_metadata({
        "planned": dg.MetadataValue.int(len(plan)),
        "deleted": dg.MetadataValue.int(len(removed)),
        "mib_freed": dg.MetadataValue.float(round(freed / 2**20, 3)),
        "dry_run": dg.MetadataValue.bool(config.dry_run),
        "skipped_busy": dg.MetadataValue.text(", ".join(sorted(busy)) or "none"),
        "paths": dg.MetadataValue.md(_path_list(listed)),
    })
    return summary


@dg.job(name="cleanup_artifacts", description="Retention: delete old run folders, pools and unused generators.")
def cleanup_job():
    """One run of :func:`cleanup_artifacts_op`."""
    cleanup_artifacts_op()


@dg.schedule(
    name="cleanup_artifacts_daily",
    cron_schedule="30 2 * * *",
    job=cleanup_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Apply the datasets' retention_days every night (02:30 UTC).",
)
def cleanup_schedule(context: dg.ScheduleEvaluationContext):
    """One cleanup run per scheduled day."""
    # one run per scheduled day (the daemon always sets the scheduled time)
    return dg.RunRequest(run_key=f"cleanup-{context.scheduled_execution_time.strftime('%Y%m%d')}")


# --------------------------------------------------------------------------------------------
# Source-file sensors


def current_catalog() -> tuple[list[DatasetSpec], Path]:
    """The datasets file as it is now (``$SYNTH_DATASETS`` or ``<repo>/datasets.yaml``) and its folder.

    Read at every sensor evaluation, so an edited datasets file is seen without a reload (a new
    dataset still needs a reload of the code location to become a partition). Missing source
    files are not an error here: the sensor reports them as missing.
    """
    path = default_catalog_path(PROJECT_ROOT)
    if not path.exists():
        return list(DEMO_DATASETS), path.parent
    return load_catalog(path, check_files=False), path.parent


def watched_files(datasets: list[DatasetSpec], kind: str, base: Path) -> dict[str, list[str]]:
    """Absolute file path → the datasets (of ``kind``) that read it; ``demo:`` sources are skipped."""
    files: dict[str, list[str]] = defaultdict(list)
    for spec in datasets:
        if spec.kind != kind:
            continue
        for location in (spec.source, spec.holdout):
            if not location or location.startswith(DEMO_PREFIX):
                continue
            path = Path(location)
            path = path if path.is_absolute() else base / path
            key = str(path.resolve())
            if spec.name not in files[key]:
                files[key].append(spec.name)
    return dict(files)


def file_fingerprint(path: str | Path) -> tuple[str, float | None]:
    """(hash of mtime and size, mtime) of a file; (``"missing"``, None) when it does not exist."""
    try:
        stat = Path(path).stat()
    except FileNotFoundError:
        return MISSING, None
    digest = hashlib.sha256(f"{stat.st_mtime_ns}:{stat.st_size}".encode()).hexdigest()[:16]
    return digest, stat.st_mtime


def _run_key(dataset: str, fingerprints: dict[str, str]) -> str:
    joined = json.dumps(sorted(fingerprints.items()))
    return f"{dataset}-{hashlib.sha256(joined.encode()).hexdigest()[:16]}"


def _partition_keys(context: dg.SensorEvaluationContext, job) -> set[str] | None:
    """The job's partition keys as the code location knows them (None when unknown)."""
    partitions_def = None
    if context.repository_def is not None:
        partitions_def = context.repository_def.get_job(job.name).partitions_def
    if partitions_def is None:
        partitions_def = getattr(job, "partitions_def", None)
    return set(partitions_def.get_partition_keys()) if partitions_def is not None else None


def source_file_sensor(
    job,
    kind: str,
    *,
    catalog: Callable[[], tuple[list[DatasetSpec], Path]] = current_catalog,
    settle_s: float = 60.0,
    minimum_interval_seconds: int = 60,
    name: str | None = None,
) -> dg.SensorDefinition:
    """A sensor requesting a run of ``job`` for each ``kind`` dataset whose source/holdout file changed.

    The cursor is a JSON object mapping each watched file to a hash of its mtime and size. A file
    seen for the first time (and so the very first tick) is recorded without a run. A changed file
    younger than ``settle_s`` seconds may still be being written: it is looked at again on the next
    tick. The run key is derived from the fingerprints of all the dataset's files, so one version
    of the files gives at most one run. A file that disappears is recorded and logged, with no run.
    """
    @dg.sensor(
        name=name or f"source_file_changed_{kind}",
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"Run the {kind} graph for a dataset whose source or holdout file changed.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        try:
            datasets, base = catalog()
        except InputError as exc:
            return dg.SkipReason(f"datasets file unreadable, nothing checked: {exc}")
        files = watched_files(datasets, kind, base)
        previous = json.loads(context.cursor) if context.cursor else None
        now = time.time()
        cursor: dict[str, str] = {}
        changed: dict[str, list[str]] = defaultdict(list)  # dataset -> changed files
        waiting: list[str] = []
        for path in sorted(files):
            fingerprint, mtime = file_fingerprint(path)
            old = None if previous is None else previous.get(path)
            if old is None or old == fingerprint:
                cursor[path] = fingerprint
                continue
            if fingerprint == MISSING:
                context.log.warning(f"{path} disappeared; datasets {', '.join(files[path])} keep their last output")
                cursor[path] = fingerprint
                continue
            if mtime is not None and now - mtime < settle_s:
                cursor[path] = old  # still settling: compare again on the next tick
                waiting.append(path)
                continue
            cursor[path] = fingerprint
            for dataset in files[path]:
                changed[dataset].append(path)

        known = _partition_keys(context, job)
        requests = []
        for dataset in sorted(changed):
            if known is not None and dataset not in known:
                context.log.warning(f"dataset {dataset!r} is not a partition of {job.name}; reload the code location")
                continue
            own = {p: cursor[p] for p, names in files.items() if dataset in names}
            requests.append(dg.RunRequest(
                run_key=_run_key(dataset, own),
                partition_key=dataset,
                tags={"dataset": dataset, "synth/trigger": "source_file_changed",
                      "synth/changed_files": ",".join(Path(p).name for p in changed[dataset])[:200]},
            ))
        new_cursor = json.dumps(cursor, sort_keys=True)
        if previous is None:
            return dg.SensorResult(skip_reason=f"first tick: recorded {len(cursor)} file(s)", cursor=new_cursor)
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=new_cursor)
        reason = f"no change in {len(cursor)} file(s)"
        if waiting:
            reason += f"; {len(waiting)} changed file(s) still settling"
        return dg.SensorResult(skip_reason=reason, cursor=new_cursor)

    return _sensor
