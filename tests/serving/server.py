"""Real `modelseal serve` processes on loopback for tests, stopped by PID; CPU hogs beside
them; and waiting on conditions (never on fixed sleeps) with generous deadlines."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

START_TIMEOUT_SECONDS = 90.0
PATIENCE_SECONDS = 60.0
"""How long a test waits for what takes well under a second on an idle machine."""
T = TypeVar("T")
NO_DRAIN_WINDOW = {"MODELSEAL_DRAIN_SECONDS": "0"}
"""Environment of a test server: stopped at once (the window is for load balancers; a test
of the drain passes ``--drain-seconds``, which wins over this)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(check: Callable[[], T | None], what: str, timeout: float = PATIENCE_SECONDS) -> T:
    """Poll ``check`` until it returns something other than None (or False); return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode

    def state(self) -> str | None:
        """The state on /health, or None when the server does not answer."""
        try:
            state: str = httpx.get(self.url + "/health", timeout=10).json()["state"]
        except httpx.TransportError:
            return None
        return state

    def refuses_connections(self) -> bool:
        with socket.socket() as probe:
            try:
                probe.connect(("127.0.0.1", self.port))
            except ConnectionRefusedError:
                return True
        return False


def start_server(
    seal: Path,
    log_dir: Path,
    *args: str,
    wait_for: str = "ready",
    env: dict[str, str] | None = None,
    cpus: set[int] | None = None,
) -> RunningServer:
    """Start a server (on ``cpus`` only, when given) and wait until it is ``ready`` (or just
    ``live``)."""
    port = free_port()
    log = log_dir / f"server-{port}.log"
    command = [
        sys.executable, "-m", "modelseal", "serve", str(seal), "--port", str(port),
        "--log-format", "json", *args,
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**NO_DRAIN_WINDOW, **os.environ, **(env or {})},
        )
    if cpus is not None:
        os.sched_setaffinity(process.pid, cpus)
    server = RunningServer(process, f"http://127.0.0.1:{port}", log)
    path = "/v2/health/ready" if wait_for == "ready" else "/v2/health/live"
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.logs()}")
        try:
            if httpx.get(server.url + path, timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"server not {wait_for} after {START_TIMEOUT_SECONDS} s:\n{server.logs()}")


def one_cpu() -> set[int]:
    """One CPU this process may run on (the first), to pin a server and a hog to."""
    return {min(os.sched_getaffinity(0))}


@contextmanager
def cpu_hog(cpus: set[int]) -> Iterator[subprocess.Popen[bytes]]:
    """A process spinning on ``cpus`` for as long as the block runs."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(hog.pid, cpus)
        yield hog
    finally:
        hog.kill()
        hog.wait(10)
