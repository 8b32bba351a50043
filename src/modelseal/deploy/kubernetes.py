"""Kubernetes manifests of a seal's server: Deployment, Service, PDB, HPA (and trusted keys).

The pod is sized from the seal (``sizing``): the startupProbe gives the server the measured
start-up time times a safety factor before liveness and readiness take over, and memory
follows the measured footprint and the model's size. Termination: a preStop pause of the
drain window lets endpoints catch up, then SIGTERM starts the server's own drain (it keeps
serving for the same window, then answers what its open connections still send, bounded by
its header timeout), all inside the grace period.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelseal.deploy.container import (
    DRAIN_SECONDS,
    LIVE_PATH,
    MODELS_MOUNT,
    PORT,
    READY_PATH,
    TMP,
    grace_seconds,
)
from modelseal.deploy.sizing import MIB, Sizing, quantity
from modelseal.errors import UsageError
from modelseal.seal.artifact import Seal
from modelseal.seal.signatures import load_trusted_keys

API_VERSION = "kustomize.config.k8s.io/v1beta1"
ANNOTATION_PREFIX = "modelseal.dev"
CONTAINER_NAME = "model"
CACHE_MOUNT = "/var/cache/modelseal"
TRUSTED_KEYS_MOUNT = "/etc/modelseal/trusted-keys"
PORT_NAME = "http"
GPU_RESOURCE = "nvidia.com/gpu"
STARTUP_PERIOD_SECONDS = 2
READINESS_PERIOD_SECONDS = 5
LIVENESS_PERIOD_SECONDS = 10
PROBE_TIMEOUT_SECONDS = 3
HPA_CPU_UTILIZATION = 70
SHM_SIZE = "256Mi"
URI_SCHEMES = ("s3://", "models:/", "https://", "http://")
DNS_LABEL = re.compile(r"[^a-z0-9-]+")
LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]+")
CONFIGMAP_KEY = re.compile(r"[^A-Za-z0-9._-]+")
TRUSTED_KEY_SUFFIX = ".pem"

Manifest = dict[str, Any]


@dataclass(frozen=True)
class KubernetesOptions:
    image: str
    replicas: int = 2
    max_replicas: int | None = None
    """The HPA's ceiling; 4 x replicas when not given."""
    gpus: int = 0
    source: str | None = None
    """None: the seal baked into the image; a path under /models (a PersistentVolumeClaim);
    or an s3://, models:/ or https:// URI fetched at start-up, credentials from a Secret."""
    namespace: str | None = None
    trusted_keys: tuple[Path, ...] = ()
    drain_seconds: int = DRAIN_SECONDS
    cpu: float = 1.0
    """CPU request in cores; the limit is twice it (start-up verification and bursts)."""
    volume_claim: str | None = None
    """The PersistentVolumeClaim holding the seal for a path source (default NAME-seals)."""

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise UsageError(f"--replicas must be 1 or more, got {self.replicas}")
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise UsageError(
                f"--max-replicas {self.max_replicas} is below --replicas {self.replicas}"
            )
        if self.gpus < 0:
            raise UsageError(f"--gpu must be 0 or more, got {self.gpus}")
        if self.drain_seconds < 0:
            raise UsageError(f"--drain-seconds must be 0 or more, got {self.drain_seconds}")
        if self.cpu <= 0:
            raise UsageError(f"--cpu must be above 0, got {self.cpu}")
        if not self.image or any(c.isspace() for c in self.image):
            raise UsageError(f"--image {self.image!r} is not an image reference")


@dataclass(frozen=True)
class Workload:
    """Everything the Deployment and the KServe resources share about the server's pod."""

    name: str
    seal_digest: str
    labels: dict[str, str]
    selector: dict[str, str]
    annotations: dict[str, str]
    container: Manifest
    pod: Manifest
    """Pod-level fields (volumes, security context, grace period) without containers."""
    options: KubernetesOptions
    sizing: Sizing
    trusted_keys: dict[str, str]


