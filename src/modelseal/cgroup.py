"""Reading this process's container limits from cgroup v1 or v2, and the mounts around it.

Everything is read below a ``root`` folder (``/`` in real use) so that tests can lay out
fixture trees exactly like real hosts: ``proc/self/cgroup``, ``proc/self/mountinfo``,
``proc/meminfo`` and the cgroup files under the mount points mountinfo names.

A controller is looked up where the kernel says this process is: its path in
``/proc/self/cgroup``, made relative to the root of the cgroup mount (in a container without
a cgroup namespace the mount's root is the container's own cgroup). Limits set on any
ancestor up to the mount apply too, so the effective limit is the smallest on the way up.
Hybrid hosts (v1 controllers plus an empty cgroup2 mount) are read from v1.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# cgroup v1 reports "no limit" as the largest page-aligned counter (9223372036854771712).
UNLIMITED_FLOOR = 1 << 60
CgroupVersion = Literal[1, 2]
_Parser = Callable[[str | None], int | None]


@dataclass(frozen=True)
class Mount:
    """One line of ``/proc/self/mountinfo``."""

    root: str
    mount_point: str
    fstype: str
    source: str
    super_options: tuple[str, ...]


@dataclass(frozen=True)
class CgroupLine:
    """One line of ``/proc/self/cgroup``: hierarchy id, controllers, path."""

    hierarchy: int
    controllers: tuple[str, ...]
    path: str


@dataclass(frozen=True)
class CgroupLimits:
    """The effective limits of this process's cgroup; None means no limit (or unknown)."""

    version: CgroupVersion | None
    memory_limit: int | None = None
    memory_usage: int | None = None
    cpu_limit: float | None = None
    """CPUs the quota allows (quota / period)."""
    oom_kills: int | None = None
    folders: dict[str, str] = field(default_factory=dict)
    """controller -> the cgroup folder it was read from (relative to the root)."""


def read_cgroup_limits(root: Path = Path("/")) -> CgroupLimits:
    mounts = parse_mountinfo(_read(root / "proc/self/mountinfo") or "")
    lines = parse_proc_cgroup(_read(root / "proc/self/cgroup") or "")
    memory = _controller_folder(root, mounts, lines, "memory", "memory.max")
    cpu = _controller_folder(root, mounts, lines, "cpu", "cpu.max")
    versions = [found[0] for found in (memory, cpu) if found is not None]
    if not versions:
        return CgroupLimits(version=None)
    reading = _MemoryReading() if memory is None else _memory(*memory)
    folders = {
        name: _shown(root, found[1])
        for name, found in (("memory", memory), ("cpu", cpu))
        if found is not None
    }
    return CgroupLimits(
        version=versions[0],
        memory_limit=reading.limit,
        memory_usage=reading.usage,
        cpu_limit=None if cpu is None else _cpu_limit(*cpu),
        oom_kills=reading.oom_kills,
        folders=folders,
    )


def parse_mountinfo(text: str) -> list[Mount]:
    """``/proc/self/mountinfo`` -> mounts, in order (a later mount hides an earlier one)."""
    mounts = []
    for line in text.splitlines():
        before, separator, after = line.partition(" - ")
        fields = before.split()
        tail = after.split()
        if not separator or len(fields) < 5 or len(tail) < 2:
            continue
        mounts.append(
            Mount(
                root=_unescape(fields[3]),
                mount_point=_unescape(fields[4]),
                fstype=tail[0],
                source=tail[1],
                super_options=tuple(tail[2].split(",")) if len(tail) > 2 else (),
            )
        )
    return mounts


def parse_proc_cgroup(text: str) -> list[CgroupLine]:
    """``/proc/self/cgroup`` -> one entry per hierarchy (v2's is hierarchy 0, no controllers)."""
    lines = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        controllers = tuple(name for name in parts[1].split(",") if name)
        lines.append(CgroupLine(hierarchy=int(parts[0]), controllers=controllers, path=parts[2]))
    return lines


def mount_at(mounts: list[Mount], mount_point: str) -> Mount | None:
    """The mount visible at ``mount_point`` (the last one mounted there)."""
    found = [mount for mount in mounts if mount.mount_point == mount_point]
    return found[-1] if found else None


def tmpfs_size(mount: Mount) -> int | None:
    """The ``size=`` option of a tmpfs mount in bytes (``size=65536k``)."""
    for option in mount.super_options:
        key, _, value = option.partition("=")
        if key == "size":
            return parse_size(value)
    return None


def parse_size(text: str) -> int | None:
    """``65536k`` / ``64m`` / ``1g`` / ``1024`` -> bytes (binary multiples, as the kernel)."""
    match = re.fullmatch(r"(\d+)([kKmMgGtT]?)", text.strip())
    if match is None:
        return None
    number, unit = match.groups()
    return int(number) << (10 * " kmgt".index(unit.lower() or " "))


