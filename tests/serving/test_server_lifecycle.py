"""Start-up of real server processes: refusals, drift policies (fail, warn, exit), and
SIGTERM in every start-up state."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.cli_process import run_modelseal
from tests.conftest import seal_of_a_vanished_module
from tests.serving.metrics_text import metric_samples
from tests.serving.server import RunningServer, free_port, start_server, wait_until

pytestmark = pytest.mark.slow


def serve_command(seal: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_modelseal("serve", str(seal), "--port", str(free_port()), *args, extra_env=env)


def test_a_seal_failing_its_digest_check_exits_at_once_naming_the_file(seal_copy: Path) -> None:
    (seal_copy / "golden.npz").write_bytes(b"tampered")
    result = serve_command(seal_copy)
    assert result.returncode == 2
    assert "golden.npz" in result.stderr
    assert "listening on" not in result.stderr


def test_require_gpu_fails_fast_with_what_to_check(demo_seal_path: Path) -> None:
    result = serve_command(demo_seal_path, "--require-gpu", "1")
    assert result.returncode == 1
    assert "--require-gpu 1" in result.stderr
    assert "NVIDIA Container Toolkit" in result.stderr
    assert "CUDA_VISIBLE_DEVICES" in result.stderr


@pytest.mark.parametrize("device", ["cuda:abc", "cuda:", "gpu:0", "cuda:١"])
def test_a_device_that_is_not_cuda_n_is_a_usage_error_naming_it(
    demo_seal_path: Path, device: str
) -> None:
    result = serve_command(demo_seal_path, "--device", device)
    assert result.returncode == 2, result.stderr
    assert f"--device {device!r}" in result.stderr and "cuda:N" in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_another_process_listens_on_is_a_usage_error_before_the_model_loads(
    demo_seal_path: Path, workers: str
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_modelseal(
            "serve", str(demo_seal_path), "--port", str(port), "--workers", workers
        )
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: another process is already listening" in (
        result.stderr
    )
    assert "choose another --port" in result.stderr
    assert "Traceback" not in result.stderr and "terminate called" not in result.stderr
    # Refused before the lifespan started the model's load.
    assert "Application startup" not in result.stderr


def test_a_host_that_is_not_an_address_of_this_machine_is_a_usage_error(
    demo_seal_path: Path,
) -> None:
    # 192.0.2.0/24 is reserved for documentation: never an address of a test machine.
    result = serve_command(demo_seal_path, "--host", "192.0.2.1")
    assert result.returncode == 2, result.stderr
    assert "cannot listen on 192.0.2.1:" in result.stderr
    assert "not an address of this machine; check --host" in result.stderr


def verdicts(server: RunningServer) -> dict[str, float]:
    found = metric_samples(server.url, "modelseal_drift_verdict")
    return {dict(labels)["verdict"]: value for labels, value in found.items()}


def drift_warning(server: RunningServer) -> float:
    return metric_samples(server.url, "modelseal_drift_warning")[()]


def settled(server: RunningServer) -> httpx.Response:
    """/health once start-up has ended, in ready or failed."""

    def health() -> httpx.Response | None:
        response = httpx.get(server.url + "/health", timeout=10)
        return response if response.json()["state"] in ("failed", "ready") else None

    return wait_until(health, "start-up to end")


def test_a_model_that_cannot_load_here_fails_with_the_reason_on_health_seal_and_metrics(
    tmp_path: Path,
) -> None:
    seal = seal_of_a_vanished_module(tmp_path)  # a joblib seal nobody signed
    server = start_server(seal.root, tmp_path, "--allow-unsigned-pickle", wait_for="live")
    try:
        health = settled(server)
        assert health.status_code == 503
        assert health.json()["state"] == "failed"
        assert "No module named 'vanishing_models'" in health.json()["reason"]
        report = httpx.get(server.url + "/seal").json()["verify"]
        assert report["verdict"] == "load-failed"
        assert report["failure"]["error_type"] == "ModuleNotFoundError"
        assert verdicts(server) == {"load-failed": 1.0}
        assert drift_warning(server) == 0.0
        assert httpx.get(server.url + "/v2/health/live").status_code == 200
    finally:
        assert server.stop() == 0


def test_drift_keeps_the_server_unready_with_the_report_on_seal(
    drifted_ranker: Path, tmp_path: Path
) -> None:
    server = start_server(drifted_ranker, tmp_path, wait_for="live")
    try:
        health = settled(server)
        assert health.status_code == 503
        assert health.json()["state"] == "failed"
        assert "golden replay verdict drift" in health.json()["reason"]
        assert httpx.get(server.url + "/v2/health/ready").status_code == 503
        assert httpx.get(server.url + "/v2/health/live").status_code == 200
        report = httpx.get(server.url + "/seal").json()["verify"]
        assert report["verdict"] == "drift"
        assert any(not r["comparison"]["passed"] for r in report["golden"])
        refused = httpx.post(server.url + "/predict", json={"features": [0.0] * 16})
        assert refused.status_code == 503 and "not ready" in refused.json()["error"]
        # Not serving: the warning that means "serving despite drift" stays 0.
        assert verdicts(server) == {"drift": 1.0}
        assert drift_warning(server) == 0.0
    finally:
        assert server.stop() == 0


def test_drift_warn_serves_with_the_warning_metric_set(
    drifted_ranker: Path, tmp_path: Path
) -> None:
    server = start_server(drifted_ranker, tmp_path, "--drift", "warn")
    try:
        assert httpx.get(server.url + "/seal").json()["verify"]["verdict"] == "drift"
        ok = httpx.post(server.url + "/predict", json={"features": [0.0] * 16})
        assert ok.status_code == 200
        assert drift_warning(server) == 1.0
        assert verdicts(server) == {"drift": 1.0}
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_drift_exit_logs_the_reason_and_exits_1(drifted_ranker: Path, how: str) -> None:
    if how == "flag":
        result = serve_command(drifted_ranker, "--drift", "exit", "--log-format", "json")
    else:
        result = serve_command(drifted_ranker, "--log-format", "json", MODELSEAL_DRIFT="exit")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "golden replay verdict drift on scores at batch size" in result.stderr
    assert "exiting with status 1" in result.stderr
    assert '"message":"ready"' not in result.stderr


def test_drift_exit_exits_1_for_a_model_that_cannot_load(tmp_path: Path) -> None:
    seal = seal_of_a_vanished_module(tmp_path)
    pin = f"sha256:{seal.digest}"  # vouches for the pickle, so that loading is attempted
    result = serve_command(
        seal.root, "--drift", "exit", "--log-format", "json", "--expect-digest", pin
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "the model cannot be loaded here: ModuleNotFoundError" in result.stderr


def test_drift_exit_serves_a_consistent_seal(demo_seal_path: Path, tmp_path: Path) -> None:
    server = start_server(demo_seal_path, tmp_path, "--drift", "exit")
    try:
        assert httpx.post(server.url + "/predict", json={"features": [0.0] * 64}).is_success
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize(
    ("gate", "state"), [("load", "loading"), ("replay", "verifying"), ("batch", "warming")]
)
def test_sigterm_in_a_start_up_state_stops_it_and_exits_0(
    gated_seal: Path, tmp_path: Path, gate: str, state: str
) -> None:
    gate_file = tmp_path / "gate"
    gate_file.write_text(gate)
    server = start_server(
        gated_seal, tmp_path, "--drain-seconds", "30", wait_for="live",
        env={"MODELSEAL_TEST_GATE": str(gate_file)},
    )  # fmt: skip
    try:
        wait_until(lambda: server.state() == state, f"the server to be {state}")
        server.process.send_signal(signal.SIGTERM)
        # The process exits on its own, or (a batch cannot be abandoned) drains until the
        # model lets go: open the gate only then, so that nothing could have turned ready.
        wait_until(
            lambda: server.process.poll() is not None or server.state() == "draining",
            "the server to exit or drain",
        )
        gate_file.unlink()
        exit_code = server.process.wait(60)
    finally:
        gate_file.unlink(missing_ok=True)
        server.stop()
    logs = server.logs()
    assert exit_code == 0, logs[-3000:]
    assert '"message":"ready"' not in logs
    assert "start-up failed" not in logs and "IllegalTransition" not in logs
