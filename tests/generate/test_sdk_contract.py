"""The SDK's private API and file layout that ``synth_core.generate._sdk`` relies on still hold.

One tiny real DP training (300 census rows x 4 columns, one epoch of the small model, CPU; marked
``slow``) and one sample: each assumption is checked where it is used, so that an SDK upgrade
that moves something fails here by name rather than turning a value into None elsewhere. Run it
after changing the installed ``mostlyai`` (and then update ``_sdk.TESTED_SDK_VERSION``).
"""

from __future__ import annotations

import logging
import subprocess

import pandas as pd
import pytest

import synth_core.generate._generator as gen
from synth_core.generate import _sdk
from synth_core.generate._generator import DPTraining, TrainingSettings, train_flat

LOGGER = "synth_core.generate._sdk"


# ------------------------------------------------------------------------------- version check


def test_a_different_sdk_version_warns_once_naming_both(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert _sdk.check_sdk_version("0.0.1") is False
    warnings = [r for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    message = warnings[0].getMessage()
    assert "\n" not in message
    assert "0.0.1" in message and _sdk.TESTED_SDK_VERSION in message and "layout" in message


def test_the_tested_sdk_version_is_silent(caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    assert _sdk.check_sdk_version(_sdk.TESTED_SDK_VERSION) is True
    assert not [r for r in caplog.records if r.name == LOGGER]


def test_the_version_is_checked_once_per_process(tmp_path, monkeypatch, caplog):
    # a client for this home exists already: _client returns it without starting the SDK
    monkeypatch.setitem(_sdk._CLIENTS, tmp_path.resolve(), "client")
    monkeypatch.setattr(_sdk, "_VERSION_CHECKED", False)
    monkeypatch.setattr(_sdk, "_versions", lambda: ("0.0.1", None))
    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert _sdk._client(tmp_path) == "client" and _sdk._client(tmp_path) == "client"
    assert len([r for r in caplog.records if r.name == LOGGER]) == 1


def test_a_training_without_a_progress_file_fails_naming_the_folder(tmp_path):
    with pytest.raises(_sdk.EngineError, match="epochs could not be read") as caught:
        _sdk.training_progress(tmp_path, "g-1")
    assert str(tmp_path) in str(caught.value) and "\n" not in str(caught.value)
    folder = tmp_path / "ModelStore" / "tabular" / "model-data"
    folder.mkdir(parents=True)
    (folder / "progress-messages.csv").write_text("steps,trn_loss\n3,2.5\n")  # the engine renamed its columns
    with pytest.raises(_sdk.EngineError, match="epochs could not be read"):
        _sdk.training_progress(tmp_path, "g-1")
    (folder / "progress-messages.csv").write_text("epoch,steps,total_time\n0.5,3,1.5\n1.0,6,2.5\n")
    assert _sdk.training_progress(tmp_path, "g-1") == (1.0, 2.5)


# ------------------------------------------------------------------------------- the real SDK


@pytest.mark.slow
def test_the_sdks_layout_holds(tmp_path, census_paths, monkeypatch):
    pytest.importorskip("mostlyai.sdk")
    import rich

    training = pd.read_csv(census_paths["training"]).iloc[:300, :4]
    settings = TrainingSettings(model_size="small", max_epochs=1, seed=0, device="cpu")

    # job processes are found by their command line: the SDK names the job's id in it
    commands: list[str] = []
    popen = subprocess.Popen

    class Recording(popen):
        def __init__(self, args, *rest, **kwargs):
            commands.append(" ".join(map(str, args)) if isinstance(args, (list, tuple)) else str(args))
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    # the running training's progress file (RUNNING_PROGRESS_GLOB under in_progress/<id>/)
    monkeypatch.setattr(gen, "PROGRESS_SECONDS", 0.2)
    running: list[float | None] = []
    quiet = rich.get_console().quiet

    handle = train_flat(training, tmp_path / "g", settings, name="sdk-contract",
                        dp=DPTraining(max_epsilon=4.0, delta=1e-6),
                        progress=lambda epochs, elapsed, eta: running.append(epochs))
    monkeypatch.setattr(subprocess, "Popen", popen)

    assert rich.get_console().quiet == quiet  # the console flipped to silence the SDK is put back
    assert any(handle.generator_id in c for c in commands), commands
    assert any(e is not None for e in running), running
    # the finished model: generators/<id>/ with one progress file per table (PROGRESS_GLOB)
    assert handle.model_dir == tmp_path / "g" / "mostlyai" / _sdk.SDK_GENERATORS_DIR / handle.generator_id
    assert list(handle.model_dir.glob(_sdk.PROGRESS_GLOB))
    epochs, seconds = _sdk._training_progress(handle.model_dir)
    assert handle.epochs == epochs and epochs > 0 and seconds is not None and seconds > 0
    # the DP spend in the same file
    eps, delta = _sdk._dp_spent(handle.model_dir)
    assert (handle.dp_epsilon, handle.dp_delta) == (eps, delta)
    assert 0 < eps <= 4.0 and 0 < delta <= 1e-6

    # sampling: the generation job runs here (the SDK's private job function) and leaves its parts
    # in OUTPUT_ZIP under synthetic-datasets/<id>/
    assert _sdk._generate_here("auto")
    zips = []
    read = gen._read_synthetic

    def reading(sd_dir, sd):
        assert sd_dir.parent == handle.sdk_home / _sdk.SDK_DATASETS_DIR
        zips.append((sd_dir / _sdk.OUTPUT_ZIP).is_file())
        return read(sd_dir, sd)

    monkeypatch.setattr(gen, "_read_synthetic", reading)
    sample = handle.sample(40, seed=0)
    handle.close()
    assert zips == [True]
    assert list(sample.columns) == list(training.columns) and len(sample) == 40
