"""Start-up refusals, drift policy, overload, drain on SIGTERM: real server processes."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelseal import pack
from modelseal.demo import DemoModel
from modelseal.runtimes.numpy_function import NumpyFunction
from tests.cli_process import run_modelseal
from tests.conftest import seal_of_a_vanished_module
from tests.serving.server import RunningServer, free_port, start_server

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).parents[1] / "fixtures"


def serve_command(seal: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_modelseal("serve", str(seal), "--port", str(free_port()), *args)


def test_a_seal_failing_its_digest_check_exits_at_once_naming_the_file(seal_copy: Path) -> None:
    (seal_copy / "golden.npz").write_bytes(b"tampered")
    result = serve_command(seal_copy)
    assert result.returncode == 2
    assert "golden.npz" in result.stderr
    assert "Uvicorn running" not in result.stderr


def test_require_gpu_fails_fast_with_what_to_check(demo_seal_path: Path) -> None:
    result = serve_command(demo_seal_path, "--require-gpu", "1")
    assert result.returncode == 1
    assert "--require-gpu 1" in result.stderr
    assert "NVIDIA Container Toolkit" in result.stderr
    assert "CUDA_VISIBLE_DEVICES" in result.stderr


def test_a_model_that_cannot_load_here_fails_with_the_reason_on_health_and_seal(
    tmp_path: Path,
) -> None:
    seal = seal_of_a_vanished_module(tmp_path)  # a joblib seal nobody signed
    server = start_server(seal.root, tmp_path, "--allow-unsigned-pickle", wait_for="live")
    try:
        health = wait_settled(server)
        assert health.status_code == 503
        assert health.json()["state"] == "failed"
        assert "No module named 'vanishing_models'" in health.json()["reason"]
        report = httpx.get(server.url + "/seal").json()["verify"]
        assert report["verdict"] == "load-failed"
        assert report["failure"]["error_type"] == "ModuleNotFoundError"
        assert httpx.get(server.url + "/v2/health/live").status_code == 200
    finally:
        assert server.stop() == 0


def wait_settled(server: RunningServer) -> httpx.Response:
    """/health once start-up has ended, in ready or failed."""
    deadline = time.monotonic() + 60
    while (health := httpx.get(server.url + "/health")).json()["state"] not in ("failed", "ready"):
        assert time.monotonic() < deadline, server.logs()
        time.sleep(0.1)
    return health


def test_drift_keeps_the_server_unready_with_the_report_on_seal(
    drifted_ranker: Path, tmp_path: Path
) -> None:
    server = start_server(drifted_ranker, tmp_path, wait_for="live")
    try:
        health = wait_settled(server)
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
        families = {
            f.name: f
            for f in text_string_to_metric_families(httpx.get(server.url + "/metrics").text)
        }
        assert families["modelseal_drift_warning"].samples[0].value == 1.0
        verdicts = {
            s.labels["verdict"]: s.value for s in families["modelseal_drift_verdict"].samples
        }
        assert verdicts == {"drift": 1.0}
    finally:
        assert server.stop() == 0


@pytest.fixture(scope="module")
def slow_seal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    weights = {"seconds": np.array([0.2]), "scale": np.array([2.0])}
    seal = pack(
        NumpyFunction(source=FIXTURES / "slow_function.py", weights=weights),
        runtime="numpy", name="slow", version="1", golden=np.ones((2, 4)),
        output=tmp_path_factory.mktemp("slow") / "slow.seal",
    )  # fmt: skip
    return seal.root


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])


def test_a_full_queue_answers_503_with_retry_after_and_memory_stays_bounded(
    slow_seal: Path, tmp_path: Path
) -> None:
    server = start_server(
        slow_seal, tmp_path, "--max-queue", "4", "--max-batch-size", "1", "--probe-interval", "600"
    )
    try:
        body = {"features": [1.0, 2.0, 3.0, 4.0]}
        with httpx.Client() as client:
            client.post(server.url + "/predict", json=body)
        before = rss_kib(server.process.pid)

        def one(_: int) -> httpx.Response:
            with httpx.Client(timeout=60) as client:
                return client.post(server.url + "/predict", json=body)

        responses: list[httpx.Response] = []
        for _burst in range(5):
            with ThreadPoolExecutor(max_workers=40) as pool:
                responses += pool.map(one, range(200))
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 503}
        assert statuses.count(503) > 500
        assert statuses.count(200) >= 4
        rejected = next(r for r in responses if r.status_code == 503)
        assert rejected.headers["retry-after"] == "1"
        assert "max_queue is 4" in rejected.json()["error"]
        ok = next(r for r in responses if r.status_code == 200)
        assert ok.json()["predictions"]["echo"] == [2.0, 4.0, 6.0, 8.0]
        growth_mib = (rss_kib(server.process.pid) - before) / 1024
        assert growth_mib < 40, f"server grew {growth_mib:.1f} MiB over 1000 requests"
        assert httpx.get(server.url + "/v2/health/ready").status_code == 200
    finally:
        assert server.stop() == 0


@dataclass
class Outcome:
    sent: float
    status: int | None
    error: str | None


def test_sigterm_drains_without_dropping_requests(demo_model: DemoModel, tmp_path: Path) -> None:
    seal = pack(
        demo_model.estimator, runtime="sklearn", name="digits", version="1",
        golden=demo_model.golden_inputs, output=tmp_path / "digits.seal",
    )  # fmt: skip
    drain_seconds = 2.0
    server = start_server(seal.root, tmp_path, "--drain-seconds", str(drain_seconds))
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    stop_at = [time.monotonic() + 60.0]
    body = {"instances": demo_model.golden_inputs[:4].tolist()}

    def client_loop() -> None:
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < stop_at[0]:
                sent = time.monotonic()
                try:
                    response = client.post(server.url + "/predict", json=body)
                    outcome = Outcome(sent, response.status_code, None)
                except httpx.ConnectError as exc:
                    outcome = Outcome(sent, None, f"refused: {exc}")
                except httpx.TransportError as exc:
                    outcome = Outcome(sent, None, f"{type(exc).__name__}: {exc}")
                with lock:
                    outcomes.append(outcome)
                if outcome.error and outcome.error.startswith("refused"):
                    time.sleep(0.05)

    threads = [threading.Thread(target=client_loop) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    sigterm_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    ready_during_drain = httpx.get(server.url + "/v2/health/ready").status_code
    stop_at[0] = sigterm_at + drain_seconds + 1.5
    for thread in threads:
        thread.join()
    exit_code = server.process.wait(30)

    window_end = sigterm_at + drain_seconds
    before_end = [o for o in outcomes if o.sent < window_end - 0.2]
    assert len(before_end) > 100
    assert [o for o in before_end if o.status != 200] == []
    assert len([o for o in before_end if o.sent > sigterm_at]) > 20, "served during the window"
    resets = [o for o in outcomes if o.error and not o.error.startswith("refused")]
    assert resets == [], resets[:3]
    # After the window: 503 (never a reset) until the clients stop; then the process exits.
    # The server's window starts when it receives the signal, a little after sigterm_at:
    # leave it half a second before judging what came after.
    served_after = [o.status for o in outcomes if o.sent > window_end + 0.5]
    assert served_after, "clients kept sending after the window"
    assert set(served_after) == {503}, sorted(set(served_after), key=str)
    assert {o.status for o in outcomes} <= {200, 503, None}
    assert ready_during_drain == 503
    assert exit_code == 0, server.logs()
