"""A failed engine job fails its step with the library's one line (the engine's reason and log),
in the step failure, the run's event log and the headless runner's output. Training is replaced
by a job failure read from a real-format log, so nothing is trained here
(tests/generate/test_engine_failure.py fails real jobs)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

import synth_core.generate
from synth_core.generate._generator import JOB_OUTPUT_LOG, _job_failure
from synth_orchestration import demo
from synth_orchestration.assets import flat
from synth_orchestration.resources import ArtifactStore, MetricStoreResource

LOG = """\
12/06/2026 04:50:52:ERROR:Traceback (most recent call last):
  File "/venv/mostlyai/sdk/_data/dtype.py", line 324, in coerce_dtype_by_encoding
    x = x.astype("datetime64[ns]")
pandas.errors.OutOfBoundsDatetime: Out of bounds nanosecond timestamp: 1-02-01 00:00:00
"""


@pytest.fixture
def failing_training(tmp_path, monkeypatch) -> str:
    """Make every flat training fail as the engine does; returns the expected one-line message."""
    job_dir = tmp_path / "generators" / "g-test"
    job_dir.mkdir(parents=True)
    (job_dir / JOB_OUTPUT_LOG).write_text(LOG)
    error = _job_failure("training of generator g-test", job_dir, "FAILED")

    def train_flat(*args, **kwargs):
        raise error

    monkeypatch.setattr(synth_core.generate, "train_flat", train_flat)
    return str(error)


def test_engine_failure_is_the_steps_one_line_failure(tmp_path, failing_training):
    assert failing_training == ("training of generator g-test failed: OutOfBoundsDatetime: Out of bounds nanosecond "
                                "timestamp: 1-02-01 00:00:00; "
                                f"log: {tmp_path / 'generators' / 'g-test' / JOB_OUTPUT_LOG}")
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            flat.ASSETS,
            selection=["flat/source_data", "flat/trained_generator"],
            partition_key="tiny_flat",
            resources={"artifacts": ArtifactStore(artifact_root=str(tmp_path / "artifacts")),
                       "metrics": MetricStoreResource(database=str(tmp_path / "metrics.duckdb"))},
            instance=instance,
            raise_on_error=False,
        )
        # the run's event log, which the UI shows
        logged = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    assert not result.success
    assert [e.dagster_event.step_key for e in logged] == ["flat__trained_generator"]
    # the scratch folder is gone, so the job's log is kept beside the dataset's generators, and named
    description = logged[0].dagster_event.step_failure_data.user_failure_data.description
    head, kept = description.split("; log: ")
    assert head == failing_training.split("; log: ")[0] and "\n" not in description
    assert Path(kept).parent.name == "generators" and Path(kept).read_text() == LOG


def test_runner_prints_the_line_and_exits_2(tmp_path, monkeypatch, capsys, failing_training):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    assert demo.main(["--label", "run", "--dataset", "tiny_flat"]) == 2
    err = capsys.readouterr().err.splitlines()
    failed = [line for line in err if line.startswith("run: step flat__trained_generator failed: ")]
    assert len(failed) == 1 and failing_training.split("; log: ")[0] in failed[0]
    assert Path(tmp_path / "dagster_home" / "dagster.yaml").is_file()  # the run went to that instance
