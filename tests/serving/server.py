"""Real `modelseal serve` processes on loopback for tests, stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

START_TIMEOUT_SECONDS = 90.0
# Pin every test server to these CPUs (taskset -c), e.g. beside a CPU hog on the same core.
SERVER_CPUS = os.environ.get("MODELSEAL_TEST_SERVER_CPUS")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

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


def start_server(
    seal: Path,
    log_dir: Path,
    *args: str,
    wait_for: str = "ready",
    env: dict[str, str] | None = None,
) -> RunningServer:
    """Start a server and wait until it is ``ready`` (or just ``live``)."""
    port = free_port()
    log = log_dir / f"server-{port}.log"
    pinning = ["taskset", "-c", SERVER_CPUS] if SERVER_CPUS else []
    command = [
        *pinning, sys.executable, "-m", "modelseal", "serve", str(seal), "--port", str(port),
        "--log-format", "json", *args,
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
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
