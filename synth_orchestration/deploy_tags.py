"""Kubernetes placement of the pipeline steps: op tags for ``dagster_k8s.k8s_job_executor``.

With the k8s_job_executor every step runs in a pod of its own, and the ``dagster-k8s/config`` tag of
the step's op adds to that pod: resource requests and limits, a node selector and tolerations.

* GPU steps (training; generation of the candidate pool samples from the model): one
  ``nvidia.com/gpu``, nodes labelled ``node-pool=gpu``, tolerating the usual ``nvidia.com/gpu`` taint;
* selection steps (MI pairs, IPF, trimming, refinement, coherence): nodes labelled
  ``node-pool=cpu``, generous memory (pool code matrices live in memory);
* every other step (source_data, quality_report): the run defaults of the instance
  (``run_k8s_config`` in deploy/k8s/dagster.yaml).

Attach with ``@dg.asset(..., op_tags=step_tags("trained_generator"))``; the names are the last
part of the asset key, so the flat and the sequential graph share them. deploy/k8s/README.md
explains the deployment; tests/orchestration/test_deploy.py checks these dicts against dagster-k8s.

Both node selectors use the same label key on purpose: dagster-k8s deep-merges a step's config
into the run defaults (``run_k8s_config``, which select ``node-pool: cpu``), so a different key
would add a second, unsatisfiable requirement instead of replacing the value.
"""

from __future__ import annotations

import copy
import os
from typing import Any

K8S_CONFIG_TAG = "dagster-k8s/config"  # dagster_k8s.job.USER_DEFINED_K8S_CONFIG_KEY
NODE_POOL_TAG = "synth/node-pool"  # plain tag: executor-level concurrency limits key on it
GPU_RESOURCE = "nvidia.com/gpu"

NODE_LABEL = "node-pool"
GPU_NODE_SELECTOR = {NODE_LABEL: "gpu"}
CPU_NODE_SELECTOR = {NODE_LABEL: "cpu"}
GPU_TOLERATIONS = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]

GPU_STEP_TAGS: dict[str, Any] = {
    NODE_POOL_TAG: "gpu",
    K8S_CONFIG_TAG: {
        "container_config": {
            "resources": {
                "requests": {"cpu": "4", "memory": "16Gi", GPU_RESOURCE: "1"},
                "limits": {"memory": "32Gi", GPU_RESOURCE: "1"},
            }
        },
        "pod_spec_config": {"node_selector": GPU_NODE_SELECTOR, "tolerations": GPU_TOLERATIONS},
    },
}

CPU_STEP_TAGS: dict[str, Any] = {
    NODE_POOL_TAG: "cpu",
    K8S_CONFIG_TAG: {
        "container_config": {
            "resources": {
                "requests": {"cpu": "4", "memory": "16Gi"},
                "limits": {"memory": "32Gi"},
            }
        },
        "pod_spec_config": {"node_selector": CPU_NODE_SELECTOR},
    },
}

#: Last part of the asset key -> op tags. Steps not listed run with the instance's run defaults.
STEP_TAGS: dict[str, dict[str, Any]] = {
    "trained_generator": GPU_STEP_TAGS,
    "candidate_pool": GPU_STEP_TAGS,
    "mi_pairs": CPU_STEP_TAGS,
    "ipf_subset": CPU_STEP_TAGS,
    "trimmed_subset": CPU_STEP_TAGS,
    "refined_output": CPU_STEP_TAGS,
    "coherence_subset": CPU_STEP_TAGS,
}

EXECUTOR_ENV = "SYNTH_EXECUTOR"  # "k8s" selects the k8s_job_executor (see executor_from_env)
MAX_CONCURRENT_STEPS = 4
GPU_STEPS_PER_RUN = 1


def step_tags(step: str) -> dict[str, Any]:
    """A copy of the op tags for a step (``{}`` for steps with no placement of their own)."""
    return copy.deepcopy(STEP_TAGS.get(step, {}))


def k8s_executor_config() -> dict[str, Any]:
    """Config of the k8s_job_executor: bounded parallel step pods, one GPU step at a time per run.

    Image, namespace, env config maps and secrets are inherited from the K8sRunLauncher.
    """
    return {
        "max_concurrent": MAX_CONCURRENT_STEPS,
        "tag_concurrency_limits": [{"key": NODE_POOL_TAG, "value": "gpu", "limit": GPU_STEPS_PER_RUN}],
    }


def executor_from_env():
    """``k8s_job_executor`` configured as above when ``$SYNTH_EXECUTOR`` is ``k8s``, else None (Dagster's default).

    For ``dg.Definitions(..., executor=executor_from_env())``.
    """
    if os.environ.get(EXECUTOR_ENV, "").strip().lower() != "k8s":
        return None
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(k8s_executor_config(), name="synth_k8s_executor")
