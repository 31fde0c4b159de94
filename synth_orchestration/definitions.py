"""Dagster definitions: the flat graph, its job and schedules, and the resources."""

from __future__ import annotations

import dagster as dg

from synth_orchestration.assets import flat
from synth_orchestration.common import datasets_of
from synth_orchestration.operations import cleanup_job, cleanup_schedule, source_file_sensor
from synth_orchestration.resources import ArtifactStore, MetricStoreResource
from synth_orchestration.schedules import regeneration_schedule

flat_job = dg.define_asset_job(
    "flat_pipeline",
    selection=dg.AssetSelection.groups("flat"),
    partitions_def=flat.PARTITIONS,
    description="Train, generate a pool, select the best-fitting subset, evaluate, gate and publish.",
)

defs = dg.Definitions(
    assets=flat.ASSETS,
    jobs=[flat_job, cleanup_job],
    schedules=[*(regeneration_schedule(spec, flat_job) for spec in datasets_of("flat")), cleanup_schedule],
    sensors=[source_file_sensor(flat_job, "flat")],
    resources={"artifacts": ArtifactStore(), "metrics": MetricStoreResource()},
)
