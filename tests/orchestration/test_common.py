"""Settings merge of the assets (:mod:`synth_orchestration.common`), through a real Dagster run."""

# no `from __future__ import annotations`: Dagster resolves the config annotations at definition time
import dagster as dg
import pytest

from synth_orchestration.common import merged_settings


class _Knobs(dg.Config):
    flag: bool = True
    size: int = 3


DATASET_BLOCK = {"flag": False, "size": 5}


@dg.asset
def _merged(context: dg.AssetExecutionContext, config: _Knobs) -> dict:
    return merged_settings(context, config, DATASET_BLOCK, {"flag", "size"})


@dg.graph_asset
def _nested() -> dict:
    @dg.op
    def inner(context: dg.OpExecutionContext, config: _Knobs) -> dict:
        return merged_settings(context, config, DATASET_BLOCK, {"flag", "size"})

    return inner()


@pytest.mark.parametrize(("run_config", "expected"), [
    ({}, {"flag": False, "size": 5}),  # the dataset's block over the defaults
    ({"flag": True}, {"flag": True, "size": 5}),  # named in the run config: wins, though equal to the default
    ({"flag": True, "size": 3}, {"flag": True, "size": 3}),
])
def test_run_config_wins_over_the_dataset_block_even_at_the_default_value(run_config, expected):
    plain = dg.materialize([_merged], run_config={"ops": {"_merged": {"config": run_config}}})
    assert plain.output_for_node("_merged") == expected
    nested = dg.materialize([_nested], run_config={"ops": {"_nested": {"ops": {"inner": {"config": run_config}}}}})
    assert nested.output_for_node("_nested") == expected


def test_unknown_dataset_setting_is_refused_by_name():
    @dg.asset
    def bad(context: dg.AssetExecutionContext, config: _Knobs) -> dict:
        return merged_settings(context, config, {"colour": 1}, {"flag", "size"})

    result = dg.materialize([bad], raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error.cause
    assert error.cls_name == "InputError" and "unknown setting 'colour' in the dataset's overrides" in error.message
