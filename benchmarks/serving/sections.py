"""The measured parts of the serving benchmark: throughput against the peers and the
ceiling, several workers, start-up by step, resident memory, and a profile of the request
path. Each returns plain figures; ``report`` turns them into Markdown and a plot."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.serving import servers
from benchmarks.serving.load import Load, Server, drive
from benchmarks.serving.models import BenchModel

CONCURRENCY = (1, 8, 64)


@dataclass
class Throughput:
    model: str
    ceiling_rows_per_s: dict[int, float]
    batch1_p99_ms: float
    loads: dict[str, dict[int, Load]] = field(default_factory=dict)
    """Server name -> concurrency -> figures."""
    rss_mib: dict[str, float] = field(default_factory=dict)
    load_avg: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """Server name -> the machine's 1-minute load average before and after each round."""

    @property
    def best_rows_per_s(self) -> float:
        return max(self.ceiling_rows_per_s.values())

    def ceiling_rps(self, noop_rps: float) -> float:
        return 1 / (1 / noop_rps + 1 / self.best_rows_per_s)


def ceiling(model: BenchModel) -> Throughput:
    """The model's in-process figures, as a ``Throughput`` for the servers to fill."""
    output = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-m", "benchmarks.serving.ceiling",
         str(model.onnx_file)],
        capture_output=True, text=True, check=True, cwd=servers.ROOT,
    ).stdout  # fmt: skip
    found = json.loads(output)
    rows = {int(size): float(rate) for size, rate in found["rows_per_s"].items()}
    return Throughput(model.name, rows, float(found["batch1_p99_ms"]))


def measure_into(result: Throughput, kind: servers.ServerKind, work: Path, seconds: int) -> None:
    """One round against one server, into ``result``: each concurrency keeps the faster of
    this round and the ones before."""
    before = os.getloadavg()[0]
    loads, rss = measure_server(kind, work, seconds)
    result.load_avg.setdefault(kind.name, []).append((before, os.getloadavg()[0]))
    result.rss_mib[kind.name] = max(rss, result.rss_mib.get(kind.name, 0.0))
    kept = result.loads.setdefault(kind.name, loads)
    for connections, load in loads.items():
        if load.rps > kept[connections].rps:
            kept[connections] = load


def measure_server(
    kind: servers.ServerKind, work: Path, seconds: int
) -> tuple[dict[int, Load], float]:
    """Every concurrency against one server; and its resident memory after the c=64 run."""
    server = Server(kind.command, kind.port, work / f"{kind.port}.log")
    try:
        server.wait_ready(kind.ready_path)
        drive(server, kind.request, 8, 1, work)  # warm the connections and caches
        loads = {c: drive(server, kind.request, c, seconds, work) for c in CONCURRENCY}
        return loads, server.rss_mib()
    finally:
        server.stop()


def workers(
    model: BenchModel, port: int, work: Path, seconds: int
) -> dict[int, tuple[Load, float]]:
    """/predict at c=64 with 1 worker on CPU 0 and 2 workers on both CPUs (wrk stays on
    CPU 1): each run's figures and its requests per server-CPU-second."""
    results: dict[int, tuple[Load, float]] = {}
    for count, cpus in ((1, "0"), (2, "0,1")):
        kind = servers.modelseal(model, port + count, "/predict", workers=count)
        server = Server(kind.command, kind.port, work / f"workers-{count}.log", cpus)
        try:
            server.wait_ready(kind.ready_path)
            drive(server, kind.request, 8, 1, work)
            load = drive(server, kind.request, 64, seconds, work)
        finally:
            server.stop()
        results[count] = (load, load.requests / max(load.server_cpu_s, 1e-9))
    return results


def startup(seal: Path, port: int, work: Path, cold: bool) -> dict[str, float]:
    """Seconds from exec to ready, and each start-up step's seconds from the server's log."""
    command = [sys.executable, "-m", "modelseal", "serve", str(seal), "--port", str(port),
               "--log-format", "json"]  # fmt: skip
    if cold:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    log = work / f"startup-{port}.log"
    server = Server(command, port, log)
    try:
        total = server.wait_ready("/v2/health/ready")
    finally:
        server.stop()
    steps: dict[str, float] = {"exec to ready": total}
    for line in log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        message = record.get("message", "")
        if message.startswith("start-up step "):
            steps[message.removeprefix("start-up step ")] = record["seconds"]
        elif message == "runtime load breakdown":
            steps.update({f"load: {k}": v for k, v in record.items() if isinstance(v, float)})
        elif message == "timings" and "preflight" in record:
            steps["preflight"] = record["preflight"]
    return steps


