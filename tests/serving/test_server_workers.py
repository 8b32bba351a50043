"""`modelseal serve --workers 2`: real processes sharing one port, readiness that is the
pod's whichever worker answers, a dead worker restarted, and SIGTERM draining them all."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import httpx
import numpy as np

from tests.serving.server import RunningServer, start_server, wait_until

GATE_ENV = "MODELSEAL_TEST_GATE"


def health(server: RunningServer) -> tuple[int, dict[str, object]]:
    """/health on a new connection (the kernel hands each to one worker): status and body."""
    with httpx.Client(timeout=30) as client:
        response = client.get(server.url + "/health", headers={"connection": "close"})
    return response.status_code, response.json()


def worker_pids(server: RunningServer) -> set[int]:
    """The pids of the workers answering, once both have answered at least once."""
    seen: set[int] = set()

    def both() -> set[int] | None:
        seen.add(int(health(server)[1]["pid"]))  # type: ignore[call-overload]
        return seen if len(seen) == 2 else None

    return wait_until(both, "both workers to answer")


def test_two_workers_both_serve_and_sigterm_drains_both(gated_seal: Path, tmp_path: Path) -> None:
    server = start_server(gated_seal, tmp_path, "--workers", "2", "--drain-seconds", "1")
    try:
        pids = worker_pids(server)
        assert server.process.pid not in pids
        assert all(health(server)[0] == 200 for _ in range(6))
        body = {"instances": np.ones((2, 4)).tolist()}
        answers: list[int] = []

        def keep_posting() -> None:
            with httpx.Client(timeout=30) as client:
                for _ in range(40):
                    answers.append(client.post(server.url + "/predict", json=body).status_code)

        posting = threading.Thread(target=keep_posting)
        posting.start()
        wait_until(lambda: len(answers) >= 5, "requests to flow")
        server.process.send_signal(signal.SIGTERM)
        posting.join(60)
        exit_code = server.process.wait(60)
    finally:
        server.stop()
    logs = server.logs()
    assert exit_code == 0, logs[-3000:]
    assert set(answers) <= {200, 503} and answers.count(200) >= 5, answers
    assert logs.count("drain window over") == 2, logs[-3000:]
    # The parent reaped both workers before it exited.
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_the_pod_is_ready_only_when_every_worker_is_and_a_dead_worker_comes_back(
    gated_seal: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    server = start_server(gated_seal, tmp_path, "--workers", "2", env={GATE_ENV: str(gate)})
    try:
        first, second = sorted(worker_pids(server))
        gate.write_text("load")  # a new worker stays loading until the gate opens
        os.kill(first, signal.SIGKILL)

        def the_survivor_says_not_ready() -> dict[str, object] | None:
            status, body = health(server)
            survivor = body["pid"] == second and body["state"] == "ready"
            return body if survivor and status == 503 else None

        body = wait_until(the_survivor_says_not_ready, "the ready worker to report the pod")
        assert "of 2 is" in str(body["workers"]), body
        statuses = {httpx.get(server.url + "/v2/health/ready", timeout=30).status_code
                    for _ in range(6)}  # fmt: skip
        assert statuses == {503}
        gate.unlink()
        wait_until(lambda: health(server)[0] == 200, "the restarted worker to turn ready")
        pids = worker_pids(server)
        assert second in pids and first not in pids
        assert server.process.poll() is None
    finally:
        gate.unlink(missing_ok=True)
        exit_code = server.stop()
    assert exit_code == 0, server.logs()[-3000:]
    assert "died after it was ready: restarting it" in server.logs()
