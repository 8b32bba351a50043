"""The trusted keys and the digest pin of `modelseal k8s` meet a real `modelseal serve`.

The manifests are rendered by the real CLI; the pod is then materialised as the kubelet would
make it: every volume at its mountPath under a folder standing for the container's root (the
ConfigMap as kubelet's atomic writer lays it out: a hidden timestamped folder, a ``..data``
link to it, and one link per key), and a `modelseal serve` process started with exactly the
container's environment (its paths moved under that folder, and the address moved to a free
loopback port) and no SOURCE argument, as the image's entrypoint runs it. The keys are named
as users name them: ``trainer.pub`` (cosign's habit, no ``.pem``) and a folder of keys.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from modelseal import open_seal
from modelseal.seal.keys import KeyPair, generate_key_pair
from tests.cli_process import run_modelseal
from tests.deploy.images import golden_comparisons
from tests.deploy.seals import seal_with
from tests.serving.server import RunningServer, free_port, wait_until

pytestmark = pytest.mark.slow
IMAGE = "registry.example.com/digits:1.0.0"
SEAL_FILE = "digits-1.0.0.seal"
SOURCE = f"/models/{SEAL_FILE}"
KUBELET_DATA = "..data"
KUBELET_PAYLOAD = "..2026_12_01_00_00_00.000000001"
CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
"""Kubernetes' IsConfigMapKey: these characters only, and not ``.``, ``..`` or ``..*``."""
START_TIMEOUT_S = 120.0
REFUSAL_TIMEOUT_S = 240.0
Manifest = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    deployment: Manifest
    container: Manifest
    configmap: Manifest
    inference_service: Manifest
    kserve_resources: dict[str, Manifest]
    """What ``kubectl apply -k DIR/kserve`` applies, by file name."""


@dataclass(frozen=True)
class Pod:
    root: Path
    """Stands for the container's filesystem root: every mount lies at root + mountPath."""
    env: dict[str, str]
    """The process environment: the container's, with paths and address moved."""
    url: str


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    folder = tmp_path_factory.mktemp("keys")
    return {name: generate_key_pair(folder / name) for name in ("trainer", "ci", "stranger")}


