"""KServe resources: an InferenceService with modelseal as its predictor container, and a
ClusterServingRuntime that serves any seal given by ``storageUri``.

KServe's rules these follow: the predictor container is named ``kserve-container`` and
listens on one port (8080); the runtime is chosen automatically only when its
``supportedModelFormats`` entry has ``autoSelect: true`` and its ``protocolVersions``
include the protocol the InferenceService asks for (``v2`` here, which must be asked for
explicitly); the storage initializer puts the ``storageUri`` content under /mnt/models.
"""

from __future__ import annotations

import copy
from typing import Any

from modelseal.deploy.container import KSERVE_MODEL_DIR
from modelseal.deploy.kubernetes import (
    Manifest,
    Workload,
    kustomization,
    metadata,
    trusted_keys_configmap,
)

KSERVE_CONTAINER = "kserve-container"
MODEL_FORMAT = "modelseal"
MODEL_FORMAT_VERSION = "1"
"""The seal format this runtime reads."""
RUNTIME_NAME = "modelseal"
RUNTIME_POD_FIELDS = ("volumes", "tolerations")
"""The pod fields a ServingRuntime takes (it has no security context or grace period)."""
PROTOCOL = "v2"
STORAGE_SCHEMES = ("s3://", "gs://", "https://", "http://", "pvc://")
"""Sources KServe's storage initializer can fetch (a models:/ registry URI is not one)."""


def render_kserve(work: Workload) -> dict[str, Manifest]:
    files = {
        "inferenceservice.yaml": inference_service(work),
        "clusterservingruntime.yaml": cluster_serving_runtime(work),
    }
    source = work.options.source
    if source is not None and source.startswith(STORAGE_SCHEMES):
        files["inferenceservice-storage.yaml"] = storage_inference_service(work, source)
    if work.trusted_keys:
        # Its pods mount the keys too, and kustomize loads no file outside its own folder.
        files["trusted-keys.yaml"] = trusted_keys_configmap(work)
    files["kustomization.yaml"] = kustomization(list(files), work.options.namespace)
    return files


def inference_service(work: Workload) -> Manifest:
    """The seal's own server image as a custom predictor speaking the v2 protocol."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata(work),
        "spec": {"predictor": {**_scaling(work), **work.pod, "containers": [_container(work)]}},
    }


def cluster_serving_runtime(work: Workload) -> Manifest:
    """A runtime for ``modelFormat: modelseal``: the seal comes from /mnt/models."""
    container = _container(work, source=KSERVE_MODEL_DIR)
    # A runtime serves any seal: it pins no digest (an InferenceService does).
    container["env"] = [e for e in container["env"] if e["name"] != "MODELSEAL_EXPECT_DIGEST"]
    container.pop("envFrom", None)
    # Cluster-scoped and shared by every seal: no namespace, no seal's labels.
    runtime_meta = {"name": RUNTIME_NAME, "labels": {"app.kubernetes.io/managed-by": "modelseal"}}
    pod = {key: value for key, value in work.pod.items() if key in RUNTIME_POD_FIELDS}
    pod["volumes"] = [v for v in pod.get("volumes", []) if v["name"] != "seals"]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "seals"]
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ClusterServingRuntime",
        "metadata": runtime_meta,
        "spec": {
            "supportedModelFormats": [
                {"name": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION, "autoSelect": True}
            ],
            "protocolVersions": [PROTOCOL],
            "multiModel": False,
            **pod,
            "containers": [container],
        },
    }


def storage_inference_service(work: Workload, storage_uri: str) -> Manifest:
    """An InferenceService that names only the seal's location; KServe picks the runtime."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata(work, f"{work.name}-storage"),
        "spec": {
            "predictor": {
                **_scaling(work),
                "model": {
                    "modelFormat": {"name": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION},
                    "protocolVersion": PROTOCOL,
                    "storageUri": storage_uri,
                    "env": [_digest_env(work)],
                },
            }
        },
    }


def _container(work: Workload, source: str | None = None) -> Manifest:
    container: Manifest = copy.deepcopy(work.container)
    container["name"] = KSERVE_CONTAINER
    env: list[dict[str, Any]] = container["env"]
    if source is not None:
        env = [e for e in env if e["name"] != "MODELSEAL_SOURCE"]
        env.append({"name": "MODELSEAL_SOURCE", "value": source})
    env.append({"name": "PROTOCOL", "value": PROTOCOL})
    container["env"] = env
    return container


def _scaling(work: Workload) -> Manifest:
    options = work.options
    return {
        "minReplicas": options.replicas,
        "maxReplicas": options.max_replicas or 4 * options.replicas,
    }


def _digest_env(work: Workload) -> Manifest:
    return {"name": "MODELSEAL_EXPECT_DIGEST", "value": f"sha256:{work.seal_digest}"}