def host_memory(root: Path = Path("/")) -> int | None:
    """MemTotal of ``/proc/meminfo`` in bytes."""
    for line in (_read(root / "proc/meminfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key == "MemTotal":
            number = value.split()[0] if value.split() else ""
            return int(number) * 1024 if number.isdigit() else None
    return None


def available_cpus() -> int:
    """CPUs this process may run on (its affinity, which cpusets restrict)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def capped_by_quota(cpus: int, quota: float | None) -> float:
    """``cpus`` capped by a cgroup CPU quota in CPUs (None: no quota)."""
    return float(cpus) if quota is None else min(float(cpus), quota)


def usable_cpus(root: Path = Path("/")) -> float:
    """CPUs' worth of time this process can use: its affinity, capped by its cgroup's quota."""
    return capped_by_quota(available_cpus(), read_cgroup_limits(root).cpu_limit)


# --- finding a controller's folder -----------------------------------------------------------


def _controller_folder(
    root: Path, mounts: list[Mount], lines: list[CgroupLine], controller: str, v2_file: str
) -> tuple[CgroupVersion, Path, Path] | None:
    """(version, the process's folder, the mount's folder) for ``controller``, v1 first."""
    for line in lines:
        if controller not in line.controllers:
            continue
        for mount in reversed(mounts):
            if mount.fstype == "cgroup" and controller in mount.super_options:
                return (1, *_folders(root, mount, line.path))
    unified = next((line for line in lines if line.hierarchy == 0 and not line.controllers), None)
    if unified is None:
        return None
    for mount in reversed(mounts):
        if mount.fstype != "cgroup2":
            continue
        folder, top = _folders(root, mount, unified.path)
        if _first_on_the_way_up(folder, top, v2_file) is not None or _enabled(top, controller):
            return 2, folder, top
    return None


def _folders(root: Path, mount: Mount, path: str) -> tuple[Path, Path]:
    top = root / mount.mount_point.lstrip("/")
    mount_root = mount.root.rstrip("/")
    if path == mount_root or path.startswith(mount_root + "/"):
        relative = path[len(mount_root) :].lstrip("/")
    else:
        relative = ""  # the mount does not show our cgroup's ancestry: read the mount itself
    folder = top / relative if relative else top
    return (folder if folder.is_dir() else top), top


def _enabled(top: Path, controller: str) -> bool:
    return controller in (_read(top / "cgroup.controllers") or "").split()


def _on_the_way_up(folder: Path, top: Path) -> list[Path]:
    """``folder`` and its parents up to and including ``top``."""
    chain = [folder]
    while chain[-1] != top and top in chain[-1].parents:
        chain.append(chain[-1].parent)
    return chain


def _first_on_the_way_up(folder: Path, top: Path, name: str) -> Path | None:
    return next((f / name for f in _on_the_way_up(folder, top) if (f / name).is_file()), None)


# --- reading limits --------------------------------------------------------------------------


@dataclass(frozen=True)
class _MemoryReading:
    limit: int | None = None
    usage: int | None = None
    oom_kills: int | None = None


def _memory(version: CgroupVersion, folder: Path, top: Path) -> _MemoryReading:
    if version == 2:
        return _MemoryReading(
            limit=_smallest(folder, top, "memory.max", _v2_bytes),
            usage=_working_set(_v2_bytes(_read(folder / "memory.current")), folder, version),
            oom_kills=_keyed_value(_read(folder / "memory.events"), "oom_kill"),
        )
    return _MemoryReading(
        limit=_smallest(folder, top, "memory.limit_in_bytes", _v1_bytes),
        usage=_working_set(_v1_bytes(_read(folder / "memory.usage_in_bytes")), folder, version),
        oom_kills=_keyed_value(_read(folder / "memory.oom_control"), "oom_kill"),
    )


def _working_set(usage: int | None, folder: Path, version: CgroupVersion) -> int | None:
    """Usage minus the inactive file cache the kernel reclaims before it OOM-kills (what
    ``docker stats`` and the kubelet report)."""
    if usage is None:
        return None
    key = "inactive_file" if version == 2 else "total_inactive_file"
    inactive = _keyed_value(_read(folder / "memory.stat"), key) or 0
    return max(0, usage - inactive)


def _cpu_limit(version: CgroupVersion, folder: Path, top: Path) -> float | None:
    limits = []
    for level in _on_the_way_up(folder, top):
        if version == 2:
            quota_text, _, period_text = (_read(level / "cpu.max") or "max").partition(" ")
        else:
            quota_text = _read(level / "cpu.cfs_quota_us") or "-1"
            period_text = _read(level / "cpu.cfs_period_us") or ""
        quota, period = _integer(quota_text), _integer(period_text)
        if quota is not None and quota > 0 and period:
            limits.append(quota / period)
    return min(limits) if limits else None


def _smallest(folder: Path, top: Path, name: str, parse: _Parser) -> int | None:
    values = [parse(_read(level / name)) for level in _on_the_way_up(folder, top)]
    found = [value for value in values if value is not None]
    return min(found) if found else None


def _v2_bytes(text: str | None) -> int | None:
    if text is None or text.strip() == "max":
        return None
    return _integer(text)


def _v1_bytes(text: str | None) -> int | None:
    value = _integer(text)
    return None if value is None or value >= UNLIMITED_FLOOR else value


def _keyed_value(text: str | None, key: str) -> int | None:
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return _integer(value)
    return None


def _integer(text: str | None) -> int | None:
    if text is not None and re.fullmatch(r"-?\d+", text.strip()):
        return int(text.strip())
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _shown(root: Path, folder: Path) -> str:
    return "/" + str(folder.relative_to(root)) if folder.is_relative_to(root) else str(folder)


def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), text)