@pytest.fixture(scope="module")
def signed(
    demo_seal_path: Path, keys: dict[str, KeyPair], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The demo seal unsigned, signed by each key (real `modelseal sign`), and a different
    seal (another digest) signed by the trainer."""
    folder = tmp_path_factory.mktemp("signed")
    seals = {}
    for signer in ("unsigned", "trainer", "ci", "stranger"):
        copy = folder / signer / SEAL_FILE
        shutil.copytree(demo_seal_path, copy)
        if signer != "unsigned":
            _sign(copy, keys[signer])
        seals[signer] = copy
    other = seal_with(demo_seal_path, folder / "other" / SEAL_FILE,
                      lock=open_seal(demo_seal_path).lock_lines())  # fmt: skip
    _sign(other.root, keys["trainer"])
    seals["other-seal-by-trainer"] = other.root
    return seals


@pytest.fixture(scope="module")
def rendered(
    signed: dict[str, Path], keys: dict[str, KeyPair], tmp_path_factory: pytest.TempPathFactory
) -> Rendered:
    """`modelseal k8s` for the trainer-signed seal, trusting ``trainer.pub`` (a file named
    without .pem) and a folder holding the CI key."""
    folder = tmp_path_factory.mktemp("k8s")
    cosign_style = folder / "trainer.pub"
    shutil.copy(keys["trainer"].public_key, cosign_style)
    ci_folder = folder / "ci-keys"
    ci_folder.mkdir()
    shutil.copy(keys["ci"].public_key, ci_folder)
    out = folder / "manifests"
    result = run_modelseal(
        "k8s", str(signed["trainer"]), "--image", IMAGE, "-o", str(out), "--source", SOURCE,
        "--trusted-key", str(cosign_style), "--trusted-key", str(ci_folder),
        "--startup-seconds", "4", "--memory-mib", "256",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    deployment = _yaml(out / "deployment.yaml")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return Rendered(
        deployment=deployment,
        container=container,
        configmap=_yaml(out / "trusted-keys.yaml"),
        inference_service=_yaml(out / "kserve" / "inferenceservice.yaml"),
        kserve_resources={
            name: _yaml(out / "kserve" / name)
            for name in _yaml(out / "kserve" / "kustomization.yaml")["resources"]
        },
    )


@pytest.fixture
def servers() -> Iterator[list[RunningServer]]:
    started: list[RunningServer] = []
    yield started
    for server in started:
        server.stop(signal.SIGKILL)


def test_the_configmap_keys_are_what_serve_reads_from_a_mounted_folder(
    rendered: Rendered, keys: dict[str, KeyPair]
) -> None:
    data = rendered.configmap["data"]
    assert len(data) == 2, data
    for key in data:
        assert CONFIGMAP_KEY.match(key) and not key.startswith("."), key
        assert key.endswith(".pem"), f"serve reads only *.pem files from a folder, got {key}"
    assert sorted(data.values()) == sorted(
        keys[name].public_key.read_text() for name in ("trainer", "ci")
    )
    env = _env(rendered.container)
    (mount,) = [m for m in rendered.container["volumeMounts"] if m["name"] == "trusted-keys"]
    assert env["MODELSEAL_TRUSTED_KEYS"] == mount["mountPath"] and mount["readOnly"] is True
    volumes = {v["name"]: v for v in rendered.deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["trusted-keys"]["configMap"]["name"] == rendered.configmap["metadata"]["name"]


def test_the_pinned_digest_is_the_seals_in_the_deployment_and_the_inference_service(
    rendered: Rendered, signed: dict[str, Path]
) -> None:
    digest = f"sha256:{open_seal(signed['trainer']).digest}"
    assert _env(rendered.container)["MODELSEAL_EXPECT_DIGEST"] == digest
    template = rendered.deployment["spec"]["template"]
    assert template["metadata"]["annotations"]["modelseal.dev/seal-digest"] == digest
    (predictor,) = rendered.inference_service["spec"]["predictor"]["containers"]
    for name in ("MODELSEAL_EXPECT_DIGEST", "MODELSEAL_TRUSTED_KEYS", "MODELSEAL_SOURCE"):
        assert _env(predictor)[name] == _env(rendered.container)[name], name
    # The InferenceService's pod mounts the same ConfigMap: its own kustomization applies it.
    volumes = rendered.inference_service["spec"]["predictor"]["volumes"]
    (mounted,) = [v["configMap"]["name"] for v in volumes if "configMap" in v]
    applied = [m for m in rendered.kserve_resources.values() if m["kind"] == "ConfigMap"]
    assert [(m["metadata"]["name"], m["data"]) for m in applied] == [
        (mounted, rendered.configmap["data"])
    ]


@pytest.mark.parametrize("signer", ["trainer", "ci"])
def test_a_seal_signed_by_a_trusted_key_turns_ready_in_the_pod_and_answers_golden(
    signer: str,
    rendered: Rendered,
    signed: dict[str, Path],
    tmp_path: Path,
    servers: list[RunningServer],
) -> None:
    pod = materialise_pod(rendered, signed[signer], tmp_path)
    server = _launch(pod, tmp_path)
    servers.append(server)
    ready_path = rendered.container["readinessProbe"]["httpGet"]["path"]
    wait_until(lambda: _answers(server, ready_path), "readiness on the probe's path",
               START_TIMEOUT_S)  # fmt: skip
    for comparison in golden_comparisons(signed[signer], server.url):
        assert comparison.passed, comparison
    cached = pod.root / "var" / "cache" / "modelseal"
    assert cached.is_dir()  # the cache emptyDir, not the read-only image
    assert server.stop() == 0, server.logs()[-3000:]


@pytest.mark.parametrize(
    ("seal", "expected"),
    [
        ("unsigned", "it carries no signatures"),
        ("stranger", "valid, but not a trusted key"),
        ("other-seal-by-trainer", "digest"),
    ],
)
def test_a_seal_nobody_trusted_vouched_for_is_refused_with_exit_2_before_binding(
    seal: str,
    expected: str,
    rendered: Rendered,
    signed: dict[str, Path],
    keys: dict[str, KeyPair],
    tmp_path: Path,
) -> None:
    pod = materialise_pod(rendered, signed[seal], tmp_path)
    port = int(pod.env["MODELSEAL_PORT"])
    result = subprocess.run(
        [sys.executable, "-m", "modelseal", "serve"], env=pod.env, capture_output=True,
        text=True, timeout=REFUSAL_TIMEOUT_S, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert expected in output, output[-3000:]
    assert "Traceback" not in output
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 2):
        pass
    if seal == "other-seal-by-trainer":
        # Signed by a trusted key, but not the seal the manifests pinned: both digests named.
        assert open_seal(signed[seal]).digest in output
        assert pod.env["MODELSEAL_EXPECT_DIGEST"].removeprefix("sha256:") in output
    else:
        for name in ("trainer", "ci"):
            assert keys[name].fingerprint in output, f"{name}'s fingerprint not named"
    if seal == "stranger":
        assert keys["stranger"].fingerprint in output


def materialise_pod(rendered: Rendered, seal: Path, folder: Path) -> Pod:
    """The Deployment's pod as the kubelet makes it, with ``seal`` in the seals volume."""
    root = folder / "pod"
    spec = rendered.deployment["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    mounts = rendered.container["volumeMounts"]
    for mount in mounts:
        target = root / mount["mountPath"].lstrip("/")
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            assert volume["configMap"]["name"] == rendered.configmap["metadata"]["name"]
            _write_configmap(target, rendered.configmap["data"])
        elif "persistentVolumeClaim" in volume:
            target.mkdir(parents=True)
            shutil.copytree(seal, target / SEAL_FILE)
        else:
            assert "emptyDir" in volume, volume
            target.mkdir(parents=True, exist_ok=True)
    env = {}
    for name, value in _env(rendered.container).items():
        env[name] = _moved(value, [m["mountPath"] for m in mounts], root)
    # Tests listen on loopback only; the pod's 0.0.0.0:8080 becomes 127.0.0.1:free port.
    assert (env["MODELSEAL_HOST"], env["MODELSEAL_PORT"]) == ("0.0.0.0", "8080")
    env["MODELSEAL_HOST"], env["MODELSEAL_PORT"] = "127.0.0.1", str(free_port())
    # What the image's own ENV adds (Dockerfile: PATH to the venv, HOME on the tmpfs).
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.defpath}"
    env["HOME"] = env["TMPDIR"]
    assert env["MODELSEAL_SOURCE"] == str(root / SOURCE.lstrip("/"))
    return Pod(root, env, f"http://127.0.0.1:{env['MODELSEAL_PORT']}")


def _write_configmap(target: Path, data: dict[str, str]) -> None:
    """kubelet's atomic writer: the files in a hidden payload folder, ``..data`` linking to
    it, and each key a link through ``..data``."""
    payload = target / KUBELET_PAYLOAD
    payload.mkdir(parents=True)
    for key, text in data.items():
        (payload / key).write_text(text)
        (payload / key).chmod(0o644)
    (target / KUBELET_DATA).symlink_to(KUBELET_PAYLOAD)
    for key in data:
        (target / key).symlink_to(f"{KUBELET_DATA}/{key}")


def _moved(value: str, mount_paths: list[str], root: Path) -> str:
    for mount_path in sorted(mount_paths, key=len, reverse=True):
        if value == mount_path or value.startswith(f"{mount_path}/"):
            return str(root / value.lstrip("/"))
    return value


def _launch(pod: Pod, folder: Path) -> RunningServer:
    log = folder / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelseal", "serve"], env=pod.env, stdout=sink,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return RunningServer(process, pod.url, log)


def _answers(server: RunningServer, path: str) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"serve exited {server.process.returncode}:\n{server.logs()[-3000:]}")
    try:
        return httpx.get(server.url + path, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _sign(seal: Path, key: KeyPair) -> None:
    result = run_modelseal("sign", str(seal), "--key", str(key.private_key))
    assert result.returncode == 0, result.stderr


def _env(container: Manifest) -> dict[str, str]:
    return {entry["name"]: entry["value"] for entry in container["env"]}


def _yaml(path: Path) -> Manifest:
    document: Manifest = yaml.safe_load(path.read_text())
    return document
