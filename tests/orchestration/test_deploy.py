"""deploy/k8s: the instance config through Dagster's own schemas, the Helm values in step with it,
and the step placement tags through dagster-k8s's own job construction."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import tomllib
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import Shape, validate_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import class_from_code_pointer, dagster_instance_config
from dagster_k8s import K8sRunLauncher, k8s_job_executor
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)

from synth_orchestration import deploy_tags
from synth_orchestration.deploy_tags import (
    CPU_STEP_TAGS,
    GPU_RESOURCE,
    GPU_STEP_TAGS,
    K8S_CONFIG_TAG,
    STEP_TAGS,
    executor_from_env,
    k8s_executor_config,
    step_tags,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy" / "k8s"


@pytest.fixture(scope="module")
def instance_yaml() -> dict:
    return yaml.safe_load((DEPLOY / "dagster.yaml").read_text())


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load((DEPLOY / "values.yaml").read_text())


def _validate_instance(tmp_path: Path, document: dict | None = None):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if document is None:
        shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    else:
        (home / "dagster.yaml").write_text(yaml.safe_dump(document))
    return dagster_instance_config(str(home))


def _snake(value):
    """Helm's camelCase keys as the snake_case keys of dagster.yaml (label keys have no capitals)."""
    if isinstance(value, dict):
        return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): _snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# instance config


def test_instance_config_passes_dagsters_instance_schema(tmp_path, instance_yaml):
    config, custom_class = _validate_instance(tmp_path)
    assert custom_class is None
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert "postgres" in config["storage"]
    # the check is real: a misspelt key is refused
    broken = {**instance_yaml, "run_queue": {**instance_yaml["run_queue"], "max_concurent_runs": 3}}
    with pytest.raises(DagsterInvalidConfigError):
        _validate_instance(tmp_path, broken)


def test_run_launcher_config_passes_k8s_run_launcher_schema(instance_yaml):
    launcher = instance_yaml["run_launcher"]
    assert class_from_code_pointer(launcher["module"], launcher["class"]) is K8sRunLauncher
    schema = Shape(K8sRunLauncher.config_type())
    result = validate_config(schema, launcher["config"])
    assert result.success, [e.message for e in result.errors]
    run_k8s = UserDefinedDagsterK8sConfig.from_dict(launcher["config"]["run_k8s_config"])
    assert run_k8s.pod_spec_config["node_selector"] == deploy_tags.CPU_NODE_SELECTOR
    bad = validate_config(schema, {**launcher["config"], "job_namespaces": "typo"})
    assert not bad.success


def test_compute_log_manager_is_the_s3_one(instance_yaml):
    logs = instance_yaml["compute_logs"]
    assert (logs["module"], logs["class"]) == ("dagster_aws.s3.compute_log_manager", "S3ComputeLogManager")
    if importlib.util.find_spec("dagster_aws") is None:
        return  # dagster-aws belongs to the deployment image only (README: "Image")
    manager = class_from_code_pointer(logs["module"], logs["class"])
    result = validate_config(Shape(manager.config_type()), logs["config"])
    assert result.success, [e.message for e in result.errors]


# --------------------------------------------------------------------------------------------
# Helm values in step with the instance


def test_helm_run_launcher_matches_the_instance(values, instance_yaml):
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    helm = values["runLauncher"]["config"]["k8sRunLauncher"]
    mine = instance_yaml["run_launcher"]["config"]
    assert helm["jobNamespace"] == mine["job_namespace"]
    assert helm["imagePullPolicy"] == mine["image_pull_policy"]
    assert [m["name"] for m in helm["envConfigMaps"]] == mine["env_config_maps"]
    assert [s["name"] for s in helm["envSecrets"]] == mine["env_secrets"]
    assert helm["failPodOnRunFailure"] == mine["fail_pod_on_run_failure"]
    assert helm["labels"] == mine["labels"]
    assert _snake(helm["runK8sConfig"]) == mine["run_k8s_config"]
    assert values["global"]["postgresqlSecretName"] == mine["postgres_password_secret"]
    assert values["global"]["dagsterHome"] == mine["dagster_home"]


