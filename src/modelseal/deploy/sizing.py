"""How long a seal takes to start and how much memory it holds, measured, and what follows.

The seal does not record its start-up time, so it is measured when manifests are rendered:
``modelseal verify --json`` runs in a fresh interpreter (imports, integrity check, model
load, environment diff, golden replay: the steps the server runs before it turns ready)
and its wall-clock time and peak resident memory are read from the operating system.

Start-up budget (the startupProbe's failureThreshold x periodSeconds, and the HEALTHCHECK's
start period): ``max(STARTUP_FLOOR_SECONDS, ceil(STARTUP_SAFETY_FACTOR x measured))``. The
factor covers a slower or busier node, a cold page cache and the server's warm-up rounds;
the floor covers measurements of a few seconds that a cold node can triple.

Memory: ``request = 1.25 x peak RSS + 64 MiB`` (the HTTP server, batch buffers),
``limit = request + 2 x model size + 128 MiB`` (a second copy of the weights while a
runtime converts them, request bursts), both rounded up to 16 MiB.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from modelseal.errors import UsageError
from modelseal.seal.artifact import Seal
from modelseal.seal.manifest import MODEL_DIR

STARTUP_SAFETY_FACTOR = 3.0
STARTUP_FLOOR_SECONDS = 30
MIB = 1 << 20
MEMORY_STEP = 16 * MIB
MEMORY_HEADROOM = 1.25
SERVER_OVERHEAD = 64 * MIB
LIMIT_OVERHEAD = 128 * MIB
MEASURABLE_VERDICTS = ("consistent", "drift")


@dataclass(frozen=True)
class StartupMeasurement:
    """One start-up verification of the seal in a fresh interpreter, on this machine."""

    seconds: float
    peak_rss_bytes: int
    verdict: str
    steps: dict[str, float] = field(default_factory=dict)
    """The verify report's own timings (open, load, environment, replay)."""


@dataclass(frozen=True)
class Sizing:
    """What the manifests ask for; ``measured`` is None when the caller gave the numbers."""

    startup_budget_seconds: int
    memory_request_bytes: int
    memory_limit_bytes: int
    model_bytes: int
    measured: StartupMeasurement | None = None


def measure_startup(seal: Seal) -> StartupMeasurement:
    """Time ``modelseal verify`` of ``seal`` in a new process and read its peak memory.

    The digest is pinned, as the generated Dockerfile and manifests pin it
    (``MODELSEAL_EXPECT_DIGEST``): what vouches for the seal in the container vouches for it
    here, so a pickled model that will load there is loaded and timed here too.
    """
    pin = f"sha256:{seal.digest}"
    command = [
        sys.executable, "-m", "modelseal", "verify", "--json", "--expect-digest", pin,
        str(seal.root),
    ]  # fmt: skip
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err)
        status, rusage = _wait(process)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    report = _parse_report(stdout, stderr, status, seal)
    refusal = report.get("error")
    if isinstance(refusal, dict):
        raise UsageError(
            f"cannot measure the start-up of {seal.name}: modelseal verify refused it "
            f"({refusal.get('message', 'no detail')}); the server in the container would too. "
            "Fix that, or pass --startup-seconds (and --memory for k8s) yourself"
        )
    verdict = str(report.get("verdict"))
    if verdict not in MEASURABLE_VERDICTS:
        failure = report.get("failure") or {}
        raise UsageError(
            f"cannot measure the start-up of {seal.name} here: its model does not run in "
            f"this environment ({verdict}: {failure.get('message', 'no detail')}); install "
            "its runtime here, or pass --startup-seconds (and --memory for k8s) yourself"
        )
    steps = {str(k): float(v) for k, v in (report.get("timings") or {}).items()}
    # ru_maxrss is in KiB on Linux.
    return StartupMeasurement(seconds, rusage.ru_maxrss * 1024, verdict, steps)


def size(
    seal: Seal,
    measurement: StartupMeasurement | None = None,
    *,
    startup_seconds: float | None = None,
    memory_request_bytes: int | None = None,
) -> Sizing:
    """The budget and memory for ``seal``: from a measurement, or from the caller's numbers."""
    if startup_seconds is None or memory_request_bytes is None:
        measurement = measurement or measure_startup(seal)
        if startup_seconds is None:
            startup_seconds = measurement.seconds
        if memory_request_bytes is None:
            memory_request_bytes = _round_up(
                MEMORY_HEADROOM * measurement.peak_rss_bytes + SERVER_OVERHEAD
            )
    model_bytes = model_size(seal)
    return Sizing(
        startup_budget_seconds=startup_budget(startup_seconds),
        memory_request_bytes=memory_request_bytes,
        memory_limit_bytes=_round_up(memory_request_bytes + 2 * model_bytes + LIMIT_OVERHEAD),
        model_bytes=model_bytes,
        measured=measurement,
    )


def startup_budget(measured_seconds: float) -> int:
    if measured_seconds < 0:
        raise UsageError(f"a start-up time cannot be negative, got {measured_seconds}")
    return max(STARTUP_FLOOR_SECONDS, math.ceil(STARTUP_SAFETY_FACTOR * measured_seconds))


def model_size(seal: Seal) -> int:
    prefix = f"{MODEL_DIR}/"
    return sum(e.size for path, e in seal.manifest.files.items() if path.startswith(prefix))


def quantity(size_bytes: int) -> str:
    """A Kubernetes memory quantity in Mi (exact: sizes are multiples of 16 MiB)."""
    return f"{math.ceil(size_bytes / MIB)}Mi"


def _wait(process: subprocess.Popen[bytes]) -> tuple[int, resource.struct_rusage]:
    """Wait for ``process`` and return its exit status and its own resource usage."""
    try:
        _pid, status, rusage = os.wait4(process.pid, 0)
    except BaseException:
        process.kill()
        process.wait()
        raise
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, rusage


def _parse_report(stdout: str, stderr: str, status: int, seal: Seal) -> dict[str, Any]:
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        report = None
    if not isinstance(report, dict):
        raise UsageError(
            f"cannot measure the start-up of {seal.name}: modelseal verify exited {status} "
            f"without a report ({stderr.strip()[-500:] or 'no message'}); pass "
            "--startup-seconds (and --memory for k8s) yourself"
        )
    return report


def _round_up(size_bytes: float) -> int:
    return math.ceil(size_bytes / MEMORY_STEP) * MEMORY_STEP
