"""Container limit checks: memory, CPU quota, OOM kills, /dev/shm and free disk, judged
against the model's size.

``gather_limit_facts`` reads cgroups and mounts below a root folder (``/`` in real use) and
the disk where temp and cache files go; ``limit_checks`` only judges those facts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from modelseal.cgroup import (
    CgroupLimits,
    available_cpus,
    capped_by_quota,
    host_memory,
    mount_at,
    parse_mountinfo,
    read_cgroup_limits,
    tmpfs_size,
)
from modelseal.doctor.report import Check, Facts, Status, new_check, worst_status
from modelseal.doctor.subject import MIB, SealFacts, size_text

RUNTIME_BASELINE_BYTES = 256 * MIB
"""Memory an interpreter with numpy and a model runtime typically holds before any weight is
loaded (a slim scikit-learn server holds ~120 MiB, one with torch imported ~400 MiB)."""
SMALLEST_PROCESS_BYTES = 64 * MIB
"""No Python process with numpy and a runtime runs in less: below the model plus this, the
model certainly cannot load."""
NEAR_LIMIT = 0.9
"""Memory use above this fraction of the limit leaves no room for the next batch."""
SMALL_SHM_BYTES = 256 * MIB
"""Below this, DataLoader workers and runtimes that share tensors through /dev/shm fail."""
LOW_DISK_BYTES = 100 * MIB


@dataclass(frozen=True)
class DiskFacts:
    """Free space where some kind of file goes."""

    purpose: str
    path: str
    free: int | None
    total: int | None
    writable: bool
    required: bool = True
    """False where only some seal sources need it (the cache of downloaded seals)."""


@dataclass(frozen=True)
class LimitFacts:
    cgroup: CgroupLimits
    host_memory: int | None
    cpus: int
    """CPUs in this process's affinity mask."""
    shm_bytes: int | None
    disks: tuple[DiskFacts, ...]

    @property
    def effective_cpus(self) -> float:
        """What the process can use: its CPUs, capped by the cgroup's CPU quota."""
        return capped_by_quota(self.cpus, self.cgroup.cpu_limit)


def gather_limit_facts(
    root: Path = Path("/"), temp_dir: Path | None = None, cache_dir: Path | None = None
) -> LimitFacts:
    return LimitFacts(
        cgroup=read_cgroup_limits(root),
        host_memory=host_memory(root),
        cpus=available_cpus(),
        shm_bytes=shm_size(root),
        disks=(
            disk_facts("temp files", temp_dir or Path(tempfile.gettempdir())),
            disk_facts("seal cache", cache_dir or default_cache_dir(), required=False),
        ),
    )


def limit_checks(facts: LimitFacts, seal: SealFacts | None) -> list[Check]:
    model_bytes = seal.model_bytes if seal is not None else None
    return [
        check_memory(facts, model_bytes),
        check_cpu(facts),
        check_oom(facts),
        check_shm(facts),
        check_disk(facts, model_bytes),
    ]