def test_helm_queue_monitoring_and_logs_match_the_instance(values, instance_yaml):
    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert queued["maxConcurrentRuns"] == instance_yaml["run_queue"]["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == instance_yaml["run_queue"]["tag_concurrency_limits"]
    assert _snake(daemon["runMonitoring"]) == instance_yaml["run_monitoring"]
    assert _snake(daemon["runRetries"]) == instance_yaml["run_retries"]
    s3 = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"
    assert s3["prefix"] == instance_yaml["compute_logs"]["config"]["prefix"]
    assert values["telemetry"]["enabled"] is False and instance_yaml["telemetry"]["enabled"] is False


def test_helm_user_deployment_loads_this_code_location(values):
    [deployment] = values["dagster-user-deployments"]["deployments"]
    module = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", module]
    workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["module_name"] == module
    assert deployment["image"]["tag"] not in ("", "latest")
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert {"SYNTH_DATASETS", "SYNTH_STATE_DIR", "SYNTH_ARTIFACT_ROOT", "SYNTH_EXECUTOR", "SYNTH_IO_DIR"} <= set(env)
    mounts = {m["mountPath"] for m in deployment["volumeMounts"]}
    assert str(Path(env["SYNTH_DATASETS"]).parent) in mounts and env["SYNTH_STATE_DIR"] in mounts
    # artifacts and step outputs live on volumes every pod mounts (the bucket through a CSI mount)
    assert env["SYNTH_ARTIFACT_ROOT"] in mounts
    assert any(env["SYNTH_IO_DIR"].startswith(m + "/") for m in mounts)
    from synth_orchestration.resources import ArtifactStore

    assert ArtifactStore(artifact_root=env["SYNTH_ARTIFACT_ROOT"]).artifact_root == env["SYNTH_ARTIFACT_ROOT"]
    with pytest.raises(Exception, match="is a URL"):
        ArtifactStore(artifact_root="s3://synth-artifacts/synth")
    assert {s["name"] for s in deployment["envSecrets"]} == {"synth-s3"}


# --------------------------------------------------------------------------------------------
# step placement


def _step_pod(instance_yaml: dict, tags: dict):
    """The pod spec dagster-k8s builds for a step with these op tags (run defaults merged in)."""
    launcher = instance_yaml["run_launcher"]["config"]
    run_context = K8sContainerContext(
        env_config_maps=launcher["env_config_maps"], env_secrets=launcher["env_secrets"],
        namespace=launcher["job_namespace"],
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(launcher["run_k8s_config"]),
    )
    as_op_tags = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in tags.items()}  # how Dagster stores them
    step_context = run_context.merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(as_op_tags)))
    job_config = DagsterK8sJobConfig(
        job_image="registry.example.com/synth-twin:0.1.0", dagster_home=launcher["dagster_home"],
        image_pull_policy=launcher["image_pull_policy"], instance_config_map=launcher["instance_config_map"],
        postgres_password_secret=launcher["postgres_password_secret"],
    )  # what K8sContainerContext.get_k8s_job_config builds; env sources travel in run_k8s_config
    job = construct_dagster_k8s_job(job_config, ["dagster", "api", "execute_step"], "dagster-step-test",
                                    user_defined_k8s_config=step_context.run_k8s_config)
    return job.spec.template.spec


def test_gpu_step_pod_lands_on_a_gpu_node(instance_yaml):
    pod = _step_pod(instance_yaml, GPU_STEP_TAGS)
    assert pod.node_selector == {"node-pool": "gpu"}  # replaces the run default, not added to it
    assert [(t.key, t.operator, t.effect) for t in pod.tolerations] == [(GPU_RESOURCE, "Exists", "NoSchedule")]
    [container] = pod.containers
    assert container.resources.limits[GPU_RESOURCE] == "1" and container.resources.requests[GPU_RESOURCE] == "1"
    assert {e.config_map_ref.name for e in container.env_from if e.config_map_ref} == {"synth-env"}
    assert {e.secret_ref.name for e in container.env_from if e.secret_ref} == {"synth-s3"}


