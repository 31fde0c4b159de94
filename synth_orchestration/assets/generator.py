"""``<kind>/trained_generator``: a MOSTLY AI generator trained on the training part, or reused.

A generator is stored under a content key of the training data's version and the training
settings, so an unchanged dataset reuses it. A dataset with ``privacy:`` fits the DP marginal model
on the whole budget (the default), or with ``generator: engine`` trains with the engine's
differential privacy (DP-SGD) on the generator's part of the budget and records the ε the engine
reported. A dataset that names its own pool (``pool:`` in
datasets.yaml) trains nothing: the asset then records which pool stands in for the generator.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

import dagster as dg

from synth_core.generate import EngineError
from synth_core.ops import GENERATOR_ASSET
from synth_orchestration.assets.source import read_source
from synth_orchestration.common import Stage, catalog, merged_settings, spec_for, user_errors
from synth_orchestration.deploy_tags import step_tags
from synth_orchestration.resources import ArtifactStore, MetricStoreResource

GENERATOR_CODE_VERSION = "1"  # bump when training code changes in a way that invalidates reuse


def file_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's ``shard-*.parquet`` files in order (a given pool's version)."""
    h = hashlib.sha256()
    for part in sorted(path.glob("shard-*.parquet")) if path.is_dir() else [path]:
        with open(part, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def given_pool(spec) -> dict:
    """The generator record of a dataset that brings its own pool: nothing trained."""
    from synth_core.errors import InputError

    path = spec.pool_path(catalog().base)
    if not path.exists():
        raise InputError(f"dataset {spec.name!r}: pool {path} not found")
    digest = file_digest(path)[:16]
    result = {"generator_id": f"pool:{digest}", "path": None, "training_s": 0.0, "epochs": None, "device": None,
              "reused": True, "settings": {"pool": str(path)}, "identity": f"pool-{digest}", "pool": str(path)}
    if spec.privacy is not None:  # a given pool's generator is unknown: only selection's part is stated
        result["privacy"] = {"budget": spec.privacy, "generator_epsilon": None, "generator_delta": None}
    return result


def train_or_reuse(context, artifacts: ArtifactStore, kind: str, spec, source_data: dict, settings: dict) -> dict:
    """Train, or reuse the stored generator when data version and training settings are unchanged."""
    from synth_core.generate import (
        AUTO_EPOCHS,
        DPTraining,
        GeneratorHandle,
        TrainingSettings,
        train_flat,
        train_sequential,
    )

    budget = spec.privacy_budget
    if kind == "flat" and budget is not None and budget.generator == "marginal":
        return fit_or_reuse_marginal(context, artifacts, spec, source_data, settings, budget)
    dp = DPTraining(max_epsilon=budget.generator_epsilon, delta=budget.generator_delta) if budget else None
    identity = {
        "data": source_data["training_digest"],
        "settings": settings,
        "kind": kind,
        "group_key": spec.group_key,
        "context_columns": list(spec.context_columns),
        "code_version": GENERATOR_CODE_VERSION,
    }
    if dp is not None:  # only then: the keys of generators without privacy stay as they were
        identity["privacy"] = budget.to_dict()
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    gen_dir = artifacts.generators_dir(kind, spec.name) / key
    reused = (gen_dir / "generator.json").is_file()
    if not reused:
        training = read_source(source_data, "training")
        ts = TrainingSettings(
            model_size=settings["model_size"],
            max_training_time_min=settings["max_training_time_min"],
            max_epochs=AUTO_EPOCHS if settings["max_epochs"] is None else settings["max_epochs"],
            value_protection=settings["value_protection"],
            seed=settings["seed"],
            device=settings["device"],
        )
        # train into a scratch folder and rename: a killed run never leaves a generator that looks complete
        scratch = gen_dir.with_name(f".{key}.{context.run.run_id[:8]}.tmp")
        shutil.rmtree(scratch, ignore_errors=True)
        context.log.info(f"training a {kind} generator on {len(training):,} rows ({ts})")

        def progress(epochs, elapsed, eta) -> None:
            done = f"{epochs:.1f} epochs" if epochs is not None else "starting"
            rate = f", {elapsed / epochs:.1f} s/epoch" if epochs else ""
            left = f", ETA {eta:.0f} s" if eta is not None else ""
            context.log.info(f"training: {done} in {elapsed:.0f} s{rate}{left}")

        try:
            if kind == "flat":
                handle = train_flat(training, scratch, ts, name=f"{spec.name}-{key}", progress=progress, dp=dp)
            else:
                handle = train_sequential(
                    training, spec.group_key, scratch, ts, context_columns=list(spec.context_columns),
                    name=f"{spec.name}-{key}", progress=progress,
                )
            handle.close()
            os.replace(scratch, gen_dir)
        except EngineError as exc:  # the scratch folder goes: keep the job's log where the message says
            if exc.log is None or not Path(exc.log).is_file():
                raise
            kept = gen_dir.with_name(f"failed-{key}.{context.run.run_id[:8]}.log")
            shutil.copyfile(exc.log, kept)
            raise exc.moved(kept) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        context.log.info(f"trained in {handle.training_seconds:.1f} s")
    handle = GeneratorHandle.load(gen_dir)
    result = {
        "generator_id": handle.generator_id,
        "path": str(gen_dir),
        "training_s": float(handle.training_seconds),
        "epochs": handle.epochs,
        "max_epochs": handle.settings.max_epochs,  # the cap the engine got: "auto" resolved for the data
        "device": handle.device,
        "reused": bool(reused),
        "settings": settings,
        "identity": key,
    }
    if dp is not None:
        result["privacy"] = {"budget": budget.to_dict(), "generator_epsilon": handle.dp_epsilon,
                             "generator_delta": handle.dp_delta, "training": handle.dp}
    return result


def fit_or_reuse_marginal(context, artifacts: ArtifactStore, spec, source_data: dict, settings: dict, budget) -> dict:
    """A flat dataset with ``privacy: {generator: marginal}``: fit the DP marginal model on the whole
    budget (:func:`synth_core.dp.fit_marginal_model`), or reuse the one stored for this data and budget."""
    import time

    from synth_core.dp import MarginalSettings, fit_marginal_model, marginal_record

    identity = {"data": source_data["training_digest"], "kind": "flat", "generator": "marginal",
                "seed": settings["seed"], "privacy": budget.to_dict(), "code_version": GENERATOR_CODE_VERSION}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    gen_dir = artifacts.generators_dir("flat", spec.name) / key
    reused = (gen_dir / "generator.json").is_file()
    if not reused:
        training = read_source(source_data, "training")
        context.log.info(f"fitting the DP marginal model on {len(training):,} rows at (ε, δ) = "
                         f"({budget.epsilon:g}, {budget.delta:g})")
        scratch = gen_dir.with_name(f".{key}.{context.run.run_id[:8]}.tmp")
        shutil.rmtree(scratch, ignore_errors=True)
        started = time.perf_counter()
        try:
            record = fit_marginal_model(training, budget.epsilon, budget.delta, scratch,
                                        settings=MarginalSettings(seed=int(settings["seed"])))
            for line in record["log"]:
                context.log.info(line)
            (scratch / "generator.json").write_text(json.dumps(
                {"generator": "marginal", "training_s": time.perf_counter() - started}))
            os.replace(scratch, gen_dir)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    record = marginal_record(gen_dir)
    return {
        "generator_id": f"marginal:{key}", "generator": "marginal", "path": str(gen_dir),
        "training_s": float(json.loads((gen_dir / "generator.json").read_text())["training_s"]),
        "epochs": None, "max_epochs": None, "device": "cpu", "reused": bool(reused),
        "settings": {"generator": "marginal", "seed": settings["seed"], "rounds": record["rounds"]},
        "identity": key,
        "privacy": {"budget": budget.to_dict(), "generator_epsilon": float(record["epsilon"]),
                    "generator_delta": float(record["delta"]), "generator": "marginal",
                    "training": {k: record[k] for k in ("rho", "domain", "rounds", "measured", "n_estimate")}},
    }


def _materialize(context: dg.AssetExecutionContext, config, source_data: dict, artifacts: ArtifactStore,
                 metrics: MetricStoreResource, kind: str) -> dg.MaterializeResult:
    spec = spec_for(context, kind)
    stage = Stage(context, metrics, spec.name)
    with user_errors():
        if spec.pool:
            result = given_pool(spec)
            context.log.info(f"dataset {spec.name!r} brings its own pool ({result['pool']}): no training")
        else:
            settings = merged_settings(context, config, spec.training, set(config.model_dump()))
            result = train_or_reuse(context, artifacts, kind, spec, source_data, settings)
        figures = stage.record({"training_s": result["training_s"], "reused": float(result["reused"])})
    metadata = {
        **figures,
        "generator_id": dg.MetadataValue.text(result["generator_id"]),
        "reused": dg.MetadataValue.bool(result["reused"]),
        "device": dg.MetadataValue.text(str(result.get("device"))),
        "epochs": dg.MetadataValue.float(float(result.get("epochs") or 0.0)),
        "max_epochs": dg.MetadataValue.float(float(result.get("max_epochs") or 0.0)),
        "settings": dg.MetadataValue.json(result["settings"]),
    }
    if result.get("privacy") is not None:
        metadata["privacy"] = dg.MetadataValue.json(result["privacy"])
        if result["privacy"]["generator_epsilon"] is not None:
            metadata["dp_generator_epsilon"] = dg.MetadataValue.float(float(result["privacy"]["generator_epsilon"]))
    if result["path"]:
        metadata["artifact_dir"] = dg.MetadataValue.path(result["path"])
    else:
        metadata["given_pool"] = dg.MetadataValue.path(result["pool"])
    return dg.MaterializeResult(value=result, metadata=metadata)


def trained_generator_asset(kind: str, common: dict, config_cls: type, description: str) -> dg.AssetsDefinition:
    """The ``trained_generator`` asset of the ``kind`` graph (``common``: the arguments its assets share)."""
    @dg.asset(name=GENERATOR_ASSET, **common, code_version="1", kinds={"pytorch"},
              op_tags=step_tags(GENERATOR_ASSET), description=description)
    def trained_generator(context: dg.AssetExecutionContext, config: config_cls, source_data: dict,
                          artifacts: ArtifactStore, metrics: MetricStoreResource):
        return _materialize(context, config, source_data, artifacts, metrics, kind)

    return trained_generator
