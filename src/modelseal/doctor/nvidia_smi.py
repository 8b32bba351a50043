"""What ``nvidia-smi`` reports: the GPUs the driver sees, their memory, and who uses them.

Two CSV queries (``--format=csv,noheader,nounits``), parsed by pure functions so they can be
tested on captured output. A GPU in the driver's view is not yet a GPU this process can use:
``CUDA_VISIBLE_DEVICES`` and the framework's CUDA build decide that (see ``gpu.py``).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from dataclasses import dataclass

GPU_FIELDS = (
    "index",
    "uuid",
    "name",
    "driver_version",
    "memory.total",
    "memory.used",
    "memory.free",
    "compute_cap",
)
PROCESS_FIELDS = ("gpu_uuid", "pid", "process_name", "used_memory")
TIMEOUT_SECONDS = 30
# Drivers before R510 do not know this field and refuse the whole query.
OPTIONAL_FIELD = "compute_cap"
_MISSING = frozenset({"", "N/A", "[N/A]", "[Not Supported]", "[Not Found]", "[Unknown Error]"})


@dataclass(frozen=True)
class SmiGpu:
    """One GPU as the driver reports it; memory in MiB."""

    index: int
    uuid: str
    name: str
    driver: str | None
    memory_total_mib: int | None
    memory_used_mib: int | None
    memory_free_mib: int | None
    compute_capability: str | None


@dataclass(frozen=True)
class SmiProcess:
    """One process holding a CUDA context on a GPU; memory in MiB."""

    gpu_uuid: str
    pid: int | None
    name: str | None
    used_mib: int | None


@dataclass(frozen=True)
class SmiReport:
    """``found``: nvidia-smi is on PATH; ``error``: why it gave no GPUs, when it failed."""

    found: bool
    gpus: tuple[SmiGpu, ...] = ()
    processes: tuple[SmiProcess, ...] = ()
    error: str | None = None

    @property
    def driver(self) -> str | None:
        return next((gpu.driver for gpu in self.gpus if gpu.driver), None)


def query_nvidia_smi() -> SmiReport:
    """Run nvidia-smi's GPU and compute-process queries; never raises."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return SmiReport(found=False, error="nvidia-smi is not on PATH")
    fields: tuple[str, ...] = GPU_FIELDS
    ok, text = _run(executable, f"--query-gpu={','.join(fields)}")
    if not ok and OPTIONAL_FIELD in text:
        fields = tuple(field for field in GPU_FIELDS if field != OPTIONAL_FIELD)
        ok, text = _run(executable, f"--query-gpu={','.join(fields)}")
    if not ok:
        return SmiReport(found=True, error=text)
    gpus = parse_gpu_query(text, fields)
    ok, process_text = _run(executable, f"--query-compute-apps={','.join(PROCESS_FIELDS)}")
    processes = parse_process_query(process_text) if ok else []
    return SmiReport(found=True, gpus=tuple(gpus), processes=tuple(processes))


def parse_gpu_query(text: str, fields: tuple[str, ...] = GPU_FIELDS) -> list[SmiGpu]:
    """``--query-gpu=<fields> --format=csv,noheader,nounits`` output -> GPUs."""
    gpus = []
    for row in _rows(text, len(fields)):
        value = dict(zip(fields, row, strict=True))
        gpus.append(
            SmiGpu(
                index=_int(value["index"]) or 0,
                uuid=value["uuid"],
                name=value["name"],
                driver=_text(value["driver_version"]),
                memory_total_mib=_int(value["memory.total"]),
                memory_used_mib=_int(value["memory.used"]),
                memory_free_mib=_int(value["memory.free"]),
                compute_capability=_text(value.get(OPTIONAL_FIELD, "")),
            )
        )
    return gpus


def parse_process_query(text: str) -> list[SmiProcess]:
    """``--query-compute-apps=gpu_uuid,pid,process_name,used_memory`` output -> processes."""
    return [
        SmiProcess(gpu_uuid=uuid, pid=_int(pid), name=_text(name), used_mib=_int(used))
        for uuid, pid, name, used in _rows(text, len(PROCESS_FIELDS))
    ]


def _run(executable: str, query: str) -> tuple[bool, str]:
    try:
        result = subprocess.run(
            [executable, query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"nvidia-smi could not run: {exc}"
    if result.returncode != 0:
        message = (result.stdout + result.stderr).strip() or f"exit status {result.returncode}"
        return False, f"nvidia-smi failed (exit {result.returncode}): {message}"
    return True, result.stdout


def _rows(text: str, width: int) -> list[list[str]]:
    # Lines of another width are messages ("No devices were found"), not data.
    reader = csv.reader(text.splitlines(), skipinitialspace=True)
    return [[cell.strip() for cell in row] for row in reader if len(row) == width]


def _text(value: str) -> str | None:
    return None if value.strip() in _MISSING else value.strip()


def _int(value: str) -> int | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return int(float(text))
    except ValueError:
        return None