def workload(seal: Seal, sizing: Sizing, options: KubernetesOptions) -> Workload:
    name = resource_name(seal.name)
    selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name}
    labels = {
        **selector,
        "app.kubernetes.io/version": label_value(seal.version),
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/managed-by": "modelseal",
    }
    annotations = {
        f"{ANNOTATION_PREFIX}/seal-digest": f"sha256:{seal.digest}",
        f"{ANNOTATION_PREFIX}/seal": f"{seal.name} {seal.version} ({seal.runtime})",
        f"{ANNOTATION_PREFIX}/startup-budget-seconds": str(sizing.startup_budget_seconds),
    }
    if sizing.measured is not None:
        annotations[f"{ANNOTATION_PREFIX}/startup-measured-seconds"] = (
            f"{sizing.measured.seconds:.2f}"
        )
        annotations[f"{ANNOTATION_PREFIX}/measured-peak-rss"] = quantity(
            sizing.measured.peak_rss_bytes
        )
    keys = read_trusted_keys(options.trusted_keys)
    volumes, mounts = _volumes(name, seal, options, bool(keys))
    return Workload(
        name=name,
        seal_digest=seal.digest,
        labels=labels,
        selector=selector,
        annotations=annotations,
        container=_container(name, seal, sizing, options, mounts, bool(keys)),
        pod={
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": termination_grace(options.drain_seconds),
            "securityContext": {
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            **(_gpu_tolerations() if options.gpus else {}),
            "volumes": volumes,
        },
        options=options,
        sizing=sizing,
        trusted_keys=keys,
    )


def render_kubernetes(work: Workload) -> dict[str, Manifest]:
    """File name -> manifest for the plain Kubernetes resources (kustomization included)."""
    files = {
        "deployment.yaml": _deployment(work),
        "service.yaml": _service(work),
        "pdb.yaml": _disruption_budget(work),
        "hpa.yaml": _autoscaler(work),
    }
    if work.trusted_keys:
        files["trusted-keys.yaml"] = trusted_keys_configmap(work)
    files["kustomization.yaml"] = kustomization(list(files), work.options.namespace)
    return files


def termination_grace(drain_seconds: int) -> int:
    """preStop pause + the server's drain window + its linger bound + a margin."""
    return grace_seconds(drain_seconds, pre_stop_seconds=drain_seconds)


def resource_name(seal_name: str) -> str:
    """A DNS-1123 label from the seal's name (lower case, ``-`` for anything else)."""
    name = DNS_LABEL.sub("-", seal_name.lower()).strip("-")[:63].rstrip("-")
    if not name:
        raise UsageError(
            f"the seal's name {seal_name!r} gives no Kubernetes name (letters or digits needed)"
        )
    return name


def label_value(text: str) -> str:
    return LABEL_VALUE.sub("-", text)[:63].strip("-_.")


def read_trusted_keys(paths: tuple[Path, ...]) -> dict[str, str]:
    """ConfigMap key -> PEM text of each public key, read as the server reads them (a folder
    gives its ``*.pem`` files; each key checked as a P-256 or Ed25519 public key); private
    keys are refused. The server reads only visible ``*.pem`` files from the mounted folder,
    so every ConfigMap key is named that way (``ci.pub`` becomes ``ci.pub.pem``)."""
    keys: dict[str, str] = {}
    fingerprints: set[str] = set()
    for path in paths:
        if not path.is_dir():
            _check_public_pem(path)
        for trusted in load_trusted_keys([path]):
            if trusted.fingerprint in fingerprints:
                continue
            fingerprints.add(trusted.fingerprint)
            file = Path(trusted.source)
            text = file.read_text(encoding="ascii")
            keys[_configmap_key(file.name, keys)] = text if text.endswith("\n") else text + "\n"
    return keys


def kustomization(resources: list[str], namespace: str | None) -> Manifest:
    document: Manifest = {"apiVersion": API_VERSION, "kind": "Kustomization"}
    if namespace:
        document["namespace"] = namespace
    document["resources"] = resources
    return document


def metadata(work: Workload, name: str | None = None) -> Manifest:
    found: Manifest = {"name": name or work.name}
    if work.options.namespace:
        found["namespace"] = work.options.namespace
    found["labels"] = dict(work.labels)
    found["annotations"] = dict(work.annotations)
    return found


def pod_annotations(work: Workload) -> dict[str, str]:
    key = f"{ANNOTATION_PREFIX}/seal-digest"
    return {key: work.annotations[key]}


def trusted_keys_configmap(work: Workload) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(work, f"{work.name}-trusted-keys"),
        "data": work.trusted_keys,
    }


def _deployment(work: Workload) -> Manifest:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(work),
        "spec": {
            "replicas": work.options.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": work.selector},
            # A new pod takes traffic only once its own verification passed.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                # Only what should roll the pods: a new seal, not a new measurement.
                "metadata": {"labels": work.labels, "annotations": pod_annotations(work)},
                "spec": {**work.pod, "containers": [work.container]},
            },
        },
    }


def _service(work: Workload) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(work),
        "spec": {
            "type": "ClusterIP",
            "selector": work.selector,
            "ports": [
                {"name": PORT_NAME, "port": PORT, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }


def _disruption_budget(work: Workload) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(work),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": work.selector}},
    }


def _autoscaler(work: Workload) -> Manifest:
    options = work.options
    cpu = {"type": "Utilization", "averageUtilization": HPA_CPU_UTILIZATION}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(work),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": work.name},
            "minReplicas": options.replicas,
            "maxReplicas": options.max_replicas or 4 * options.replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": cpu}}],
        },
    }