def default_cache_dir() -> Path:
    """Where downloaded seals are cached: MODELSEAL_CACHE_DIR, else the XDG cache folder."""
    configured = os.environ.get("MODELSEAL_CACHE_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "modelseal"


def shm_size(root: Path = Path("/")) -> int | None:
    """Size of /dev/shm: its tmpfs ``size=`` option, else what statvfs says, else None."""
    mountinfo = root / "proc/self/mountinfo"
    try:
        mounts = parse_mountinfo(mountinfo.read_text())
    except OSError:
        mounts = []
    mount = mount_at(mounts, "/dev/shm")
    if mount is not None:
        size = tmpfs_size(mount)
        if size is not None:
            return size
    try:
        stats = os.statvfs(root / "dev/shm")
    except OSError:
        return None
    return stats.f_blocks * stats.f_frsize


def disk_facts(purpose: str, path: Path, *, required: bool = True) -> DiskFacts:
    """Free space at ``path``, or at its nearest existing parent (where it would be made)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        usage = shutil.disk_usage(existing)
    except OSError:
        return DiskFacts(purpose, str(path), None, None, writable=False, required=required)
    writable = os.access(existing, os.W_OK)
    return DiskFacts(purpose, str(path), usage.free, usage.total, writable, required)


# --- memory and CPU --------------------------------------------------------------------------


def memory_needed(model_bytes: int) -> tuple[int, int]:
    """(loaded, peak while loading): loading reads the file and builds the model side by side."""
    return model_bytes + RUNTIME_BASELINE_BYTES, 2 * model_bytes + RUNTIME_BASELINE_BYTES


def judge_memory_room(ceiling: int, model_bytes: int) -> Status:
    """fail: the model certainly cannot load under ``ceiling``; warn: the estimate of what
    loading it takes (see ``memory_needed``) does not fit."""
    _, peak = memory_needed(model_bytes)
    if ceiling < model_bytes + SMALLEST_PROCESS_BYTES:
        return Status.FAIL
    if ceiling < peak:
        return Status.WARN
    return Status.OK


def check_memory(facts: LimitFacts, model_bytes: int | None) -> Check:
    limits = facts.cgroup
    limit = limits.memory_limit
    usage = limits.memory_usage
    check_facts: Facts = {
        "cgroup_version": limits.version,
        "memory_limit_bytes": limit,
        "memory_usage_bytes": usage,
        "host_memory_bytes": facts.host_memory,
        "model_bytes": model_bytes,
    }
    parts = [_limit_text(limits, facts.host_memory)]
    if usage is not None:
        share = f" ({usage / limit:.0%} of the limit)" if limit else ""
        parts.append(f"in use {size_text(usage)}{share}")
    if model_bytes is not None:
        parts.append(model_needs_text(model_bytes))
    evidence = "; ".join(parts)
    title = "memory limit"
    ceiling = limit if limit is not None else facts.host_memory
    room = Status.OK
    if ceiling is not None and model_bytes is not None:
        room = judge_memory_room(ceiling, model_bytes)
    if room is not Status.OK and model_bytes is not None:
        fix = memory_fix(room, model_bytes)
        return new_check("limits", "memory", title, room, evidence, fix, check_facts)
    if limit is not None and usage is not None and usage >= NEAR_LIMIT * limit:
        fix = (
            "raise the memory limit or lower the batch size (--max-batch-size): the next large "
            "batch can push the process over the limit and the OOM killer ends it"
        )
        return new_check("limits", "memory", title, Status.WARN, evidence, fix, check_facts)
    return new_check("limits", "memory", title, Status.OK, evidence, None, check_facts)


def model_needs_text(model_bytes: int) -> str:
    loaded, peak = memory_needed(model_bytes)
    return (
        f"the model is {size_text(model_bytes)} on disk: a process serving it needs about "
        f"{size_text(loaded)}, {size_text(peak)} at peak while loading (estimated)"
    )


def memory_fix(room: Status, model_bytes: int) -> str:
    _, peak = memory_needed(model_bytes)
    if room is Status.FAIL:
        return (
            f"raise the memory limit to at least {size_text(peak)} (docker run --memory, or "
            "resources.limits.memory in Kubernetes): the model alone does not fit in this one"
        )
    return (
        f"raise the memory limit to {size_text(peak)} or more unless the server's measured "
        "peak is known to fit: loading reads the file and builds the model side by side, and "
        "the OOM killer ends the process at that peak"
    )


def _limit_text(limits: CgroupLimits, host: int | None) -> str:
    host_text = f"host memory {size_text(host)}" if host is not None else "host memory unknown"
    if limits.version is None:
        return f"no cgroup memory controller found; {host_text}"
    where = limits.folders.get("memory", "?")
    if limits.memory_limit is None:
        return f"cgroup v{limits.version} ({where}): no memory limit; {host_text}"
    return (
        f"cgroup v{limits.version} ({where}): memory limit {size_text(limits.memory_limit)}; "
        f"{host_text}"
    )


def check_cpu(facts: LimitFacts) -> Check:
    quota = facts.cgroup.cpu_limit
    where = facts.cgroup.folders.get("cpu")
    quota_text = (
        f"CPU quota {quota:g} CPUs (cgroup v{facts.cgroup.version}, {where})"
        if quota is not None
        else "no CPU quota"
    )
    evidence = (
        f"{quota_text}; {facts.cpus} CPU(s) in this process's affinity; "
        f"{os.cpu_count()} on the host"
    )
    check_facts: Facts = {
        "cpu_quota": quota,
        "affinity_cpus": facts.cpus,
        "host_cpus": os.cpu_count(),
    }
    if quota is not None and quota < 1:
        fix = (
            "give the container at least one CPU (docker run --cpus 1, resources.limits.cpu: 1): "
            "below that every batch waits for CFS throttling periods"
        )
        return new_check("limits", "cpu", "CPU quota", Status.WARN, evidence, fix, check_facts)
    return new_check("limits", "cpu", "CPU quota", Status.OK, evidence, None, check_facts)


def check_oom(facts: LimitFacts) -> Check:
    kills = facts.cgroup.oom_kills
    title = "OOM kills"
    where = facts.cgroup.folders.get("memory", "?")
    if kills is None:
        return new_check(
            "limits", "oom", title, Status.SKIPPED,
            "this cgroup reports no OOM-kill count (no memory controller, or a kernel before 4.13)",
        )  # fmt: skip
    evidence = f"{kills} process(es) killed for memory in cgroup v{facts.cgroup.version} {where}"
    if kills:
        fix = (
            "a process here was killed by the OOM killer: raise the memory limit above the "
            "model's peak (see limits.memory) or lower the batch size (--max-batch-size)"
        )
        return new_check("limits", "oom", title, Status.FAIL, evidence, fix, {"oom_kills": kills})
    return new_check("limits", "oom", title, Status.OK, evidence, None, {"oom_kills": kills})


# --- shared memory and disk -----------------------------------------------------------------


def check_shm(facts: LimitFacts) -> Check:
    size = facts.shm_bytes
    title = "/dev/shm size"
    fix = (
        "mount a larger /dev/shm: docker run --shm-size=1g, or in Kubernetes an emptyDir "
        "with medium: Memory mounted at /dev/shm"
    )
    if size is None:
        return new_check(
            "limits", "shm", title, Status.WARN,
            "no /dev/shm mounted: torch DataLoader workers and runtimes that share tensors "
            "between processes fail",
            fix,
        )  # fmt: skip
    evidence = f"/dev/shm is {size_text(size)}"
    if size < SMALL_SHM_BYTES:
        evidence += (
            f", under {size_text(SMALL_SHM_BYTES)} (Docker's default is 64 MiB): torch "
            "DataLoader workers and shared-memory tensors fail with 'No space left on device' "
            "or a bus error"
        )
        return new_check("limits", "shm", title, Status.WARN, evidence, fix, {"shm_bytes": size})
    return new_check("limits", "shm", title, Status.OK, evidence, None, {"shm_bytes": size})


def check_disk(facts: LimitFacts, model_bytes: int | None) -> Check:
    title = "free disk"
    statuses: list[Status] = []
    parts: list[str] = []
    fixes: list[str] = []
    check_facts: Facts = {}
    for disk in facts.disks:
        key = disk.purpose.replace(" ", "_")
        check_facts[f"{key}_path"] = disk.path
        check_facts[f"{key}_free_bytes"] = disk.free
        status, text, fix = _judge_disk(disk, model_bytes)
        statuses.append(status)
        parts.append(text)
        if fix:
            fixes.append(fix)
    worst = worst_status(statuses)
    evidence = "; ".join(parts)
    if model_bytes is not None:
        evidence += f"; the model is {size_text(model_bytes)} on disk"
    return new_check(
        "limits", "disk", title, worst, evidence, "; ".join(fixes) or None, check_facts
    )


def _judge_disk(disk: DiskFacts, model_bytes: int | None) -> tuple[Status, str, str | None]:
    if disk.free is None:
        return Status.WARN, f"{disk.purpose} {disk.path}: cannot be read", None
    text = f"{disk.purpose} {disk.path}: {size_text(disk.free)} free"
    if disk.total:
        text += f" of {size_text(disk.total)}"
    if not disk.required:
        writable = "" if disk.writable else ", not writable"
        return Status.OK, f"{text}{writable} (only seals from remote sources need it)", None
    if not disk.writable:
        return (
            Status.WARN,
            f"{text}, not writable",
            f"make {disk.path} writable (a tmpfs or volume in a read-only container): "
            f"{_needs(disk.purpose)}.",
        )
    if model_bytes is not None and disk.free < model_bytes:
        return (
            Status.FAIL,
            f"{text}, less than the model",
            f"free space at {disk.path} or point it elsewhere: {_needs(disk.purpose)}.",
        )
    if disk.free < LOW_DISK_BYTES or (model_bytes is not None and disk.free < 2 * model_bytes):
        return (
            Status.WARN,
            f"{text}, little room",
            f"free space at {disk.path}: {_needs(disk.purpose)}.",
        )
    return Status.OK, text, None


def _needs(purpose: str) -> str:
    if purpose == "temp files":
        return "seal archives are extracted there (TMPDIR moves it)"
    return "downloaded seals are cached there (MODELSEAL_CACHE_DIR moves it)"
