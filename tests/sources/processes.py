"""`modelseal serve` processes that a test can watch (and kill) while they still fetch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.serving.server import NO_DRAIN_WINDOW, RunningServer, free_port

WAIT_S = 120.0


def launch(source: str, log_dir: Path, env: dict[str, str], *args: str) -> RunningServer:
    """Start ``modelseal serve SOURCE`` (JSON logs) without waiting for anything."""
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = log_dir / f"server-{port}.log"
    command = [
        sys.executable, "-m", "modelseal", "serve", source, "--port", str(port),
        "--log-format", "json", *args,
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            env={**NO_DRAIN_WINDOW, **os.environ, **env},
        )  # fmt: skip
    return RunningServer(process, f"http://127.0.0.1:{port}", log)


def wait_ready(server: RunningServer, timeout: float = WAIT_S) -> RunningServer:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.logs()}")
        try:
            if httpx.get(server.url + "/v2/health/ready", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout} s:\n{server.logs()}")


def wait_for_log(server: RunningServer, fragment: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fragment in server.logs():
            return
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.logs()}")
        time.sleep(0.1)
    raise RuntimeError(f"{fragment!r} not logged after {timeout} s:\n{server.logs()}")


def log_records(server: RunningServer) -> list[dict[str, Any]]:
    records = []
    for line in server.logs().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records
