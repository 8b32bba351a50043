"""``modelseal dockerfile`` and ``modelseal k8s`` as users run them: real subprocesses."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.cli_process import run_modelseal


def test_dockerfile_writes_the_context_and_says_how_to_build(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ctx"
    result = run_modelseal(
        "dockerfile", str(demo_seal_path), "-o", str(out), "--compose",
        "--startup-seconds", "5", "--pin", "numpy==1.26.4",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = {line.removeprefix("wrote ") for line in result.stdout.splitlines()}
    assert {str(out / name) for name in ("Dockerfile", ".dockerignore", "requirements.lock",
            "requirements-serving.txt", "seal", "compose.yaml")} == written  # fmt: skip
    assert "moved pin: numpy" in result.stderr
    assert f"docker build -t digits:1.0.0 {out}" in result.stderr
    assert "numpy==1.26.4" in (out / "requirements.lock").read_text().splitlines()
    assert yaml.safe_load((out / "compose.yaml").read_text())["services"]["digits"]


def test_dockerfile_measures_the_start_up_when_not_told(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    result = run_modelseal("dockerfile", str(demo_seal_path), "-o", str(tmp_path / "ctx"),
                           "--weights", "volume")  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "ctx" / "Dockerfile").read_text()
    assert "--start-period=" in text and "COPY seal/" not in text


def test_k8s_writes_manifests_and_reports_the_sizing(demo_seal_path: Path, tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    public = tmp_path / "key.pub.pem"
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(public)],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    out = tmp_path / "k8s"
    result = run_modelseal(
        "k8s", str(demo_seal_path), "--image", "digits:1.0.0", "-o", str(out),
        "--startup-seconds", "4", "--memory-mib", "256", "--trusted-key", str(public),
        "--namespace", "ml",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "startupProbe budget 30 s; memory request 256 MiB" in result.stderr
    names = {Path(line.removeprefix("wrote ")).relative_to(out).as_posix()
             for line in result.stdout.splitlines()}  # fmt: skip
    assert {"deployment.yaml", "trusted-keys.yaml", "kserve/inferenceservice.yaml"} <= names
    refused = run_modelseal("k8s", str(demo_seal_path), "--image", "digits:1.0.0",
                            "-o", str(tmp_path / "bad"), "--startup-seconds", "4",
                            "--memory-mib", "256", "--trusted-key", str(key))  # fmt: skip
    assert refused.returncode == 2
    assert "is a private key" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "bad").exists()


def test_usage_errors_exit_2_with_the_fact_and_the_fix(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    result = run_modelseal("dockerfile", str(demo_seal_path), "-o", str(tmp_path / "x"),
                           "--source", "s3://bucket/key", "--startup-seconds", "1")  # fmt: skip
    assert result.returncode == 2
    assert "--weights volume, s3 or registry" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_modelseal("dockerfile", str(demo_seal_path), "-o", str(tmp_path / "y"),
                           "--gpu", "--startup-seconds", "1")  # fmt: skip
    assert result.returncode == 2
    assert "lock holds no torch or onnxruntime-gpu" in result.stderr
