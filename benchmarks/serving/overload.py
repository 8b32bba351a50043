"""The overload sections of the serving benchmark (results in benchmarks/serving-overload.md):
a retry storm with and without a short queue, and liveness while a 15 MB body is served."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

DURATION_SECONDS = 10
WIDTH = 128


def run_overload(seal: Path, script: Path, chosen: list[str]) -> None:
    if "storm" in chosen:
        storms(seal, script)
    if "big-body" in chosen:
        big_body(seal)


# --- retry storm -----------------------------------------------------------------------------


def storms(seal: Path, script: Path) -> None:
    results = {
        "default queue (512)": storm(seal, script, []),
        "--max-queue 16": storm(seal, script, ["--max-queue", "16"]),
    }
    baseline = results["default queue (512)"]["ok_per_s"]
    for name, result in results.items():
        print(
            f"retry storm, {name:20} {result['ok_per_s']:8.0f} answers of 200/s "
            f"(x{result['ok_per_s'] / baseline:.2f}), {result['refused_per_s']:8.0f} 503/s; "
            f"a new connection's first answer: median {result['first_median_ms']:.1f} ms, "
            f"max {result['first_max_ms']:.1f} ms"
        )


def storm(seal: Path, script: Path, args: list[str]) -> dict[str, float]:
    port = free_port()
    server = serve(seal, port, *args)
    firsts: list[float] = []
    done = threading.Event()
    prober = threading.Thread(target=probe_new_connections, args=(port, firsts, done))
    try:
        prober.start()
        result = wrk(f"http://127.0.0.1:{port}/predict", script, 500)
    finally:
        done.set()
        prober.join()
        stop(server)
    total = int(re.search(r"(\d+) requests in", result).group(1))  # type: ignore[union-attr]
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", result)
    non_2xx = int(refused.group(1)) if refused else 0
    return {
        "ok_per_s": (total - non_2xx) / DURATION_SECONDS,
        "refused_per_s": non_2xx / DURATION_SECONDS,
        "first_median_ms": float(np.median(firsts)) * 1000,
        "first_max_ms": max(firsts) * 1000,
    }


def probe_new_connections(port: int, firsts: list[float], done: threading.Event) -> None:
    """A new connection every 50 ms: the time to its first answer, whatever the status."""
    body = json.dumps({"features": [0.5] * WIDTH}).encode()
    request = (
        b"POST /predict HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )
    time.sleep(1.0)  # let the storm build up
    while not done.is_set():
        started = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
                connection.sendall(request)
                connection.recv(12)
                firsts.append(time.perf_counter() - started)
        except OSError:
            pass
        time.sleep(0.05)


# --- big body ----------------------------------------------------------------------------


def big_body(seal: Path) -> None:
    port = free_port()
    server = serve(seal, port)
    rows = np.random.default_rng(3).standard_normal((6000, WIDTH)).tolist()
    body = json.dumps({"instances": rows}).encode()
    assert len(body) > 15_000_000, len(body)
    try:
        idle = longest_liveness_wait(port, lambda: time.sleep(2.0)) * 1000
        during = longest_liveness_wait(port, lambda: post(port, body)) * 1000
    finally:
        stop(server)
    print(
        f"15 MB body: longest liveness round trip {during:.1f} ms while it is served, "
        f"{idle:.1f} ms idle (x{during / idle:.1f})"
    )


def post(port: int, body: bytes) -> None:
    response = httpx.post(
        f"http://127.0.0.1:{port}/predict", content=body, timeout=120,
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 200, response.text[:300]


def longest_liveness_wait(port: int, work: Callable[[], object]) -> float:
    """The longest single /health/live round trip while ``work()`` runs."""
    waits: list[float] = []
    done = threading.Event()

    def poll() -> None:
        with httpx.Client(timeout=60) as client:
            while not done.is_set():
                started = time.perf_counter()
                client.get(f"http://127.0.0.1:{port}/health/live")
                waits.append(time.perf_counter() - started)
                time.sleep(0.005)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        work()
    finally:
        done.set()
        poller.join()
    return max(waits)


def wrk(url: str, script: Path, connections: int, *args: str) -> str:
    return subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{DURATION_SECONDS}s",
         *args, "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


# --- helpers ---------------------------------------------------------------------------------


def start(command: list[str], port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        ["taskset", "-c", "0", *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            body = {"features": [0.0] * WIDTH}
            url = f"http://127.0.0.1:{port}/predict"
            if httpx.post(url, json=body, timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"{command} never answered")


def serve(seal: Path, port: int, *args: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "modelseal", "serve", str(seal), "--port", str(port),
               "--log-format", "json", *args]  # fmt: skip
    return start(command, port)


def stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGINT)
    server.wait(60)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"
