"""Kubernetes and KServe manifests: schema-valid (kubernetes-validate --strict against 1.30,
KServe's own CRD schemas), and right in what they mean: selectors, ports and probe paths
that a real server answers, a start-up budget above a real start-up, a drain inside the
grace period, the seal digest pinned, trusted keys mounted read-only."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from modelseal.deploy import KubernetesOptions, write_manifests
from modelseal.deploy.container import DRAIN_SECONDS, LINGER_SECONDS, PORT
from modelseal.deploy.sizing import MIB, StartupMeasurement
from modelseal.errors import UsageError
from modelseal.seal.artifact import Seal
from modelseal.serving.config import ServeConfig
from tests.deploy.crd_schemas import kserve_errors, schemas_folder
from tests.serving.server import start_server

K8S_VERSION = "1.30.0"
IMAGE = "registry.example.com/digits:1.0.0"
MEASURED = StartupMeasurement(seconds=4.0, peak_rss_bytes=200 * MIB, verdict="consistent")
Manifest = dict[str, Any]


def load(folder: Path) -> dict[str, Manifest]:
    return {
        str(path.relative_to(folder)): yaml.safe_load(path.read_text())
        for path in sorted(folder.rglob("*.yaml"))
    }


def render(seal: Seal, out: Path, measurement: StartupMeasurement = MEASURED,
           **options: Any) -> dict[str, Manifest]:  # fmt: skip
    write_manifests(seal, out, KubernetesOptions(image=IMAGE, **options), measurement=measurement)
    return load(out)


def container_of(deployment: Manifest) -> Manifest:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def env_of(container: Manifest) -> dict[str, str]:
    return {entry["name"]: entry["value"] for entry in container["env"]}


@pytest.fixture
def public_key(tmp_path: Path) -> Path:
    private = tmp_path / "signer.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(private)],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    public = tmp_path / "signer.pub.pem"
    subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    return public


VARIANTS: dict[str, dict[str, Any]] = {
    "baked": {},
    "s3-gpu-namespace": {"source": "s3://models/digits.seal", "gpus": 1, "namespace": "ml"},
    "volume": {"source": "/models/digits-1.0.0.seal", "replicas": 1},
    "registry": {"source": "models:/digits/1", "drain_seconds": 12, "cpu": 0.5},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_kubernetes_manifest_passes_strict_validation(
    demo_seal: Seal, tmp_path: Path, variant: str, public_key: Path
) -> None:
    manifests = render(demo_seal, tmp_path, trusted_keys=(public_key,), **VARIANTS[variant])
    plain = {n: m for n, m in manifests.items() if "/" not in n and n != "kustomization.yaml"}
    assert {m["kind"] for m in plain.values()} == {
        "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ConfigMap",
    }  # fmt: skip
    for manifest in plain.values():
        # Raises ValidationError on any violation, SchemaNotFoundError on an unknown kind.
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    kustomization = manifests["kustomization.yaml"]
    assert sorted(kustomization["resources"]) == sorted(plain)


def test_the_validator_rejects_what_a_strict_api_server_would(
    demo_seal: Seal, tmp_path: Path
) -> None:
    deployment = render(demo_seal, tmp_path)["deployment.yaml"]
    container_of(deployment)  # the manifest is well formed
    deployment["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["periodSecs"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_the_kubernetes_validate_command_passes_the_written_files(
    demo_seal: Seal, tmp_path: Path
) -> None:
    render(demo_seal, tmp_path, source="s3://models/digits.seal")
    files = [str(tmp_path / name) for name in ("deployment.yaml", "service.yaml", "pdb.yaml",
                                               "hpa.yaml")]  # fmt: skip
    command = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run([str(command), "--strict", "-k", K8S_VERSION, *files],
                            capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == len(files)


def test_selectors_ports_and_names_line_up(demo_seal: Seal, tmp_path: Path) -> None:
    manifests = render(demo_seal, tmp_path)
    deployment = manifests["deployment.yaml"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert manifests["service.yaml"]["spec"]["selector"].items() <= pod_labels.items()
    pdb = manifests["pdb.yaml"]["spec"]["selector"]["matchLabels"]
    assert pdb.items() <= pod_labels.items()
    target = manifests["hpa.yaml"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    container = container_of(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": PORT}
    assert env_of(container)["MODELSEAL_PORT"] == str(PORT)
    (service_port,) = manifests["service.yaml"]["spec"]["ports"]
    assert service_port["targetPort"] in ports
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in ports


def test_probe_paths_answer_on_a_real_server_and_the_budget_covers_the_measured_start(
    demo_seal_path: Path,
    demo_seal: Seal,
    demo_measurement: StartupMeasurement,
    tmp_path: Path,
) -> None:
    container = container_of(render(demo_seal, tmp_path, demo_measurement)["deployment.yaml"])
    server = start_server(demo_seal_path, tmp_path)  # returns once /v2/health/ready is 200
    try:
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            path = container[probe]["httpGet"]["path"]
            assert httpx.get(server.url + path, timeout=10).status_code == 200, probe
    finally:
        server.stop()
    # Against the product's own measurement, not a second stopwatch here: how long one more
    # start takes on a loaded machine is no property of the manifests.
    startup = container["startupProbe"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    assert budget >= 3 * demo_measurement.seconds


def test_the_drain_fits_in_the_grace_period(demo_seal: Seal, tmp_path: Path) -> None:
    assert ServeConfig().drain_seconds == DRAIN_SECONDS
    assert ServeConfig().header_timeout_s == LINGER_SECONDS
    for drain in (0, 5, 30):
        deployment = render(demo_seal, tmp_path / str(drain), drain_seconds=drain)[
            "deployment.yaml"
        ]
        pod = deployment["spec"]["template"]["spec"]
        container = container_of(deployment)
        pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop == ["sleep", str(drain)]
        assert env_of(container)["MODELSEAL_DRAIN_SECONDS"] == str(drain)
        assert pod["terminationGracePeriodSeconds"] > drain + drain + LINGER_SECONDS
        strategy = deployment["spec"]["strategy"]["rollingUpdate"]
        assert strategy["maxUnavailable"] == 0


def test_resources_follow_the_measurement_and_the_pod_is_locked_down(
    demo_seal: Seal, tmp_path: Path
) -> None:
    deployment = render(demo_seal, tmp_path, gpus=2)["deployment.yaml"]
    container = container_of(deployment)
    resources = container["resources"]
    model_bytes = sum(e.size for p, e in demo_seal.manifest.files.items() if p.startswith("model/"))
    request = math.ceil((1.25 * MEASURED.peak_rss_bytes + 64 * MIB) / (16 * MIB)) * 16
    limit = math.ceil((request * MIB + 2 * model_bytes + 128 * MIB) / (16 * MIB)) * 16
    assert resources["requests"]["memory"] == f"{request}Mi"
    assert resources["limits"]["memory"] == f"{limit}Mi"
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == 2
    assert env_of(container)["MODELSEAL_REQUIRE_GPU"] == "2"
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    cache = env_of(container)["MODELSEAL_CACHE_DIR"]
    assert "emptyDir" in volumes[mounts[cache]]


def test_the_seal_digest_is_pinned_and_credentials_come_from_a_secret(
    demo_seal: Seal, tmp_path: Path
) -> None:
    manifests = render(demo_seal, tmp_path, source="s3://models/digits.seal")
    container = container_of(manifests["deployment.yaml"])
    assert env_of(container)["MODELSEAL_EXPECT_DIGEST"] == f"sha256:{demo_seal.digest}"
    assert env_of(container)["MODELSEAL_SOURCE"] == "s3://models/digits.seal"
    assert container["envFrom"] == [{"secretRef": {"name": "digits-source", "optional": True}}]
    assert all("AWS" not in text for text in map(str, manifests.values()))


def test_a_volume_source_mounts_its_claim_read_only(demo_seal: Seal, tmp_path: Path) -> None:
    manifests = render(demo_seal, tmp_path, source="/models/digits-1.0.0.seal",
                       volume_claim="seals")  # fmt: skip
    deployment = manifests["deployment.yaml"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["seals"]["persistentVolumeClaim"] == {"claimName": "seals", "readOnly": True}
    mounts = {m["name"]: m for m in container_of(deployment)["volumeMounts"]}
    assert mounts["seals"] == {"name": "seals", "mountPath": "/models", "readOnly": True}
    with pytest.raises(UsageError, match="under /models/"):
        render(demo_seal, tmp_path / "bad", source="/data/digits.seal")


def test_trusted_keys_are_mounted_read_only_and_named_to_the_server(
    demo_seal: Seal, tmp_path: Path, public_key: Path
) -> None:
    manifests = render(demo_seal, tmp_path / "out", trusted_keys=(public_key,))
    configmap = manifests["trusted-keys.yaml"]
    assert configmap["data"] == {public_key.name: public_key.read_text()}
    deployment = manifests["deployment.yaml"]
    container = container_of(deployment)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "trusted-keys"]
    assert mount["readOnly"] is True
    assert env_of(container)["MODELSEAL_TRUSTED_KEYS"] == mount["mountPath"]
    assert volumes["trusted-keys"]["configMap"]["name"] == configmap["metadata"]["name"]
    private = public_key.with_name("signer.pem")
    with pytest.raises(UsageError, match="is a private key"):
        render(demo_seal, tmp_path / "private", trusted_keys=(private,))
    not_a_key = tmp_path / "notes.txt"
    not_a_key.write_text("hello\n")
    with pytest.raises(UsageError, match="expected a PEM public key"):
        render(demo_seal, tmp_path / "text", trusted_keys=(not_a_key,))


def test_kserve_resources_follow_its_schemas_and_rules(demo_seal: Seal, tmp_path: Path) -> None:
    folder = schemas_folder()
    if folder is None:
        pytest.skip("../shared/kserve-crd-schemas is not beside this checkout")
    manifests = render(demo_seal, tmp_path, source="s3://models/digits.seal", gpus=1,
                       namespace="ml")  # fmt: skip
    kserve = {n.split("/", 1)[1]: m for n, m in manifests.items() if n.startswith("kserve/")}
    for name, manifest in kserve.items():
        if name != "kustomization.yaml":
            assert kserve_errors(folder, manifest) == [], name
    service = kserve["inferenceservice.yaml"]["spec"]["predictor"]
    (container,) = service["containers"]
    assert container["name"] == "kserve-container"
    assert [p["containerPort"] for p in container["ports"]] == [8080]
    assert env_of(container)["PROTOCOL"] == "v2"
    assert env_of(container)["MODELSEAL_EXPECT_DIGEST"] == f"sha256:{demo_seal.digest}"
    runtime = kserve["clusterservingruntime.yaml"]
    assert "namespace" not in runtime["metadata"]
    assert runtime["spec"]["supportedModelFormats"] == [
        {"name": "modelseal", "version": "1", "autoSelect": True}
    ]
    (runtime_container,) = runtime["spec"]["containers"]
    assert runtime_container["name"] == "kserve-container"
    assert env_of(runtime_container)["MODELSEAL_SOURCE"] == "/mnt/models"
    assert "MODELSEAL_EXPECT_DIGEST" not in env_of(runtime_container)
    model = kserve["inferenceservice-storage.yaml"]["spec"]["predictor"]["model"]
    # KServe auto-selects a runtime whose format has autoSelect and whose protocols
    # include the one asked for; an InferenceService that names none asks for v1.
    assert model["modelFormat"]["name"] == runtime["spec"]["supportedModelFormats"][0]["name"]
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    assert model["storageUri"] == "s3://models/digits.seal"
    assert sorted(kserve["kustomization.yaml"]["resources"]) == sorted(
        n for n in kserve if n != "kustomization.yaml"
    )


def test_the_strict_kserve_check_rejects_an_undeclared_field(
    demo_seal: Seal, tmp_path: Path
) -> None:
    folder = schemas_folder()
    if folder is None:
        pytest.skip("../shared/kserve-crd-schemas is not beside this checkout")
    service = render(demo_seal, tmp_path)["kserve/inferenceservice.yaml"]
    service["spec"]["predictor"]["containers"][0]["readinesProbe"] = {}
    service["spec"]["predictor"]["containers"][0]["resources"]["limits"]["cpu"] = 1.5
    errors = kserve_errors(folder, service)
    assert any("readinesProbe" in error for error in errors)
    assert any("1.5" in error for error in errors)


def test_names_are_made_valid_and_an_empty_one_is_refused(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    from modelseal.deploy.kubernetes import label_value, resource_name

    assert resource_name("My_Model.v2") == "my-model-v2"
    assert label_value("1.0.0+local build") == "1.0.0-local-build"
    with pytest.raises(UsageError, match="gives no Kubernetes name"):
        resource_name("___")
    with pytest.raises(UsageError, match="--replicas must be 1 or more"):
        KubernetesOptions(image=IMAGE, replicas=0)