def test_selection_step_pod_lands_on_a_cpu_node(instance_yaml):
    pod = _step_pod(instance_yaml, CPU_STEP_TAGS)
    assert pod.node_selector == {"node-pool": "cpu"}
    assert not pod.tolerations
    [container] = pod.containers
    assert GPU_RESOURCE not in (container.resources.limits or {})
    assert container.resources.requests["memory"] == "16Gi"


def test_untagged_step_gets_the_run_defaults(instance_yaml):
    pod = _step_pod(instance_yaml, {})
    assert pod.node_selector == {"node-pool": "cpu"}
    assert pod.containers[0].resources.requests == {"cpu": "1", "memory": "4Gi"}


def test_step_tags_cover_training_and_selection():
    assert step_tags("trained_generator") == GPU_STEP_TAGS
    assert step_tags("trained_generator") is not GPU_STEP_TAGS  # a copy: callers may not alter the constant
    for step in ("mi_pairs", "ipf_subset", "trimmed_subset", "refined_output"):
        assert step_tags(step) == CPU_STEP_TAGS
    assert step_tags("source_data") == {}
    for tags in STEP_TAGS.values():
        get_user_defined_k8s_config({k: json.dumps(v) if isinstance(v, dict) else v for k, v in tags.items()})


def _assets_by_step() -> dict[str, list[dg.AssetsDefinition]]:
    from synth_orchestration.definitions import defs

    found: dict[str, list[dg.AssetsDefinition]] = {}
    for asset in defs.assets or []:
        if isinstance(asset, dg.AssetsDefinition) and asset.is_executable:
            for key in asset.keys:
                found.setdefault(key.path[-1], []).append(asset)
    return found


def _step_ops(asset: dg.AssetsDefinition) -> list:
    """The ops that run as steps: the asset's own, or every op of a graph-backed asset."""
    node = asset.node_def
    return list(node.iterate_op_defs()) if isinstance(node, dg.GraphDefinition) else [node]


def test_every_step_declares_exactly_its_placement_tags():
    """Each op of each asset carries the tags of its step in deploy_tags (none where it has none)."""
    for step, assets in _assets_by_step().items():
        for asset in assets:
            for op in _step_ops(asset):
                # a graph's ops are named <kind>_<step>; the pool shards run as candidate_pool steps
                name = op.name.split("_", 1)[1] if isinstance(asset.node_def, dg.GraphDefinition) else step
                expected = step_tags("candidate_pool" if name == "pool_shard" else name)
                declared = dict(op.tags)
                if not expected:
                    assert K8S_CONFIG_TAG not in declared, op.name
                    continue
                assert json.loads(declared[K8S_CONFIG_TAG]) == expected[K8S_CONFIG_TAG], op.name
                assert declared.get(deploy_tags.NODE_POOL_TAG) == expected[deploy_tags.NODE_POOL_TAG], op.name


def test_training_and_pool_shards_run_on_gpu_nodes():
    assets = _assets_by_step()
    for step, op_suffix in (("trained_generator", None), ("candidate_pool", "_pool_shard")):
        for asset in assets[step]:
            ops = [op for op in _step_ops(asset) if op_suffix is None or op.name.endswith(op_suffix)]
            assert ops, asset.key
            for op in ops:
                assert dict(op.tags).get(deploy_tags.NODE_POOL_TAG) == "gpu", op.name


# --------------------------------------------------------------------------------------------
# executor


def test_executor_from_env(monkeypatch):
    monkeypatch.delenv(deploy_tags.EXECUTOR_ENV, raising=False)
    assert executor_from_env() is None
    monkeypatch.setenv(deploy_tags.EXECUTOR_ENV, "k8s")
    executor = executor_from_env()
    assert isinstance(executor, dg.ExecutorDefinition) and executor.name == "synth_k8s_executor"
    result = validate_config(k8s_job_executor.config_schema.config_type, k8s_executor_config())
    assert result.success, [e.message for e in result.errors]
