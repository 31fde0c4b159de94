"""The Dagster side of synth-twin: the flat and sequential graphs over :mod:`synth_core`, their checks,
jobs, schedules, sensors and resources (:mod:`synth_orchestration.definitions` gathers them)."""
