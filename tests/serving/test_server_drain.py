"""The drain contract on SIGTERM, with real server processes and real sockets.

Every request whose connection was accepted before the listener closed gets a complete HTTP
response, 200 or 503; later connections are refused, never reset mid-request; the process
exits 0. It must hold with a CPU hog pinned to the server's CPU, so the test runs that way.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from modelseal.demo import DemoModel
from tests.serving.server import (
    RunningServer,
    cpu_hog,
    one_cpu,
    start_server,
    wait_until,
)

pytestmark = pytest.mark.slow


@dataclass
class Outcome:
    sent: float
    done: float
    status: int | None
    error: str | None

    @property
    def refused(self) -> bool:
        return self.error is not None and self.error.startswith("refused")


class Clients:
    """Threads that POST to /predict back to back until told to stop, keeping every outcome."""

    def __init__(self, server: RunningServer, body: dict[str, object], count: int) -> None:
        self.server = server
        self.body = body
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._loop) for _ in range(count)]

    def __enter__(self) -> Clients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def count(self, status: int) -> int:
        with self.lock:
            return sum(1 for outcome in self.outcomes if outcome.status == status)

    def _loop(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.stopping.is_set():
                outcome = self._send(client)
                with self.lock:
                    self.outcomes.append(outcome)
                if outcome.refused:
                    time.sleep(0.02)

    def _send(self, client: httpx.Client) -> Outcome:
        sent = time.monotonic()
        try:
            response = client.post(self.server.url + "/predict", json=self.body)
        except httpx.ConnectError as exc:
            return Outcome(sent, time.monotonic(), None, f"refused: {exc}")
        except httpx.TransportError as exc:
            return Outcome(sent, time.monotonic(), None, f"{type(exc).__name__}: {exc}")
        return Outcome(sent, time.monotonic(), response.status_code, None)


def test_sigterm_drains_without_dropping_requests_beside_a_cpu_hog(
    demo_seal_path: Path, demo_model: DemoModel, tmp_path: Path
) -> None:
    cpus = one_cpu()
    drain_seconds = 2.0
    with cpu_hog(cpus):
        server = start_server(
            demo_seal_path, tmp_path, "--drain-seconds", str(drain_seconds), cpus=cpus
        )
        body = {"instances": demo_model.golden_inputs[:4].tolist()}
        with Clients(server, body, count=8) as clients:
            wait_until(lambda: clients.count(200) >= 50, "50 answers before SIGTERM")
            sigterm_at = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            readiness = wait_until(_readiness_503_or_gone(server), "readiness to turn 503")
            exit_code = server.process.wait(120)
            exited_at = time.monotonic()
            wait_until(lambda: any(o.sent > exited_at for o in clients.outcomes), "a late try")
        outcomes = list(clients.outcomes)

    tally = Counter(o.status or ("refused" if o.refused else "error") for o in outcomes)
    print(f"drain outcomes: {dict(tally)}")  # shown with -s, and on failure
    problems = [o for o in outcomes if o.status not in (200, 503) and not o.refused]
    assert problems == [], problems[:5]
    # The server's window opens when it gets the signal, a little after sigterm_at, so
    # whatever was answered before sigterm_at + window was answered inside it: by the model.
    inside = [o for o in outcomes if o.done < sigterm_at + drain_seconds]
    assert {o.status for o in inside} == {200}, {o.status for o in inside}
    assert any(o.sent > sigterm_at and o.status == 200 for o in outcomes), "served in window"
    late = [o for o in outcomes if o.sent > exited_at]
    assert late and all(o.refused for o in late), late[:3]
    assert readiness == 503
    assert exit_code == 0, server.logs()[-3000:]


def _readiness_503_or_gone(server: RunningServer) -> Callable[[], int | None]:
    def check() -> int | None:
        try:
            status = httpx.get(server.url + "/v2/health/ready", timeout=30).status_code
        except httpx.TransportError:
            raise AssertionError("the listener closed before readiness was seen at 503") from None
        return status if status == 503 else None

    return check


def test_a_connection_accepted_before_the_listener_closed_gets_its_answer(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    server = start_server(demo_seal_path, tmp_path, "--drain-seconds", "0.5")
    try:
        early = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        server.process.send_signal(signal.SIGTERM)
        wait_until(server.refuses_connections, "the listener to close")
        body = b'{"features": [' + b", ".join([b"0.0"] * 64) + b"]}"
        early.sendall(
            b"POST /predict HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        response = _read_until_closed(early)
        exit_code = server.process.wait(60)
    finally:
        server.stop()
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 503 Service Unavailable", response[:300]
    head, _, payload = rest.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower() and b"retry-after: 1" in head.lower()
    assert b"draining" in payload
    assert exit_code == 0


def test_a_connection_that_never_sends_is_closed_after_the_header_timeout(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    server = start_server(
        demo_seal_path, tmp_path, "--drain-seconds", "0.5", "--header-timeout", "2"
    )
    try:
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        server.process.send_signal(signal.SIGTERM)
        assert _read_until_closed(silent) == b""  # closed without a word: nothing was asked
        exit_code = server.process.wait(60)
    finally:
        server.stop()
    assert exit_code == 0


def _read_until_closed(connection: socket.socket) -> bytes:
    chunks = []
    with connection:
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