def memory(kind: servers.ServerKind, work: Path) -> tuple[float, bool]:
    """Resident MiB of a server once ready and after a second of requests; and whether it
    has imported torch."""
    server = Server(kind.command, kind.port, work / f"memory-{kind.port}.log")
    try:
        server.wait_ready(kind.ready_path)
        drive(server, kind.request, 4, 1, work)
        return server.rss_mib(), server.maps_torch()
    finally:
        server.stop()


@dataclass(frozen=True)
class Profile:
    top: list[tuple[float, str]]
    """The functions that take the most samples (own time), with their share."""
    threads: dict[str, float]
    """Share of the samples by thread."""
    packages: list[tuple[float, str]]
    """Share of the samples by the package of the innermost Python frame."""


def profile(
    model: BenchModel, port: int, work: Path, results: Path, seconds: int
) -> dict[int, Profile]:
    """py-spy on the /predict request path at c=64 and c=1: a flame graph per load in
    ``results`` and where the samples fall (py-spy leaves idle threads out)."""
    kind = servers.modelseal(model, port, "/predict")
    server = Server(kind.command, kind.port, work / "profile.log")
    tops: dict[int, Profile] = {}
    try:
        server.wait_ready(kind.ready_path)
        for connections in (64, 1):
            raw = work / f"profile-c{connections}.txt"
            svg = results / f"serving-profile-c{connections}.svg"
            spies = [_py_spy(server.process.pid, seconds, raw, "raw"),
                     _py_spy(server.process.pid, seconds, svg, "flamegraph")]  # fmt: skip
            drive(server, kind.request, connections, seconds + 2, work)
            for spy in spies:
                spy.wait(60)
            tops[connections] = _summary(raw)
    finally:
        server.stop()
    return tops


def _py_spy(pid: int, seconds: int, output: Path, form: str) -> subprocess.Popen[bytes]:
    spy = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen(
        [str(spy), "record", "-p", str(pid), "-d", str(seconds), "-r", "250", "-f", form,
         "-o", str(output), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _summary(raw: Path, count: int = 18) -> Profile:
    own: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        leaf = stack.split(";")[-1]
        own[leaf] += int(samples)
        predict = "PredictThread._serve" in stack
        threads["predict thread" if predict else "event loop thread"] += int(samples)
        packages[leaf.rpartition("(")[2].split("/")[0].split(":")[0] or "?"] += int(samples)
    total = sum(own.values()) or 1
    return Profile(
        [(100 * n / total, frame) for frame, n in own.most_common(count)],
        {name: 100 * n / total for name, n in threads.most_common()},
        [(100 * n / total, name) for name, n in packages.most_common()],
    )


PAIRED = ("no-op", "/predict", "OIP v2 JSON", "OIP v2 binary")


def paired(
    model: BenchModel, port: int, work: Path, seconds: int, rounds: int
) -> list[dict[str, Load]]:
    """c=64 against the no-op server and modelseal's three request kinds, taken in turn
    ``rounds`` times while both servers stay up (pinned to CPU 0; the one not driven idles):
    each round's figures sit seconds apart, so their ratios hold while the machine's speed
    drifts, which figures minutes apart do not."""
    noop = servers.noop(model, port)
    ours = servers.modelseal(model, port + 1, "/predict")
    requests = {
        "no-op": servers.predict_request(model),
        "/predict": servers.predict_request(model),
        "OIP v2 JSON": servers.oip_json_request(model),
        "OIP v2 binary": servers.oip_binary_request(model),
    }
    noop_server = Server(noop.command, noop.port, work / f"paired-{port}.log")
    ours_server = Server(ours.command, ours.port, work / f"paired-{port + 1}.log")
    try:
        noop_server.wait_ready(noop.ready_path)
        ours_server.wait_ready(ours.ready_path)
        target = dict.fromkeys(PAIRED, ours_server) | {"no-op": noop_server}
        for name in PAIRED:
            drive(target[name], requests[name], 8, 1, work)
        return [
            {name: drive(target[name], requests[name], 64, seconds, work) for name in PAIRED}
            for _ in range(rounds)
        ]
    finally:
        noop_server.stop()
        ours_server.stop()
