"""A failed engine job says why in one line: the engine's own exception and the job's log.

The engine tests fail real jobs on purpose (tiny data, CPU): a month-name column forced to the
engine's datetime encoding (the SDK turns "Nov" into year 1, out of pandas' nanosecond range),
and generation from a generator whose weights were overwritten. They are marked ``slow``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import synth_core.generate._generator as gen
from synth_core.generate._generator import TrainingSettings, _generate_tables, train_flat
from synth_core.generate._sdk import (
    JOB_OUTPUT_LOG,
    MAX_REASON_CHARS,
    SDK_JOB_LOG,
    EngineError,
    _engine_reason,
    _job_failure,
)

TINY = dict(model_size="small", max_epochs=1, max_training_time_min=None, seed=1, device="cpu")
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "June", "July", "Aug", "Sept", "Oct", "Nov", "Dec"]

# a job log as the training job's stderr holds it: opacus' root-logger prefix, then the uncaught
# exception again as Python prints it
ENGINE_LOG = """\
12/06/2026 04:50:52:ERROR:Traceback (most recent call last):
  File "/venv/mostlyai/sdk/_local/execution/jobs.py", line 644, in execute_training_job
    execution.run()
    ^^^^^^^^^^^^^^^
pandas.errors.OutOfBoundsDatetime: Out of bounds nanosecond timestamp: 1-11-01 00:00:00

12/06/2026 04:50:52:ERROR:Exception type: <class 'pandas.errors.OutOfBoundsDatetime'>
Traceback (most recent call last):
  File "/venv/mostlyai/sdk/_local/cli.py", line 45, in <module>
    run_cli()
KeyError: 'first'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/venv/mostlyai/sdk/_local/cli.py", line 45, in <module>
    run_cli()
pandas.errors.OutOfBoundsDatetime: Out of bounds nanosecond timestamp: 1-02-01 00:00:00
  (a second line of the message)
"""


def _engine():
    pytest.importorskip("mostlyai.sdk")


def _assert_one_line(message: str, exception: str, log_name: str) -> None:
    assert "\n" not in message
    assert f"failed: {exception}: " in message
    log = message.rsplit("; log: ", 1)[1]
    assert log.endswith(log_name)
    assert exception in open(log).read()  # the log named holds the engine's traceback


# ------------------------------------------------------------------------------- the log's reason


def test_reason_is_the_last_tracebacks_exception_without_its_module(tmp_path):
    log = tmp_path / JOB_OUTPUT_LOG
    log.write_text(ENGINE_LOG)
    assert _engine_reason(log) == "OutOfBoundsDatetime: Out of bounds nanosecond timestamp: 1-02-01 00:00:00"


def test_no_traceback_no_reason(tmp_path):
    log = tmp_path / JOB_OUTPUT_LOG
    log.write_text("[2026-12-06 04:50:52] INFO   : training started\n")
    assert _engine_reason(log) is None
    assert _engine_reason(tmp_path / "missing.log") is None


def test_failure_message_names_reason_and_log_and_is_cut(tmp_path):
    (tmp_path / SDK_JOB_LOG).write_text("Traceback (most recent call last):\n  File x\nValueError: "
                                        + "v" * 1000 + "\n")
    message = str(_job_failure("training of generator g1", tmp_path, "FAILED"))
    assert message.startswith("training of generator g1 failed: ValueError: vvv")
    assert message.endswith(f"…; log: {tmp_path / SDK_JOB_LOG}")
    reason = message[len("training of generator g1 failed: "):message.index("; log: ")]
    assert len(reason) == MAX_REASON_CHARS


def test_failure_without_a_log_falls_back_to_the_caught_exception(tmp_path):
    error = _job_failure("generation s1 from generator g1", tmp_path, "FAILED", error="KeyError: 'a'\nmore")
    assert str(error) == f"generation s1 from generator g1 failed: KeyError: 'a' more; log: {tmp_path}"
    silent = _job_failure("training of generator g1", tmp_path, "CANCELED")
    assert str(silent) == (f"training of generator g1 ended with status CANCELED and left no exception in its log; "
                           f"log: {tmp_path}")


# ------------------------------------------------------------------------------- real engine jobs


@pytest.mark.slow
def test_failed_training_names_the_engines_exception_and_log(tmp_path, monkeypatch):
    _engine()
    original = gen._column_configs

    def month_as_datetime(*args, **kwargs):  # whatever the columns' encodings, force this one
        return [{**c, "model_encoding_type": "TABULAR_DATETIME"} if c["name"] == "month" else c
                for c in original(*args, **kwargs)]

    monkeypatch.setattr(gen, "_column_configs", month_as_datetime)
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"month": rng.choice(MONTHS, 200), "x": rng.normal(size=200)})
    with pytest.raises(EngineError) as caught:
        train_flat(df, tmp_path / "wd", TrainingSettings(**TINY), name="months")
    message = str(caught.value)
    assert message.startswith("training of generator ")
    assert "OutOfBoundsDatetime: Out of bounds nanosecond timestamp" in message
    _assert_one_line(message, "OutOfBoundsDatetime", JOB_OUTPUT_LOG)


@pytest.mark.slow
@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "child-process"])
def test_failed_generation_names_the_engines_exception_and_keeps_its_log(broken_handle, in_process):
    with pytest.raises(EngineError) as caught:
        _generate_tables(broken_handle, 10, seed=1, temperature=1.0, in_process=in_process)
    message = str(caught.value)
    assert message.startswith("generation ") and f"from generator {broken_handle.generator_id} failed: " in message
    _assert_one_line(message, "UnpicklingError", JOB_OUTPUT_LOG)


@pytest.fixture(scope="module")
def broken_handle(tmp_path_factory):
    """A tiny trained generator whose weights file was then overwritten: every generation fails."""
    _engine()
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.choice(["x", "y", "z"], 200), "x": rng.normal(size=200)})
    handle = train_flat(df, tmp_path_factory.mktemp("broken"), TrainingSettings(**TINY), name="broken")
    weights = list(handle.model_dir.glob("ModelStore/*/model-data/model-weights.pt"))
    assert weights, "the engine's weights file moved: adapt this fixture"
    for path in weights:
        path.write_bytes(b"not a torch file")
    return handle
