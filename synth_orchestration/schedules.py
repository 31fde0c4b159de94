"""Regeneration schedules: one per dataset, on the cron given in the datasets file."""

from __future__ import annotations

import dagster as dg

from synth_core.ops import DatasetSpec


def regeneration_schedule(spec: DatasetSpec, job) -> dg.ScheduleDefinition:
    """Launch the whole graph for this dataset's partition on its cron (default weekly)."""

    @dg.schedule(
        name=f"regenerate_{spec.kind}_{spec.name}".replace("-", "_").replace(".", "_"),
        cron_schedule=spec.schedule,
        job=job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Regenerate the {spec.kind} twin of {spec.name!r} ({spec.schedule}).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        stamp = context.scheduled_execution_time.strftime("%Y%m%dT%H%M") if context.scheduled_execution_time else "now"
        return dg.RunRequest(run_key=f"{spec.name}-{stamp}", partition_key=spec.name, tags={"dataset": spec.name})

    return _schedule
