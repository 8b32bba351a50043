"""Overload on real server processes: a retry storm gets 200 or a cheap 503 with Retry-After
and leaves the server live, ready and bounded in memory; a full queue never fails readiness;
connections past the limit get a 503. Behaviour only: speeds are in benchmarks/."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.serving.server import RunningServer, start_server, wait_until

pytestmark = pytest.mark.slow
ROW = {"features": [1.0, 2.0, 3.0, 4.0]}
READINESS_SAMPLES = 20
"""Readiness probes sent while the queue overflows, each after more refusals."""


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


class Storm:
    """Threads that each POST until they have ``successes`` answers of 200 (and, when given,
    until ``until`` is set), retrying at once after every 503 (the worst a client can do);
    every response and error is kept."""

    def __init__(
        self, url: str, threads: int, successes: int, until: threading.Event | None = None
    ) -> None:
        self.url = url
        self.successes = successes
        self.until = until
        self.responses: list[httpx.Response] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join()

    def wait_for_more_refusals(self) -> None:
        """Return once another 503 has come: the queue is still overflowing."""
        seen = self.statuses()[503]
        wait_until(lambda: self.statuses()[503] > seen, "more refusals")

    def statuses(self) -> Counter[int]:
        with self.lock:
            return Counter(response.status_code for response in self.responses)

    def _run(self) -> None:
        ok = 0
        with httpx.Client(timeout=120) as client:
            while ok < self.successes or (self.until and not self.until.is_set()):
                try:
                    response = client.post(self.url + "/predict", json=ROW)
                except httpx.TransportError as exc:
                    with self.lock:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                    return
                with self.lock:
                    self.responses.append(response)
                ok += response.status_code == 200


@contextmanager
def gate_closed(gate: Path) -> Iterator[None]:
    gate.write_text("batch")
    try:
        yield
    finally:
        gate.unlink(missing_ok=True)


def test_a_retry_storm_gets_200_or_a_cheap_503_and_the_server_stays_well(
    gated_seal: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    server = start_server(
        gated_seal, tmp_path, "--max-queue", "4", "--max-batch-size", "1",
        "--probe-interval", "600", env={"MODELSEAL_TEST_GATE": str(gate)},
    )  # fmt: skip
    try:
        assert httpx.post(server.url + "/predict", json=ROW).status_code == 200
        before = rss_mib(server.process.pid)
        storm = Storm(server.url, threads=40, successes=5)
        with gate_closed(gate):
            storm.start()
            wait_until(lambda: storm.statuses()[503] >= 100, "the storm to get 100 refusals")
            assert httpx.get(server.url + "/v2/health/live", timeout=30).status_code == 200
            # Refused before its body is read: a body that is not even JSON gets the 503.
            garbage = httpx.post(server.url + "/predict", content=b"{not json", timeout=30)
            assert garbage.status_code == 503, garbage.text
        storm.join()
        assert storm.errors == []
        assert set(storm.statuses()) == {200, 503}
        for response in storm.responses:
            if response.status_code == 503:
                assert response.headers["retry-after"] == "1"
                assert "max_queue is 4" in response.json()["error"]
            else:
                assert response.json()["predictions"]["scaled"] == [3.0, 6.0, 9.0, 12.0]
        assert httpx.get(server.url + "/v2/health/live").status_code == 200
        assert httpx.get(server.url + "/v2/health/ready").status_code == 200
        growth = rss_mib(server.process.pid) - before
        assert growth < 200, f"the server grew {growth:.0f} MiB in a storm of tiny requests"
    finally:
        assert server.stop() == 0


def test_a_saturated_queue_never_fails_readiness(slow_seal: Path, tmp_path: Path) -> None:
    server = start_server(
        slow_seal, tmp_path, "--max-queue", "2", "--max-batch-size", "1",
        "--probe-interval", "0.1",
    )  # fmt: skip
    sampled = threading.Event()
    storm = Storm(server.url, threads=20, successes=1, until=sampled)
    try:
        storm.start()
        wait_until(lambda: storm.statuses()[503] >= 20, "the queue to overflow")
        readiness = []
        for _ in range(READINESS_SAMPLES):
            readiness.append(httpx.get(server.url + "/v2/health/ready", timeout=60).status_code)
            storm.wait_for_more_refusals()
        sampled.set()
        storm.join()
        assert storm.errors == []
        assert readiness == [200] * READINESS_SAMPLES
    finally:
        sampled.set()
        assert server.stop() == 0


def test_connections_past_the_limit_get_503_with_retry_after(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    server = start_server(
        demo_seal_path, tmp_path, "--max-connections", "3", "--header-timeout", "120"
    )
    with ExitStack() as stack:
        held = []
        for _ in range(3):
            connection = stack.enter_context(
                socket.create_connection(("127.0.0.1", server.port), timeout=60)
            )
            connection.sendall(b"GET /v2/health/live HTTP/1.1\r\nhost: test\r\n")  # unfinished
            held.append(connection)
        refused = wait_until(lambda: _answer_if_refused(server), "a connection past the limit")
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["connection"] == "close"
        assert "--max-connections 3" in refused.json()["error"]
    # The held connections are closed: new ones are served again.
    wait_until(lambda: _answer_if_refused(server) is None, "connections to be served again")
    assert server.stop() == 0


def _answer_if_refused(server: RunningServer) -> httpx.Response | None:
    with httpx.Client(timeout=60) as client:
        response = client.post(server.url + "/predict", json={"features": [0.0] * 64})
    return response if response.status_code == 503 else None
