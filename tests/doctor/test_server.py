"""Server checks against real ``modelseal serve`` processes on loopback: the demo (every
check passes), a server of another seal (digest fails), a drifted seal served anyway with
``--drift warn`` (drift flagged), one that refused to turn ready, and nothing listening."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from modelseal.doctor.report import Status
from modelseal.doctor.server import judge_latency
from tests.cli_process import run_modelseal
from tests.doctor.test_report import doctor_schema
from tests.serving.server import RunningServer, free_port, start_server

pytestmark = pytest.mark.slow
GENEROUS_BUDGET_MS = "60000"  # the latency verdict has its own test; never flaky under load


@pytest.fixture(scope="module")
def demo_server(
    demo_seal_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    server = start_server(demo_seal_path, tmp_path_factory.mktemp("demo-server"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def drifted_server(
    drifted_ranker: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    logs = tmp_path_factory.mktemp("drifted-server")
    server = start_server(drifted_ranker, logs, "--drift", "warn")
    yield server
    server.stop()


def doctor(*args: str) -> tuple[int, dict[str, Any]]:
    result = run_modelseal("doctor", *args, "--json", "--latency-budget-ms", GENEROUS_BUDGET_MS)
    assert result.returncode in (0, 1), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    jsonschema.validate(report, doctor_schema())
    return result.returncode, report


def server_checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in report["checks"] if c["family"] == "server"}


def test_every_server_check_passes_against_the_demo(
    demo_seal_path: Path, demo_server: RunningServer
) -> None:
    _, report = doctor(str(demo_seal_path), "--url", demo_server.url)
    checks = server_checks(report)
    assert set(checks) == {
        "server.live", "server.ready", "server.digest", "server.drift", "server.device",
        "server.inference", "server.latency", "server.errors",
    }  # fmt: skip
    failing = {
        cid: (c["status"], c["evidence"]) for cid, c in checks.items() if c["status"] != "ok"
    }
    assert failing == {}
    assert {c["where"] for c in checks.values()} == {demo_server.url}
    assert checks["server.digest"]["facts"]["served_digest"] == report["seal"]["digest"]
    assert "golden row 0 through OIP v2 infer" in checks["server.inference"]["evidence"]
    assert checks["server.latency"]["facts"]["latency_seconds"] > 0


def test_a_server_of_another_seal_fails_the_digest_check(
    demo_seal_path: Path, drifted_server: RunningServer
) -> None:
    code, report = doctor(str(demo_seal_path), "--url", drifted_server.url)
    checks = server_checks(report)
    assert code == 1
    assert checks["server.digest"]["status"] == "fail"
    assert "the server serves ranker 1" in checks["server.digest"]["evidence"]
    assert checks["server.inference"]["status"] == "fail"  # it serves no model 'digits'
    assert "HTTP 404" in checks["server.inference"]["evidence"]


def test_a_drifted_seal_served_anyway_is_flagged(
    drifted_ranker: Path, drifted_server: RunningServer
) -> None:
    code, report = doctor(str(drifted_ranker), "--url", drifted_server.url)
    checks = server_checks(report)
    assert code == 1
    assert checks["server.digest"]["status"] == "ok"
    assert checks["server.ready"]["status"] == "ok"  # it takes traffic: that is the danger
    drift = checks["server.drift"]
    assert drift["status"] == "fail"
    assert drift["facts"] == {"verdict": "drift", "serving_despite_drift": True}
    assert "it serves anyway (--drift warn)" in drift["evidence"]
    assert "scores at batch" in drift["evidence"]


def test_a_server_that_refused_to_turn_ready_fails_readiness(
    drifted_ranker: Path, tmp_path: Path
) -> None:
    server = start_server(drifted_ranker, tmp_path, wait_for="live")  # --drift fail: default
    try:
        _wait_for_state(server.url, "failed")
        code, report = doctor(str(drifted_ranker), "--url", server.url)
    finally:
        server.stop()
    checks = server_checks(report)
    assert code == 1
    assert checks["server.live"]["status"] == "ok"
    assert checks["server.ready"]["status"] == "fail"
    assert "state failed" in checks["server.ready"]["evidence"]
    assert checks["server.drift"]["facts"] == {"verdict": "drift", "serving_despite_drift": False}


def test_nothing_listening_fails_liveness_and_skips_the_rest(demo_seal_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, report = doctor(str(demo_seal_path), "--url", url)
    checks = server_checks(report)
    assert code == 1
    assert checks["server.live"]["status"] == "fail"
    assert "does not answer" in checks["server.live"]["evidence"]
    assert {c["status"] for cid, c in checks.items() if cid != "server.live"} == {"skipped"}


def test_a_slow_answer_warns() -> None:
    assert judge_latency(2.5, 1.0).status is Status.WARN
    assert judge_latency(0.004, 1.0).status is Status.OK
    assert judge_latency(0.004, 1.0).evidence.startswith("one golden row answered in 4.0 ms")


def _wait_for_state(url: str, state: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = httpx.get(f"{url}/health", timeout=10).json().get("state")
        if seen == state:
            return
        time.sleep(0.2)
    raise AssertionError(f"the server stayed {seen!r}, never {state!r}")
