"""The Dockerfile, build context and compose.yaml, checked without building: hadolint for every
variant, the decisions each one encodes (base image, CUDA table, layer order, pins, labels),
and that no credential reaches any file. Real builds are in test_serving_image.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelseal.deploy import Weights, write_dockerfile
from modelseal.deploy.container import DRAIN_SECONDS, LINGER_SECONDS, MODELS_MOUNT, PORT
from modelseal.deploy.dockerfile import LABEL_PREFIX
from modelseal.deploy.sizing import MIB, StartupMeasurement
from modelseal.errors import UsageError
from modelseal.seal.artifact import Seal, open_seal
from tests.deploy.seals import seal_with, torch_build
from tests.serving.server import free_port, start_server

HADOLINT = Path(sys.executable).parent / "hadolint"
MEASURED = StartupMeasurement(seconds=4.0, peak_rss_bytes=200 * MIB, verdict="consistent")


def render(seal: Seal, out: Path, **options: object) -> str:
    write_dockerfile(seal, out, measurement=MEASURED, **options)  # type: ignore[arg-type]
    return (out / "Dockerfile").read_text()


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--no-color", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def cuda_seal(demo_seal_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Seal:
    lock = [*open_seal(demo_seal_path).lock_lines(), "torch==2.3.1+cu121"]
    return seal_with(
        demo_seal_path, tmp_path_factory.mktemp("cuda") / "cuda.seal",
        environment=torch_build("2.3.1+cu121", "12.1"), lock=lock,
    )  # fmt: skip


@pytest.mark.parametrize("weights", list(Weights))
@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu"])
def test_hadolint_passes_every_variant_with_no_finding(
    demo_seal: Seal, cuda_seal: Seal, weights: Weights, gpu: bool, tmp_path: Path
) -> None:
    source = {Weights.S3: "s3://models/digits.seal", Weights.REGISTRY: "models:/digits/1"}
    render(cuda_seal if gpu else demo_seal, tmp_path, weights=weights, gpu=gpu,
           source=source.get(weights))  # fmt: skip
    result = hadolint(tmp_path / "Dockerfile")
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hadolint_would_report_what_it_is_trusted_to_find(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11\nRUN pip install numpy\nUSER root\n")
    result = hadolint(bad)
    assert result.returncode != 0
    assert {"DL3013", "DL3042", "DL3002"} <= set(re.findall(r"DL\d{4}", result.stdout))


def test_the_base_is_the_sealed_python_and_a_digest_pinned_base_is_kept(
    demo_seal: Seal, tmp_path: Path
) -> None:
    recorded = json.loads((demo_seal.root / "environment.json").read_text())["python"]["version"]
    text = render(demo_seal, tmp_path / "default")
    assert f"ARG BASE_IMAGE=python:{recorded}-slim-bookworm\n" in text
    pinned = "registry.example.com/python@sha256:" + "ab" * 32
    text = render(demo_seal, tmp_path / "pinned", base_image=pinned)
    assert f"ARG BASE_IMAGE={pinned}\n" in text
    assert f'org.opencontainers.image.base.digest="sha256:{"ab" * 32}"' in text
    with pytest.raises(UsageError, match="not an image reference"):
        render(demo_seal, tmp_path / "bad", base_image="Python 3.11")


def test_gpu_takes_the_cuda_runtime_of_the_seals_build_and_its_wheel_index(
    cuda_seal: Seal, tmp_path: Path
) -> None:
    text = render(cuda_seal, tmp_path, gpu=True)
    assert "ARG BASE_IMAGE=nvidia/cuda:12.1.1-runtime-ubuntu22.04\n" in text
    version = cuda_seal.environment().python.version
    assert f"ARG BUILDER_IMAGE=python:{version}-slim-bookworm\n" in text
    assert f"uv python install --install-dir /opt/uv-python {version}" in text
    assert 'MODELSEAL_REQUIRE_GPU="1"' in text
    lock = (tmp_path / "requirements.lock").read_text().splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cu121" in lock
    assert "torch==2.3.1+cu121" in lock


def test_onnxruntime_gpu_gets_a_cudnn_base_and_a_cpu_build_is_refused(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    lock = open_seal(demo_seal_path).lock_lines()
    ort = seal_with(demo_seal_path, tmp_path / "ort.seal", environment={"torch": None},
                    lock=[*lock, "onnxruntime-gpu==1.20.1"])  # fmt: skip
    assert "ARG BASE_IMAGE=nvidia/cuda:12.9.1-cudnn-runtime-ubuntu24.04\n" in render(
        ort, tmp_path / "ort", gpu=True
    )
    cpu = seal_with(demo_seal_path, tmp_path / "cpu.seal",
                    environment=torch_build("2.13.0+cpu", None),
                    lock=[*lock, "torch==2.13.0+cpu"])  # fmt: skip
    with pytest.raises(UsageError, match=r"torch 2\.13\.0\+cpu.*--base-image"):
        render(cpu, tmp_path / "cpu", gpu=True)
    text = render(
        cpu, tmp_path / "given", gpu=True, base_image="nvidia/cuda:12.4.1-runtime-ubuntu22.04"
    )
    assert "ARG BASE_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04\n" in text


def test_layers_go_base_dependencies_weights_code_then_metadata(
    demo_seal: Seal, tmp_path: Path
) -> None:
    lines = render(demo_seal, tmp_path).splitlines()
    serving = lines.index("FROM ${BASE_IMAGE} AS serving")

    def first(fragment: str) -> int:
        return next(i for i, line in enumerate(lines) if i > serving and fragment in line)

    dependencies = first("python3 -m venv /opt/modelseal/venv")
    weights = first("COPY seal/")
    code = first("--no-deps --find-links /app")
    assert dependencies < weights < code < first("LABEL ") < first("ENTRYPOINT")
    assert first(f'MODELSEAL_EXPECT_DIGEST="sha256:{demo_seal.digest}"') > code


def test_another_seal_with_the_same_lock_changes_nothing_up_to_the_dependencies(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    """So its build reuses the dependency layers (the real rebuild is in the image tests)."""
    first = open_seal(demo_seal_path)
    second = seal_with(demo_seal_path, tmp_path / "other.seal", environment={"captured_at": "x"})
    assert first.digest != second.digest
    texts = [render(seal, tmp_path / seal.digest[:8]) for seal in (first, second)]
    cut = [text.index("# Weights:") for text in texts]
    assert texts[0][: cut[0]].split("\n", 3)[3] == texts[1][: cut[1]].split("\n", 3)[3]
    for name in ("requirements.lock", "requirements-serving.txt"):
        a, b = ((tmp_path / s.digest[:8] / name).read_bytes() for s in (first, second))
        assert a == b


def test_runtime_hygiene_user_healthcheck_stop_signal_and_exec_form(
    demo_seal: Seal, tmp_path: Path
) -> None:
    text = render(demo_seal, tmp_path)
    assert "\nUSER 10001:0\n" in text
    assert f"\nEXPOSE {PORT}\n" in text
    assert "\nSTOPSIGNAL SIGTERM\n" in text
    assert 'ENTRYPOINT ["/opt/modelseal/venv/bin/modelseal", "serve"]' in text
    assert "HEALTHCHECK --interval=5s --timeout=5s --start-period=30s --retries=3" in text
    assert "curl" not in text and "wget" not in text
    assert "chgrp 0 /tmp/modelseal && chmod 2775 /tmp/modelseal" in text
    assert re.findall(r"^ARG (\w+)", text, re.MULTILINE) == ["BASE_IMAGE", "BASE_IMAGE"]


def test_the_healthcheck_script_follows_readiness_of_a_real_server(
    demo_seal_path: Path, demo_seal: Seal, tmp_path: Path
) -> None:
    text = render(demo_seal, tmp_path)
    command = json.loads(re.search(r"CMD (\[.*\])", text)[1])  # type: ignore[index]
    assert command[:2] == ["python", "-c"]
    idle = subprocess.run(
        [sys.executable, "-c", command[2]], env={"MODELSEAL_PORT": str(free_port())},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert idle.returncode == 1 and "not ready" in idle.stderr
    server = start_server(demo_seal_path, tmp_path)
    try:
        port = server.url.rsplit(":", 1)[1]
        ready = subprocess.run(
            [sys.executable, "-c", command[2]], env={"MODELSEAL_PORT": port},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (ready.returncode, ready.stderr) == (0, "")
    finally:
        server.stop()


def test_labels_hold_the_seal_identity_and_the_full_lock(demo_seal: Seal, tmp_path: Path) -> None:
    plan, _context = write_dockerfile(demo_seal, tmp_path, measurement=MEASURED)
    text = (tmp_path / "Dockerfile").read_text()
    labels = dict(re.findall(r'^(?:LABEL |\s+)([\w.-]+)="([^"]*)"', text, re.MULTILINE))
    assert labels[f"{LABEL_PREFIX}.seal.digest"] == f"sha256:{demo_seal.digest}"
    assert labels["org.opencontainers.image.title"] == demo_seal.name
    locked = set(labels[f"{LABEL_PREFIX}.lock"].split())
    assert set(demo_seal.lock_lines()) <= locked
    assert f"modelseal=={plan.modelseal_version}" in locked


def test_no_credential_reaches_any_file_of_the_context(
    demo_seal: Seal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "wJalrXUtnFEMI-K7MDENG-not-a-real-key"
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, secret)
    for weights, source in ((Weights.S3, "s3://models/digits.seal"),
                            (Weights.REGISTRY, "models:/digits/1")):  # fmt: skip
        out = tmp_path / weights.value
        text = render(demo_seal, out, weights=weights, source=source, with_compose=True)
        files = [p for p in out.rglob("*") if p.is_file()]
        assert all(secret not in p.read_text(errors="replace") for p in files)
        assert "AWS_" not in text and "MLFLOW_" not in text
        assert "--mount=type=secret,id=pip.conf,target=/etc/pip.conf" in text
        service = yaml.safe_load((out / "compose.yaml").read_text())["services"]["digits"]
        assert f"MODELSEAL_SOURCE={source}" in service["environment"]
        passed_through = [e for e in service["environment"] if "=" not in e]
        assert passed_through and all(e.startswith(("AWS_", "MLFLOW_")) for e in passed_through)
    render(demo_seal, tmp_path / "unset", weights=Weights.S3, with_compose=True)
    service = yaml.safe_load((tmp_path / "unset" / "compose.yaml").read_text())["services"]
    assert "MODELSEAL_SOURCE" in service["digits"]["environment"]  # from the shell


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"weights": Weights.BAKED, "source": "s3://b/k"}, "for --weights volume, s3 or registry"),
        ({"weights": Weights.S3, "source": "models:/digits/1"}, r"takes a s3://\.\.\. URI"),
        ({"weights": Weights.REGISTRY, "source": "s3://b/k"}, r"takes a models:/\.\.\. URI"),
        ({"weights": Weights.VOLUME, "source": "seals/x.seal"}, "absolute path inside"),
        ({"pins": ["numpy>=2"]}, r"'numpy>=2' is not a pin; expected NAME==VERSION"),
    ],
)
def test_bad_options_name_the_fact_and_the_fix(
    demo_seal: Seal, tmp_path: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        render(demo_seal, tmp_path, **options)


def test_moved_pins_are_written_noted_and_labelled(demo_seal: Seal, tmp_path: Path) -> None:
    sealed = dict(line.split("==") for line in demo_seal.lock_lines())
    text = render(demo_seal, tmp_path, pins=["numpy==1.26.4", "extra-dist==1.0"])
    lock = (tmp_path / "requirements.lock").read_text()
    assert "numpy==1.26.4\n" in lock and f"numpy=={sealed['numpy']}" not in lock
    assert f"# MOVED by --pin: numpy {sealed['numpy']} -> 1.26.4" in lock
    assert "extra-dist==1.0\n" in lock
    assert f'moved-pins="extra-dist:none->1.0 numpy:{sealed["numpy"]}->1.26.4"' in text


def test_a_wheelhouse_feeds_only_the_pinned_wheels_and_names_what_is_missing(
    demo_seal: Seal, tmp_path: Path
) -> None:
    staging = tmp_path / "staging"
    plan, _ = write_dockerfile(demo_seal, staging, measurement=MEASURED)
    house = tmp_path / "house"
    house.mkdir()
    for name, version in plan.installed.items():
        (house / f"{name.replace('-', '_')}-{version}-py3-none-any.whl").write_bytes(b"")
    (house / "unrelated-9.9-py3-none-any.whl").write_bytes(b"")
    _plan, context = write_dockerfile(demo_seal, tmp_path / "ctx", wheelhouse=house,
                                      measurement=MEASURED)  # fmt: skip
    app = sorted(p.name for p in (context.root / "app").iterdir())
    deps = sorted(p.name for p in (context.root / "wheelhouse").iterdir())
    assert app == [f"modelseal-{plan.modelseal_version}-py3-none-any.whl"]
    assert len(deps) == len(plan.installed) - 1 and not any("unrelated" in d for d in deps)
    text = (context.root / "Dockerfile").read_text()
    assert "--no-index --find-links wheelhouse" in text and "type=secret" not in text
    linted = hadolint(context.root / "Dockerfile")
    assert (linted.returncode, linted.stdout + linted.stderr) == (0, "")
    assert (context.root / ".dockerignore").read_text().splitlines()[1:] == [
        "*", "!requirements.lock", "!requirements-serving.txt", "!seal", "!wheelhouse", "!app",
    ]  # fmt: skip
    next(house.glob("numpy-*")).unlink()
    with pytest.raises(UsageError, match=r"lacks numpy==[\d.]+; fill it with `pip wheel"):
        write_dockerfile(demo_seal, tmp_path / "ctx2", wheelhouse=house, measurement=MEASURED)


def test_compose_runs_read_only_with_the_images_healthcheck_and_a_grace_for_the_drain(
    demo_seal: Seal, cuda_seal: Seal, tmp_path: Path
) -> None:
    text = render(demo_seal, tmp_path / "cpu", weights=Weights.VOLUME, with_compose=True)
    document = yaml.safe_load((tmp_path / "cpu" / "compose.yaml").read_text())
    service = document["services"]["digits"]
    image_check = json.loads(re.search(r"CMD (\[.*\])", text)[1])  # type: ignore[index]
    assert service["healthcheck"]["test"] == ["CMD", *image_check]
    assert service["read_only"] is True and service["tmpfs"] == ["/tmp"]
    assert service["volumes"] == [f"./models:{MODELS_MOUNT}:ro"]
    assert service["ports"] == [f"127.0.0.1:{PORT}:{PORT}"]
    assert int(service["stop_grace_period"].rstrip("s")) >= DRAIN_SECONDS + LINGER_SECONDS
    render(cuda_seal, tmp_path / "gpu", gpu=True, with_compose=True)
    gpu = yaml.safe_load((tmp_path / "gpu" / "compose.yaml").read_text())["services"]["digits"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "NVIDIA_VISIBLE_DEVICES=all" in gpu["environment"]


def test_sealed_numerics_settings_are_set_in_the_image(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    seal = seal_with(demo_seal_path, tmp_path / "omp.seal",
                     environment={"numerics_env": {"OMP_NUM_THREADS": "1"}})  # fmt: skip
    assert 'OMP_NUM_THREADS="1"' in render(seal, tmp_path / "ctx")