def _container(
    name: str,
    seal: Seal,
    sizing: Sizing,
    options: KubernetesOptions,
    mounts: list[Manifest],
    trusted_keys: bool,
) -> Manifest:
    container: Manifest = {
        "name": CONTAINER_NAME,
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
        "env": _env(seal, options, trusted_keys),
    }
    if _source_kind(options.source) == "uri":
        container["envFrom"] = [{"secretRef": {"name": f"{name}-source", "optional": True}}]
    container.update(
        {
            "resources": _resources(sizing, options),
            "startupProbe": _probe(
                READY_PATH,
                STARTUP_PERIOD_SECONDS,
                math.ceil(sizing.startup_budget_seconds / STARTUP_PERIOD_SECONDS),
            ),
            "readinessProbe": _probe(READY_PATH, READINESS_PERIOD_SECONDS, 2),
            "livenessProbe": _probe(LIVE_PATH, LIVENESS_PERIOD_SECONDS, 3),
            "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(options.drain_seconds)]}}},
            "securityContext": {
                "runAsNonRoot": True,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumeMounts": mounts,
        }
    )
    return container


def _env(seal: Seal, options: KubernetesOptions, trusted_keys: bool) -> list[Manifest]:
    values = {
        "MODELSEAL_HOST": "0.0.0.0",
        "MODELSEAL_PORT": str(PORT),
        "MODELSEAL_DRAIN_SECONDS": str(options.drain_seconds),
        "MODELSEAL_LOG_FORMAT": "json",
        "MODELSEAL_EXPECT_DIGEST": f"sha256:{seal.digest}",
        "MODELSEAL_CACHE_DIR": CACHE_MOUNT,
        "TMPDIR": TMP,
    }
    if options.source is not None:
        values["MODELSEAL_SOURCE"] = _container_source(options.source)
    if options.gpus:
        values["MODELSEAL_DEVICE"] = "cuda"
        values["MODELSEAL_REQUIRE_GPU"] = str(options.gpus)
    if trusted_keys:
        values["MODELSEAL_TRUSTED_KEYS"] = TRUSTED_KEYS_MOUNT
    return [{"name": key, "value": value} for key, value in values.items()]


def _resources(sizing: Sizing, options: KubernetesOptions) -> Manifest:
    cpu = _cpu_quantity(options.cpu)
    requests: Manifest = {"cpu": cpu, "memory": quantity(sizing.memory_request_bytes)}
    limits: Manifest = {
        "cpu": _cpu_quantity(2 * options.cpu),
        "memory": quantity(sizing.memory_limit_bytes),
    }
    if options.gpus:
        requests[GPU_RESOURCE] = options.gpus
        limits[GPU_RESOURCE] = options.gpus
    return {"requests": requests, "limits": limits}


def _probe(path: str, period: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
        "failureThreshold": failures,
    }


def _volumes(
    name: str, seal: Seal, options: KubernetesOptions, trusted_keys: bool
) -> tuple[list[Manifest], list[Manifest]]:
    seal_bytes = sum(entry.size for entry in seal.manifest.files.values())
    volumes: list[Manifest] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": quantity(max(512 * MIB, 2 * seal_bytes))}},
        {"name": "cache", "emptyDir": {"sizeLimit": quantity(max(1024 * MIB, 3 * seal_bytes))}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
    ]
    mounts: list[Manifest] = [
        {"name": "tmp", "mountPath": TMP},
        {"name": "cache", "mountPath": CACHE_MOUNT},
        {"name": "dshm", "mountPath": "/dev/shm"},
    ]
    if trusted_keys:
        volumes.append({"name": "trusted-keys", "configMap": {"name": f"{name}-trusted-keys"}})
        mounts.append({"name": "trusted-keys", "mountPath": TRUSTED_KEYS_MOUNT, "readOnly": True})
    if _source_kind(options.source) == "path":
        claim = options.volume_claim or f"{name}-seals"
        volumes.append(
            {"name": "seals", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        )
        mounts.append({"name": "seals", "mountPath": MODELS_MOUNT, "readOnly": True})
    return volumes, mounts


def _source_kind(source: str | None) -> str | None:
    if source is None:
        return None
    if source.startswith(URI_SCHEMES):
        return "uri"
    path = _container_source(source)
    if not path.startswith(f"{MODELS_MOUNT}/"):
        raise UsageError(
            f"--source {source!r}: expected an s3://, models:/ or https:// URI, or the "
            f"seal's path in the mounted volume (under {MODELS_MOUNT}/)"
        )
    return "path"


def _container_source(source: str) -> str:
    return source.removeprefix("file://")


def _gpu_tolerations() -> Manifest:
    return {"tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]}


def _cpu_quantity(cores: float) -> str:
    millicores = math.ceil(cores * 1000)
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def _check_public_pem(path: Path) -> None:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--trusted-key {path}: cannot read it as a PEM file ({exc})") from exc
    if "PRIVATE KEY" in text:
        raise UsageError(
            f"--trusted-key {path} is a private key; give the public key "
            "(openssl pkey -in KEY.pem -pubout -out PUB.pem); a private key must never "
            "reach a cluster"
        )
    if "-----BEGIN PUBLIC KEY-----" not in text:
        raise UsageError(
            f"--trusted-key {path}: expected a PEM public key (-----BEGIN PUBLIC KEY-----)"
        )


def _configmap_key(file_name: str, taken: dict[str, str]) -> str:
    """A ConfigMap key the server reads from the mount: not hidden, ending in ``.pem``."""
    key = CONFIGMAP_KEY.sub("-", file_name).lstrip(".") or "key"
    if not key.endswith(TRUSTED_KEY_SUFFIX):
        key += TRUSTED_KEY_SUFFIX
    while key in taken:
        key = f"{len(taken)}-{key}"
    return key
