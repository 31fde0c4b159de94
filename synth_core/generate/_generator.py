"""Generator wrapper: train a MOSTLY AI generator locally and sample from it.

Design, rationale and measured figures: ``docs/design/generator.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synth_core.errors import InputError
from synth_core.generate._sdk import (
    JOB_OUTPUT_LOG,  # noqa: F401  (importable from here, as before the SDK's internals moved to _sdk)
    EngineError,
    _capture_job_output,
    _client,
    _close_client,
    _current_epoch,
    _dataset_dir,
    _generate_here,
    _generator_dir,
    _job_failure,
    _quiet,
    _read_synthetic,
    _run_generation_job,
    _versions,
    _wait_for_job_process,
    accounted_spend,
    training_progress,
)
from synth_core.io import atomic_path
from synth_core.schema import ENGINE_ENCODINGS, engine_encoding

MODEL_NAMES = {
    "small": "MOSTLY_AI/Small",
    "medium": "MOSTLY_AI/Medium",
    "large": "MOSTLY_AI/Large",
}
DEVICES = ("auto", "cpu", "cuda")
NA_PREFIX = "is_na_"
NA_YES, NA_NO = "1", "0"
RARE_TOKEN = "_RARE_"
ROW_ID = "__synth_row_id__"
HANDLE_FILE = "generator.json"
SDK_DIR = "mostlyai"
FLAT_TABLE = "data"
SUBJECT_TABLE = "subjects"
EVENTS_TABLE = "events"
STRING_KEY_FORMAT = "syn-{:09d}"  # generated string group keys: syn-000000000, syn-000000001, ...
HANDLE_VERSION = 1
PROGRESS_SECONDS = 15.0  # interval of training progress reports
# progress(epochs trained so far or None, elapsed seconds, estimated seconds left or None)
TrainingProgressFn = Callable[[float | None, float, float | None], None]
POLL_SECONDS = 1.0  # job polling interval (the SDK's default is 2 s, its minimum 1 s)


AUTO_EPOCHS = "auto"  # TrainingSettings.max_epochs: sized to the data by epoch_budget
# The "auto" epoch budget: the real-table corpus (benchmarks/RESULTS.md, corpus) trained its 33 flat
# tables of 150-20,000 rows this way and beat the random pool sample on every published one; three
# epochs of a large table already fit it, forty bound a tiny one's time.
AUTO_SAMPLES, AUTO_MIN_EPOCHS, AUTO_MAX_EPOCHS = 60_000, 3, 40


@dataclass
class TrainingSettings:
    """How to train. Field names map onto the SDK's ``ModelConfiguration``.

    * ``model_size``: "small" | "medium" | "large" -> ``model`` "MOSTLY_AI/Small" | ".../Medium" | ".../Large".
    * ``max_training_time_min``: wall-clock cap in minutes (``max_training_time``). None means the
      engine's default, 14400 min (10 days), i.e. practically no cap. A cap that is reached makes
      training non-reproducible.
    * ``max_epochs``: epoch cap (``max_epochs``, fractions allowed). None means the engine's default,
      100; ``"auto"`` sizes it to the training data (:func:`epoch_budget`: about
      :data:`AUTO_SAMPLES` samples seen, where a sample is a row of a flat table and a whole group
      of a sequential one). The engine also stops early once the validation loss stops improving
      (patience 4).
    * ``value_protection``: rare-category / extreme-value / sequence-length protection.
    * ``enable_flexible_generation``: False (our default, unlike the SDK's) trains with a fixed
      column order, which the SDK documents as more accurate; True is needed only for conditional
      generation, imputation, rebalancing or fairness, none of which the pool uses.
    * ``max_sample_size``: cap on training samples (rows / groups); None = all.
    * ``max_sequence_window``: sequential models only; the SDK's default is 100.
    * ``batch_size``: None = chosen by the engine.
    * ``seed``: ``random_state`` of the generator; None = random.
    * ``na_indicators``: add ``is_na_<col>`` helpers for columns with missing values.
    * ``device``: "auto" | "cpu" | "cuda" (see docs/design/generator.md).
    """

    model_size: str = "medium"
    max_training_time_min: float | None = 10.0
    max_epochs: float | str | None = 100.0
    value_protection: bool = True
    enable_flexible_generation: bool = False
    max_sample_size: int | None = None
    max_sequence_window: int | None = 100
    batch_size: int | None = None
    seed: int | None = 0
    na_indicators: bool = True
    device: str = "auto"

    def validate(self) -> TrainingSettings:
        if self.model_size not in MODEL_NAMES:
            raise InputError(f"model_size must be one of {', '.join(MODEL_NAMES)}, got {self.model_size!r}")
        if self.device not in DEVICES:
            raise InputError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        for name in ("max_training_time_min", "max_epochs"):
            value = getattr(self, name)
            if name == "max_epochs" and value == AUTO_EPOCHS:
                continue
            if value is not None and (isinstance(value, (str, bool)) or not value > 0):
                raise InputError(f"{name} must be positive or None{' or auto' if name == 'max_epochs' else ''}, "
                                 f"got {value!r}")
        for name in ("max_sample_size", "max_sequence_window", "batch_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
                raise InputError(f"{name} must be a positive integer or None, got {value!r}")
        if self.seed is not None and (not isinstance(self.seed, (int, np.integer)) or not 0 <= self.seed < 2**32):
            raise InputError(f"seed must be an integer in [0, 2**32) or None, got {self.seed!r}")
        return self

    def for_units(self, n_units: int) -> TrainingSettings:
        """These settings with an ``"auto"`` epoch cap resolved for ``n_units`` training samples."""
        return replace(self, max_epochs=epoch_budget(n_units)) if self.max_epochs == AUTO_EPOCHS else self

    def model_configuration(self) -> dict[str, Any]:
        """The SDK's ``tabular_model_configuration`` for these settings (model report off)."""
        return {
            "model": MODEL_NAMES[self.model_size],
            "max_training_time": self.max_training_time_min,
            "max_epochs": self.max_epochs,
            "value_protection": self.value_protection,
            "enable_flexible_generation": self.enable_flexible_generation,
            "max_sample_size": self.max_sample_size,
            "max_sequence_window": self.max_sequence_window,
            "batch_size": self.batch_size,
            "enable_model_report": False,  # the QA model report (mostlyai-qa) is slow: always off
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingSettings:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


# Share of the generator's max ε that the engine's value protection (noisy value ranges and rare
# categories, computed before training) may spend; the engine counts it in the ε it reports.
DP_VALUE_PROTECTION_SHARE = 0.1
# DP-SGD: the noise is calibrated so that the engine's RDP accountant reaches the rest of max ε after
# max_epochs epochs, with this margin for the accountant's tolerance (the engine checks ε only at epoch
# ends and drops the epoch that exceeded it: one epoch at the engine's default noise 1.5 already spent
# ε 0.73 on census, above a 0.5 budget).
DP_CALIBRATION_MARGIN = 0.95
DP_VALIDATION_SHARE = 0.1  # the engine's validation split: DP-SGD samples from the other 90 %
DP_MAX_BATCH = 1024  # DP-SGD's batch when none is set: large batches keep the noise per example small


def epoch_budget(n_units: int) -> int:
    """Epochs for about :data:`AUTO_SAMPLES` training samples seen, within
    :data:`AUTO_MIN_EPOCHS` … :data:`AUTO_MAX_EPOCHS`.

    A sample is what the engine draws per step: a row of a flat table, a whole group of a
    sequential one. A fixed epoch count starves small data: ten epochs of a 150-group panel are
    a few dozen optimiser steps. The engine's early stopping ends training sooner where the
    validation loss stops improving.
    """
    if not isinstance(n_units, (int, np.integer)) or isinstance(n_units, bool) or n_units < 1:
        raise InputError(f"training samples must be a positive integer, got {n_units!r}")
    return int(min(AUTO_MAX_EPOCHS, max(AUTO_MIN_EPOCHS, -(-AUTO_SAMPLES // int(n_units)))))


@dataclass(frozen=True)
class DPTraining:
    """Differentially private training (DP-SGD in the engine, accounted by its RDP accountant).

    Kept apart from :class:`TrainingSettings` so that the settings of non-DP generators (and every
    cache keyed on them) stay as they were. ``max_epsilon``: the engine stops before its reported ε
    (DP-SGD plus value protection, which gets ``DP_VALUE_PROTECTION_SHARE`` of it) exceeds this;
    ``delta``: the engine's δ; ``noise_multiplier``: DP-SGD's noise (None: calibrated by
    :func:`dp_noise_multiplier` to spend the budget in ``max_epochs``); ``max_grad_norm``: clipping.
    """

    max_epsilon: float
    delta: float
    noise_multiplier: float | None = None
    max_grad_norm: float = 1.0

    def validate(self) -> DPTraining:
        if not (isinstance(self.max_epsilon, (int, float)) and 0 < self.max_epsilon < float("inf")):
            raise InputError(f"DP training max_epsilon must be a positive number, got {self.max_epsilon!r}")
        if not (isinstance(self.delta, (int, float)) and 0 < self.delta < 1):
            raise InputError(f"DP training delta must lie in (0, 1), got {self.delta!r}")
        if (self.noise_multiplier is not None and not self.noise_multiplier > 0) or not self.max_grad_norm > 0:
            raise InputError("DP training noise_multiplier and max_grad_norm must be positive")
        return self

    def configuration(self, settings: TrainingSettings, n_rows: int) -> dict[str, Any]:
        """The SDK's ``differential_privacy`` model configuration for ``n_rows`` training rows."""
        vp = self.max_epsilon * DP_VALUE_PROTECTION_SHARE if settings.value_protection else 0.0
        noise = self.noise_multiplier
        if noise is None:
            noise = dp_noise_multiplier((self.max_epsilon - vp) * DP_CALIBRATION_MARGIN, self.delta / 2,
                                        dp_batch_size(settings, n_rows), n_rows, settings.max_epochs or 100.0)
        return {
            "max_epsilon": float(self.max_epsilon),
            "delta": float(self.delta),
            "noise_multiplier": float(noise),
            "max_grad_norm": float(self.max_grad_norm),
            "value_protection_epsilon": float(vp) if settings.value_protection else None,
        }


def dp_batch_size(settings: TrainingSettings, n_rows: int) -> int:
    """DP-SGD's batch: the settings' or ``DP_MAX_BATCH`` (at most a 20th of the training part)."""
    if settings.batch_size is not None:
        return int(settings.batch_size)
    trn = max(1, int(n_rows * (1 - DP_VALIDATION_SHARE)))
    return int(max(8, min(DP_MAX_BATCH, 2 ** int(np.log2(max(trn / 20, 1))))))


def dp_noise_multiplier(epsilon: float, delta: float, batch_size: int, n_rows: int, epochs: float) -> float:
    """The noise multiplier whose DP-SGD (Poisson sampling at ``batch / training part``) reaches
    ``epsilon`` after ``epochs`` epochs under opacus' RDP accountant, the engine's."""
    from opacus.accountants.utils import get_noise_multiplier

    trn = max(1, int(n_rows * (1 - DP_VALIDATION_SHARE)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "optimal order is the largest alpha": the bound stays valid
        return float(get_noise_multiplier(target_epsilon=float(epsilon), target_delta=float(delta),
                                          sample_rate=min(1.0, batch_size / trn),
                                          steps=int(np.ceil(epochs * trn / batch_size)), accountant="rdp"))


@dataclass
class GeneratorHandle:
    """A trained generator on disk. ``load(workdir)`` reopens it; ``sample`` generates from it."""

    workdir: Path
    generator_id: str
    kind: str  # "flat" | "sequential"
    name: str
    columns: list[str]  # output columns in training order (sequential: the events table's)
    dtypes: dict[str, str]
    categories: dict[str, dict[str, Any]]  # categorical columns: {"categories": [...], "ordered": bool}
    na_helpers: dict[str, dict[str, Any]]  # column -> {"helper", "table", "rare_means_na"}
    settings: TrainingSettings
    training_seconds: float
    engine_training_seconds: float | None = None
    epochs: float | None = None
    group_key: str | None = None
    context_columns: list[str] = field(default_factory=list)
    key_kind: str | None = None  # "int" | "str" (sequential only)
    device: str | None = None  # device the training job saw ("cpu"/"cuda")
    n_training_rows: int = 0
    n_training_groups: int | None = None
    sdk_version: str | None = None
    engine_version: str | None = None
    dp: dict[str, Any] | None = None  # DPTraining's fields when trained with differential privacy
    dp_epsilon: float | None = None  # the ε the engine reported for the training (value protection included)
    dp_delta: float | None = None  # the engine's δ for that ε

    # -- persistence -------------------------------------------------------------------------

    @property
    def sdk_home(self) -> Path:
        return Path(self.workdir) / SDK_DIR

    @property
    def model_dir(self) -> Path:
        return _generator_dir(self.sdk_home, self.generator_id)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("workdir")
        data["settings"] = asdict(self.settings)
        data["version"] = HANDLE_VERSION
        data["sdk_home"] = SDK_DIR
        data["model_path"] = str(_generator_dir(Path(SDK_DIR), self.generator_id))
        return data

    def save(self) -> Path:
        path = Path(self.workdir) / HANDLE_FILE
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_json(), indent=2, default=_json_default) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> GeneratorHandle:
        """Reopen a handle from its ``workdir`` or its ``generator.json``."""
        path = Path(path)
        json_path = path / HANDLE_FILE if path.is_dir() else path
        if not json_path.is_file():
            raise InputError(f"no trained generator found: {json_path} does not exist")
        try:
            data = json.loads(json_path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read generator file {json_path}: {exc}") from None
        workdir = json_path.parent.resolve()
        known = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in data.items() if k in known and k != "workdir"}
        kwargs["settings"] = TrainingSettings.from_dict(data.get("settings", {}))
        try:
            handle = cls(workdir=workdir, **kwargs)
        except TypeError as exc:
            raise InputError(f"generator file {json_path} is incomplete: {exc}") from None
        if not handle.model_dir.is_dir():
            raise InputError(f"generator model missing: {handle.model_dir} (from {json_path})")
        return handle

    # -- generation --------------------------------------------------------------------------

    def client(self):
        return _client(self.sdk_home)

    def sample(self, n: int, *, seed: int, temperature: float = 1.0, key_offset: int = 0) -> pd.DataFrame:
        """Generate ``n`` rows (flat) or ``n`` groups (sequential) with ``random_state=seed``.

        The result has exactly ``self.columns`` in training order, NA helpers applied and dropped,
        training dtypes restored where possible. Sequential group keys are renumbered
        ``key_offset, key_offset+1, ...`` (integer keys) or ``syn-<9-digit number>`` (string keys)
        in the generated group order; events keep their generated within-group order.
        """
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise InputError(f"sample size must be a positive integer, got {n!r}")
        if not 0.0 <= float(temperature) <= 2.0:
            raise InputError(f"temperature must be within [0, 2] (the SDK's range), got {temperature!r}")
        tables = _generate_tables(self, int(n), int(seed), float(temperature))
        if self.kind == "flat":
            df = tables[FLAT_TABLE]
            df = _apply_na_helpers(df, self.na_helpers, FLAT_TABLE)
        else:
            df = _assemble_sequential(self, tables, key_offset=int(key_offset))
        df = _stand_in_for_rare(df[self.columns], self.dtypes, int(seed))
        return _restore_dtypes(df, self.dtypes, self.categories)

    def close(self) -> None:
        """Stop this process's SDK server for the handle's home (it restarts on demand)."""
        _close_client(self.sdk_home)


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------


def train_flat(
    df: pd.DataFrame,
    workdir: str | os.PathLike,
    settings: TrainingSettings | None = None,
    *,
    name: str,
    progress: TrainingProgressFn | None = None,
    dp: DPTraining | None = None,
) -> GeneratorHandle:
    """Train a flat-table generator on ``df`` (the training part only) and persist it in ``workdir``.

    ``progress(epochs, elapsed_s, eta_s)`` is called about every ``PROGRESS_SECONDS`` while the
    engine trains (``eta_s`` None while unknown). ``dp``: train with differential privacy; the
    handle then records the engine's reported ε and δ (``dp_epsilon``, ``dp_delta``).
    """
    settings = (settings or TrainingSettings()).validate().for_units(max(1, len(df)))
    if dp is not None:
        dp.validate()
    _check_frame(df, "training table")
    _check_reserved(df.columns, "training table")
    na_helpers = _na_helpers(df, FLAT_TABLE) if settings.na_indicators else {}
    table = _with_helpers(df, na_helpers, settings.seed)
    table.insert(0, ROW_ID, np.arange(len(table), dtype=np.int64))
    config = {
        "name": name,
        "random_state": settings.seed,
        "tables": [_table_config(FLAT_TABLE, table, ROW_ID, na_helpers, _model_configuration(settings, dp, len(df)))],
    }
    del table  # the SDK has serialised its own parquet copy; release ours
    handle = _new_handle(workdir, "flat", name, df, na_helpers, settings)
    handle.dp = {**asdict(dp), **config["tables"][0]["tabular_model_configuration"]["differential_privacy"],
                 "batch_size": dp_batch_size(settings, len(df))} if dp is not None else None
    return _train(handle, config, progress)


def _model_configuration(settings: TrainingSettings, dp: DPTraining | None, n_rows: int) -> dict[str, Any]:
    """The model configuration, with the engine's differential privacy (and DP-SGD's batch) when ``dp``
    is given."""
    config = settings.model_configuration()
    if dp is not None:
        config["batch_size"] = dp_batch_size(settings, n_rows)
        config["differential_privacy"] = dp.configuration(settings, n_rows)
    return config


def train_sequential(
    events: pd.DataFrame,
    group_key: str,
    workdir: str | os.PathLike,
    settings: TrainingSettings | None = None,
    *,
    context_columns: Sequence[str] = (),
    name: str,
    progress: TrainingProgressFn | None = None,
    dp: DPTraining | None = None,
) -> GeneratorHandle:
    """Train a sequential generator: one subject per distinct ``group_key``, events linked to it.

    The subject table holds the distinct keys (first-appearance order) plus ``context_columns``,
    which must be constant within each group; the events table holds every other column and
    references the subject table through a context foreign key. Events are used in the order
    given. Keys may be integers or strings. ``progress`` as in :func:`train_flat`.

    ``dp``: train with differential privacy at the level of a whole group (a subject and all its
    events): DP-SGD clips each sample's gradient and the engine's samples are subjects, their
    events a sequence of one sample, so one group's influence is bounded whatever its length. The
    subject model (when there are context columns) and the events model each see every group, so
    their spends add up: each gets half of ``max_epsilon`` and of ``delta``. The handle records
    the engine's summed ε and δ (``dp_epsilon``, ``dp_delta``).
    """
    settings = (settings or TrainingSettings()).validate()
    if dp is not None:
        dp.validate()
    _check_frame(events, "events table")
    _check_reserved(events.columns, "events table")
    context_columns = list(context_columns)
    if group_key not in events.columns:
        raise InputError(f"group key column {group_key!r} not found in the events table")
    for c in context_columns:
        if c not in events.columns:
            raise InputError(f"context column {c!r} not found in the events table")
        if c == group_key:
            raise InputError(f"context column {c!r} is the group key")
    if len(set(context_columns)) != len(context_columns):
        raise InputError("context columns contain duplicates")
    keys = events[group_key]
    if keys.isna().any():
        raise InputError(f"group key column {group_key!r} has missing values")
    if pd.api.types.is_integer_dtype(keys.dtype):
        key_kind = "int"
    elif pd.api.types.is_string_dtype(keys.dtype) and keys.map(type).eq(str).all():
        key_kind = "str"
    else:
        raise InputError(f"group key column {group_key!r} must hold integers or strings, not {keys.dtype}")
    if context_columns:
        spread = events.groupby(group_key, sort=False)[context_columns].nunique(dropna=False).max()
        varying = [c for c in context_columns if spread[c] > 1]
        if varying:
            raise InputError(f"context column {varying[0]!r} is not constant within groups of {group_key!r}")

    subjects = events[[group_key, *context_columns]].drop_duplicates(subset=[group_key], keep="first")
    subjects = subjects.reset_index(drop=True)
    settings = settings.for_units(max(1, len(subjects)))
    event_cols = [c for c in events.columns if c not in context_columns]
    event_table = events[event_cols].reset_index(drop=True)
    subj_helpers = _na_helpers(subjects, SUBJECT_TABLE) if settings.na_indicators else {}
    ev_helpers = _na_helpers(event_table, EVENTS_TABLE) if settings.na_indicators else {}
    subjects = _with_helpers(subjects, subj_helpers, settings.seed)
    event_table = _with_helpers(event_table, ev_helpers, settings.seed)
    event_table.insert(0, ROW_ID, np.arange(len(event_table), dtype=np.int64))
    n_groups = len(subjects)
    share = dp if dp is None or not context_columns else replace(dp, max_epsilon=dp.max_epsilon / 2,
                                                                     delta=dp.delta / 2)
    # a subject table of keys alone has nothing to learn: its model spends nothing and needs no DP
    subj_cfg = _model_configuration(settings, share if context_columns else None, n_groups)
    ev_cfg = _model_configuration(settings, share, n_groups)
    link = [{"column": group_key, "referenced_table": SUBJECT_TABLE, "is_context": True}]
    config = {
        "name": name,
        "random_state": settings.seed,
        "tables": [
            _table_config(SUBJECT_TABLE, subjects, group_key, subj_helpers, subj_cfg),
            _table_config(EVENTS_TABLE, event_table, ROW_ID, ev_helpers, ev_cfg, foreign_keys=link),
        ],
    }
    del subjects, event_table
    handle = _new_handle(workdir, "sequential", name, events, {**subj_helpers, **ev_helpers}, settings,
                         group_key=group_key, context_columns=context_columns, key_kind=key_kind,
                         n_training_groups=n_groups)
    if dp is not None:
        handle.dp = {**asdict(dp), "per_model": ev_cfg["differential_privacy"], "models": 2 if context_columns else 1,
                     "batch_size": dp_batch_size(settings, n_groups), "unit": "group"}
    return _train(handle, config, progress)


def _table_config(name: str, data: pd.DataFrame, primary_key: str, na_helpers: dict, model_configuration: dict,
                  foreign_keys: list[dict] | None = None) -> dict[str, Any]:
    """One table of the SDK's generator configuration (keys in the order the SDK is given them)."""
    table: dict[str, Any] = {"name": name, "data": data, "primary_key": primary_key}
    if foreign_keys is not None:
        table["foreign_keys"] = foreign_keys
    keys = [primary_key, *(fk["column"] for fk in foreign_keys or ())]
    table["columns"] = _column_configs(data, na_helpers, keys)
    table["tabular_model_configuration"] = model_configuration
    return table


def _new_handle(workdir: str | os.PathLike, kind: str, name: str, training: pd.DataFrame, na_helpers: dict,
                settings: TrainingSettings, **extra: Any) -> GeneratorHandle:
    """The handle of a generator about to be trained on ``training`` (flat: the table;
    sequential: the events, with ``extra`` fields); :func:`_train` fills in the rest."""
    return GeneratorHandle(
        workdir=Path(workdir).resolve(),
        generator_id="",
        kind=kind,
        name=name,
        columns=[str(c) for c in training.columns],
        dtypes={str(c): str(training[c].dtype) for c in training.columns},
        categories=_categories(training),
        na_helpers=na_helpers,
        settings=settings,
        training_seconds=0.0,
        n_training_rows=len(training),
        **extra,
    )


def _eta(settings: TrainingSettings, epochs: float | None, elapsed: float) -> float | None:
    """Remaining seconds under the epoch cap and the time cap, whichever ends training first."""
    bounds = []
    if epochs and settings.max_epochs:
        bounds.append(elapsed / epochs * max(settings.max_epochs - epochs, 0.0))
    if settings.max_training_time_min:
        bounds.append(max(settings.max_training_time_min * 60.0 - elapsed, 0.0))
    return min(bounds) if bounds else None


@contextlib.contextmanager
def _reporting(handle: GeneratorHandle, progress: TrainingProgressFn | None, started: float) -> Iterator[None]:
    """Report training progress from a side thread (the SDK's wait blocks the caller)."""
    if progress is None or not handle.generator_id:
        yield
        return
    done = threading.Event()

    def loop() -> None:
        while not done.wait(PROGRESS_SECONDS):
            epochs = _current_epoch(handle.sdk_home, handle.generator_id)
            elapsed = time.monotonic() - started
            with contextlib.suppress(Exception):  # a failing logger must not break training
                progress(epochs, elapsed, _eta(handle.settings, epochs, elapsed))

    thread = threading.Thread(target=loop, name="training-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _train(handle: GeneratorHandle, config: dict[str, Any],
           progress: TrainingProgressFn | None = None) -> GeneratorHandle:
    workdir = handle.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    previous = None
    if (workdir / HANDLE_FILE).is_file():
        with contextlib.suppress(Exception):
            previous = json.loads((workdir / HANDLE_FILE).read_text()).get("generator_id")
    handle.device = _resolve_device(handle.settings.device)
    client = _client(workdir / SDK_DIR)
    started = time.monotonic()
    with _device_env(handle.settings.device), _quiet():
        g = client.train(config=config, start=False, wait=False, progress_bar=False)
        handle.generator_id = g.id
        with _capture_job_output(_generator_dir(handle.sdk_home, g.id)):
            g.training.start()  # the job process inherits this stderr: the engine's traceback lands in the file
        with _reporting(handle, progress, started):
            g.training.wait(progress_bar=False, interval=POLL_SECONDS)  # reloads g
        _wait_for_job_process(g.id)
    handle.training_seconds = round(time.monotonic() - started, 3)
    handle.generator_id = g.id
    status = str(getattr(g.training_status, "value", g.training_status))
    if status != "DONE":
        raise _job_failure(f"training of generator {g.id}", _generator_dir(handle.sdk_home, g.id), status,
                           replay=True)
    handle.epochs, handle.engine_training_seconds = training_progress(handle.model_dir, g.id)
    if handle.dp is not None:
        handle.dp_epsilon, handle.dp_delta = accounted_spend(handle.model_dir, handle.dp["max_epsilon"], g.id)
    handle.sdk_version, handle.engine_version = _versions()
    handle.save()
    if previous and previous != g.id:  # retrained in the same workdir: drop the superseded model
        shutil.rmtree(_generator_dir(workdir / SDK_DIR, str(previous)), ignore_errors=True)
    return handle


# ---------------------------------------------------------------------------------------------
# devices and generation
# ---------------------------------------------------------------------------------------------

_ENV_LOCK = threading.Lock()


def _resolve_device(device: str) -> str:
    if device == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise InputError("device='cuda' requested but no CUDA device is available")
    return "cuda" if available else "cpu"


@contextlib.contextmanager
def _device_env(device: str) -> Iterator[None]:
    """Jobs in the SDK server's child processes: steer their device through the environment."""
    if device != "cpu":
        _resolve_device(device)
        yield
        return
    with _ENV_LOCK:
        old = os.environ.get("CUDA_VISIBLE_DEVICES")
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = old


def _generate_tables(handle: GeneratorHandle, n: int, seed: int, temperature: float,
                     in_process: bool | None = None) -> dict[str, pd.DataFrame]:
    """Run one SDK generation job and return its raw tables; the job's files are deleted after.
    ``in_process``: run the job here (True) or in the server's child process (False); None
    decides by :func:`_generate_here`."""
    client = handle.client()
    subject = FLAT_TABLE if handle.kind == "flat" else SUBJECT_TABLE
    table_cfgs = [
        {
            "name": subject,
            "configuration": {
                "sample_size": n,
                "sampling_temperature": temperature,
                "enable_data_report": False,  # the QA data report (mostlyai-qa) is slow: always off
            },
        }
    ]
    if handle.kind == "sequential":
        table_cfgs.append(
            {
                "name": EVENTS_TABLE,
                "configuration": {"sampling_temperature": temperature, "enable_data_report": False},
            }
        )
    config = {"name": f"{handle.name}-pool", "random_state": seed, "tables": table_cfgs}
    here = _generate_here(handle.settings.device) if in_process is None else in_process
    with _device_env(handle.settings.device), _quiet():
        sd = client.generate(handle.generator_id, config=config, start=False, wait=False, progress_bar=False)
        job_dir = _dataset_dir(handle.sdk_home, sd.id)
        error = None
        if here:
            error = _run_generation_job(sd.id, handle.sdk_home)
            sd.reload()
        else:
            with _capture_job_output(job_dir):
                sd.generation.start()
            sd.generation.wait(progress_bar=False, interval=POLL_SECONDS)  # reloads sd
    status = str(getattr(sd.generation_status, "value", sd.generation_status))
    if status != "DONE":  # the job's folder stays: the message names its log
        if not here:
            _wait_for_job_process(sd.id)  # the job writes its traceback after marking itself failed
        raise _job_failure(f"generation {sd.id} from generator {handle.generator_id}", job_dir, status,
                           error=error, replay=not here)
    try:
        return _read_synthetic(job_dir, sd)
    finally:
        with contextlib.suppress(Exception):
            sd.delete()


# ---------------------------------------------------------------------------------------------
# columns, helpers, dtypes
# ---------------------------------------------------------------------------------------------


def _check_frame(df: pd.DataFrame, what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise InputError(f"{what} is empty ({df.shape[0]} rows, {df.shape[1]} columns)")
    bad = [c for c in df.columns if not isinstance(c, str) or not c]
    if bad:
        raise InputError(f"{what}: column names must be non-empty strings, got {bad[0]!r}")
    dup = df.columns[df.columns.duplicated()]
    if len(dup):
        raise InputError(f"{what}: duplicate column name {dup[0]!r}")


def _check_reserved(columns: Sequence[str], what: str) -> None:
    for c in columns:
        if c == ROW_ID or c.startswith(NA_PREFIX):
            raise InputError(f"{what}: column name {c!r} is reserved (internal {ROW_ID!r} / prefix {NA_PREFIX!r})")


def _na_helpers(df: pd.DataFrame, table: str) -> dict[str, dict[str, Any]]:
    helpers = {}
    for c in df.columns:
        n_na = int(df[c].isna().sum())
        if n_na:
            helpers[c] = {"helper": NA_PREFIX + c, "table": table, "rare_means_na": n_na <= len(df) - n_na}
    return helpers


def _with_helpers(df: pd.DataFrame, helpers: dict[str, dict[str, Any]], seed: int | None) -> pd.DataFrame:
    """A shallow copy of ``df`` with an ``is_na_<col>`` column ("1"/"0") before each helped column.

    The helped column's missing cells are filled with values drawn (seeded) from its observed
    values, so that missingness is carried by the helper alone (see docs/design/generator.md).
    """
    out = df.copy(deep=False)
    rng = np.random.default_rng(0 if seed is None else seed)
    for c, info in helpers.items():
        is_na = df[c].isna().to_numpy()
        flag = np.where(is_na, NA_YES, NA_NO)
        observed = df[c].dropna()
        if len(observed):
            filled = df[c].copy()
            filled[is_na] = observed.to_numpy()[rng.integers(0, len(observed), size=int(is_na.sum()))]
            out[c] = filled
        out.insert(out.columns.get_loc(c), info["helper"], pd.Series(flag, index=df.index, dtype=object))
    return out


def _column_configs(data: pd.DataFrame, helpers: dict[str, dict[str, Any]],
                    keys: Sequence[str]) -> list[dict[str, str]]:
    """Each column's encoding, stated: the engine's own guess (AUTO) takes month names for dates.
    Key columns are not modelled and keep AUTO."""
    helper_names = {info["helper"] for info in helpers.values()}

    def encoding(c: str) -> str:
        if c in keys:
            return "AUTO"
        return ENGINE_ENCODINGS["categorical"] if c in helper_names else engine_encoding(data[c])

    return [{"name": c, "model_encoding_type": encoding(c)} for c in data.columns]


def _apply_na_helpers(df: pd.DataFrame, helpers: dict[str, dict[str, Any]], table: str) -> pd.DataFrame:
    """Set a column to missing where its helper says so, then drop the helper."""
    df = df.copy()
    for c, info in helpers.items():
        if info["table"] != table or info["helper"] not in df.columns:
            continue
        flag = df[info["helper"]].astype(object)
        is_na = flag.eq(NA_YES)
        if info.get("rare_means_na"):
            is_na |= flag.eq(RARE_TOKEN)
        is_na = is_na.fillna(False).astype(bool)
        if is_na.any():
            df[c] = df[c].mask(is_na.to_numpy())
        df = df.drop(columns=[info["helper"]])
    return df


def _stand_in_for_rare(df: pd.DataFrame, dtypes: dict[str, str], seed: int) -> pd.DataFrame:
    """Replace the engine's ``_RARE_`` token in text columns by a value the generator did emit.

    Value protection hides categories seen too few times behind ``_RARE_``; left in, the token is
    a category of its own that the user's table never had (80 % of a column of institution names,
    say) and that qa bins apart from training's rare values. Each token becomes one of the values
    generated for that column in this batch, drawn uniformly over the distinct values: rare values
    are a long tail of many values each seen a few times, so an even spread keeps the frequent ones
    near their share, and only values the engine already released are used (nothing hidden
    returns). A column generated as nothing but the token becomes missing there.
    """
    out = None
    for i, c in enumerate(df.columns):
        if dtypes.get(c) not in ("object", "category", "str", "string"):
            continue
        values = df[c].astype(object)
        is_rare = values.eq(RARE_TOKEN).fillna(False).to_numpy(bool)
        if not is_rare.any():
            continue
        emitted = pd.unique(values[~is_rare & values.notna().to_numpy()])
        emitted = np.array(sorted(emitted, key=str), dtype=object)
        out = df.copy() if out is None else out
        filled = values.to_numpy(copy=True)
        if emitted.size:
            rng = np.random.default_rng([seed, i])
            filled[is_rare] = emitted[rng.integers(0, emitted.size, int(is_rare.sum()))]
        else:
            filled[is_rare] = None
        out[c] = pd.Series(filled, index=df.index, dtype=object)
    return df if out is None else out


def _assemble_sequential(handle: GeneratorHandle, tables: dict[str, pd.DataFrame], *, key_offset: int) -> pd.DataFrame:
    key = handle.group_key
    subjects = _apply_na_helpers(tables[SUBJECT_TABLE], handle.na_helpers, SUBJECT_TABLE)
    events = _apply_na_helpers(tables[EVENTS_TABLE], handle.na_helpers, EVENTS_TABLE)
    subjects = subjects.reset_index(drop=True)
    position = pd.Series(np.arange(len(subjects), dtype=np.int64), index=subjects[key].astype(str).to_numpy())
    if not position.index.is_unique:
        raise RuntimeError("the SDK generated duplicate subject keys")
    # events of one group appear in step order but interleaved with other groups: a stable sort
    # by the subject's position gives group order with the within-group order unchanged
    pos = events[key].astype(str).map(position)
    if pos.isna().any():
        raise RuntimeError("the SDK generated events without a subject")
    events = events.assign(__pos=pos.to_numpy(np.int64)).sort_values("__pos", kind="stable")
    new_index = key_offset + events["__pos"].to_numpy()
    if handle.key_kind == "int":
        new_keys = pd.Series(new_index, index=events.index, dtype=np.int64)
    else:
        new_keys = pd.Series([STRING_KEY_FORMAT.format(i) for i in new_index], index=events.index, dtype=object)
    if handle.context_columns:
        ctx = subjects[handle.context_columns].iloc[events["__pos"].to_numpy()]
        ctx.index = events.index
        events = pd.concat([events.drop(columns=handle.context_columns, errors="ignore"), ctx], axis=1)
    events[key] = new_keys
    return events.drop(columns=["__pos"]).reset_index(drop=True)


def _categories(df: pd.DataFrame) -> dict[str, dict[str, Any]]:
    out = {}
    for c in df.columns:
        dtype = df[c].dtype
        if isinstance(dtype, pd.CategoricalDtype):
            cats = dtype.categories
            out[c] = {"categories": [_json_default(v) for v in cats.tolist()], "ordered": bool(dtype.ordered)}
    return out


def _restore_dtypes(df: pd.DataFrame, dtypes: dict[str, str], categories: dict[str, dict[str, Any]]) -> pd.DataFrame:
    out = {}
    for c in df.columns:
        out[c] = _coerce(df[c], dtypes.get(c), categories.get(c))
    return pd.DataFrame(out, index=df.index)


def _coerce(s: pd.Series, dtype_name: str | None, cat: dict[str, Any] | None) -> pd.Series:
    """Cast a generated column to its training dtype; keep the generated one if that fails."""
    if dtype_name is None:
        return s
    try:
        if dtype_name == "category":
            known = list((cat or {}).get("categories", []))
            values = s.astype(object).where(s.notna(), None)
            if known and all(isinstance(v, (int, np.integer)) for v in known):
                values = pd.to_numeric(values).astype("Int64").astype(object).where(s.notna(), None)
            extra = sorted({v for v in values.dropna().unique() if v not in set(known)}, key=str)
            dtype = pd.CategoricalDtype(known + extra, ordered=bool((cat or {}).get("ordered", False)))
            return values.astype(dtype)
        target = pd.api.types.pandas_dtype(dtype_name)
        if pd.api.types.is_bool_dtype(target):
            mapped = s.astype(object).map(
                lambda v: {"True": True, "False": False}.get(v, v) if isinstance(v, str) else v)
            if not mapped.dropna().map(lambda v: isinstance(v, (bool, np.bool_))).all():
                return s
            return mapped.astype("boolean" if mapped.isna().any() else target)
        if pd.api.types.is_integer_dtype(target):
            if s.isna().any():
                if isinstance(target, np.dtype):  # e.g. int64 -> Int64 so that missing values fit
                    target = pd.api.types.pandas_dtype(target.name.replace("int", "Int").replace("uInt", "UInt"))
            numeric = pd.to_numeric(s)
            return numeric.astype(target)
        if pd.api.types.is_float_dtype(target):
            return pd.to_numeric(s).astype(target)
        if isinstance(target, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(target):
            return pd.to_datetime(s).astype(target)
        if target == np.dtype(object):
            return s.astype(object).where(s.notna(), np.nan)
        return s.astype(target)
    except (TypeError, ValueError, OverflowError):
        return s


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    return value


__all__ = [
    "EngineError",
    "GeneratorHandle",
    "DPTraining",
    "TrainingSettings",
    "train_flat",
    "train_sequential",
    "MODEL_NAMES",
    "NA_PREFIX",
]
