"""Servers as pinned processes on loopback, and wrk (pinned to the other CPU) driving them:
requests per second, p50/p99, errors, and the server's own CPU time over the run."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

SERVER_CPU = 0
LOAD_CPU = 1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Load:
    """One wrk run's figures."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    server_cpu_s: float
    """CPU time of the server's processes (all workers) during the run."""

    @property
    def cpu_us_per_request(self) -> float:
        return 1e6 * self.server_cpu_s / max(self.requests, 1)


@dataclass(frozen=True)
class Request:
    """What wrk sends: a POST of ``body`` to ``path`` with ``headers``."""

    path: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)

    def lua(self) -> str:
        lines = ['wrk.method = "POST"']
        lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in self.headers]
        escaped = "".join(f"\\{byte}" for byte in self.body)
        lines.append(f'wrk.body = "{escaped}"')
        return "\n".join(lines) + "\n"


def ensure_wrk() -> str:
    """wrk's path; installs Debian's package when it is missing (root only)."""
    found = shutil.which("wrk")
    if found is not None:
        return found
    print("wrk is missing: installing Debian's package (apt-get install -y wrk)")
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk could not be installed; install it (apt-get install wrk)")
    return found


class Server:
    """A server process pinned to ``cpus`` (its children, the workers, inherit the pin)."""

    def __init__(self, command: list[str], port: int, log: Path, cpus: str = "0") -> None:
        self.port = port
        self.log = log
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                ["taskset", "-c", cpus, *command], stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.started = time.perf_counter()

    def wait_ready(self, path: str, timeout: float = 300.0) -> float:
        """Seconds from exec until ``path`` answered 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout} s: {self.log.read_text()[-2000:]}")

    def pids(self) -> list[int]:
        """The server and all its descendants."""
        found = [self.process.pid]
        for pid in found:
            children = Path(f"/proc/{pid}/task/{pid}/children")
            if children.exists():
                found += [int(child) for child in children.read_text().split()]
        return found

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / CLOCK_TICKS

    def rss_mib(self) -> float:
        total = 0
        for pid in self.pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total / 1024

    def maps_torch(self) -> bool:
        """Whether any of its processes has torch's shared library mapped (imported torch)."""
        for pid in self.pids():
            for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
                if Path(line.split()[-1]).name.startswith(("libtorch", "libc10")):
                    return True
        return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def drive(
    server: Server, request: Request, connections: int, seconds: int, script_dir: Path
) -> Load:
    """One wrk run of ``seconds`` with ``connections`` keep-alive connections."""
    script = script_dir / f"{abs(hash((request.path, request.body)))}.lua"
    script.write_text(request.lua())
    url = f"http://127.0.0.1:{server.port}{request.path}"
    before = server.cpu_seconds()
    output = subprocess.run(
        ["taskset", "-c", str(LOAD_CPU), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
         "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    cpu = server.cpu_seconds() - before
    requests = int(_find(r"(\d+) requests in", output))
    failures = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", output)  # fmt: skip
    errors = int(failures.group(1)) if failures else 0
    errors += sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    return Load(
        rps=float(_find(r"Requests/sec:\s+([\d.]+)", output)),
        p50_ms=_latency_ms(output, "50%"),
        p99_ms=_latency_ms(output, "99%"),
        errors=errors,
        requests=requests,
        server_cpu_s=cpu,
    )


def _latency_ms(output: str, percentile: str) -> float:
    match = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", output)
    if match is None:
        raise RuntimeError(f"wrk printed no {percentile} latency:\n{output}")
    return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]


def _find(pattern: str, output: str) -> str:
    match = re.search(pattern, output)
    if match is None:
        raise RuntimeError(f"wrk output lacks {pattern!r}:\n{output}")
    return match.group(1)
