"""Dagster definitions: the flat and sequential graphs, their jobs, schedules and sensors, and the resources."""

from __future__ import annotations

import os

import dagster as dg

from synth_orchestration.assets import flat, sequential
from synth_orchestration.common import datasets_of
from synth_orchestration.deploy_tags import executor_from_env
from synth_orchestration.operations import cleanup_job, cleanup_schedule, source_file_sensor
from synth_orchestration.resources import ArtifactStore, MetricStoreResource
from synth_orchestration.schedules import regeneration_schedule

flat_job = dg.define_asset_job(
    "flat_pipeline",
    selection=dg.AssetSelection.groups("flat"),
    description="Train, generate a pool of rows, select the best-fitting subset (MI pairs, IPF, trimming, "
    "refinement), evaluate, gate and publish.",
)

sequential_job = dg.define_asset_job(
    "sequential_pipeline",
    selection=dg.AssetSelection.groups("sequential"),
    description="Train, generate a pool of groups, select whole groups (coherence, then group swaps), "
    "evaluate, gate and publish.",
)

JOBS = {"flat": flat_job, "sequential": sequential_job}


def _resources() -> dict:
    resources = {"artifacts": ArtifactStore(), "metrics": MetricStoreResource()}
    if os.environ.get("SYNTH_IO_DIR"):  # step outputs on a volume every step pod mounts (k8s executor)
        resources["io_manager"] = dg.FilesystemIOManager(base_dir=os.environ["SYNTH_IO_DIR"])
    return resources


defs = dg.Definitions(
    assets=[*flat.ASSETS, *sequential.ASSETS],
    jobs=[flat_job, sequential_job, cleanup_job],
    schedules=[
        *(regeneration_schedule(spec, JOBS[kind]) for kind in JOBS for spec in datasets_of(kind)),
        cleanup_schedule,
    ],
    sensors=[source_file_sensor(job, kind) for kind, job in JOBS.items()],
    resources=_resources(),
    executor=executor_from_env(),
)
