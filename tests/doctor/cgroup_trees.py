"""Fixture trees laid out like real hosts and containers, and real child cgroups.

The trees hold the real file names at the real places (``proc/self/cgroup``,
``proc/self/mountinfo``, ``sys/fs/cgroup/...``) with contents in the kernel's formats; the
mountinfo of the v1 container is the one captured from a Docker 20.10 container
(``fixtures/container-mountinfo.txt``).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
CONTAINER_ID = "a3ed3350581757815f7d962f71dbe4b015d754323c6f41f8b93718595a65948e"
V1_UNLIMITED = "9223372036854771712"


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def v1_container(
    root: Path,
    *,
    memory_limit: str = "268435456",
    quota: str = "50000",
    period: str = "100000",
    oom_kill: int = 0,
    usage: int = 11358208,
    inactive_file: int = 1048576,
) -> Path:
    """A Docker container on a cgroup v1 host (no cgroup namespace): each controller is
    mounted with the container's own cgroup as the mount's root."""
    controllers = ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"]
    proc_cgroup = "\n".join(
        [f"9:name=systemd:/docker/{CONTAINER_ID}"]
        + [f"{8 - i}:{name}:/docker/{CONTAINER_ID}" for i, name in enumerate(reversed(controllers))]
        + [f"0::/docker/{CONTAINER_ID}"]
    )
    return write_tree(
        root,
        {
            "proc/self/cgroup": proc_cgroup + "\n",
            "proc/self/mountinfo": (FIXTURES / "container-mountinfo.txt").read_text(),
            "proc/meminfo": "MemTotal:       24684084 kB\nMemFree:        20000000 kB\n",
            "sys/fs/cgroup/memory/memory.limit_in_bytes": memory_limit + "\n",
            "sys/fs/cgroup/memory/memory.usage_in_bytes": f"{usage}\n",
            "sys/fs/cgroup/memory/memory.stat": (
                f"cache 2097152\nrss 9437184\ninactive_file {inactive_file}\n"
                f"total_inactive_file {inactive_file}\n"
            ),
            "sys/fs/cgroup/memory/memory.oom_control": (
                f"oom_kill_disable 0\nunder_oom 0\noom_kill {oom_kill}\n"
            ),
            "sys/fs/cgroup/cpu/cpu.cfs_quota_us": quota + "\n",
            "sys/fs/cgroup/cpu/cpu.cfs_period_us": period + "\n",
            "sys/fs/cgroup/cpu/cpu.shares": "1024\n",
        },
    )


def v1_host_nested(root: Path) -> Path:
    """A cgroup v1 host where this process sits two levels down and the limits are set on
    its parents: the mounts' root is the hierarchy's root."""
    leaf = "process_api/46cfb593590cd217643c270e7c89ab07"
    mountinfo = "\n".join(
        [
            "25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684084k",
            "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
            "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct",
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
            "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd",
            "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
        ]
    )
    memory = "sys/fs/cgroup/memory"
    cpu = "sys/fs/cgroup/cpu,cpuacct"
    return write_tree(
        root,
        {
            "proc/self/cgroup": (
                f"4:memory:/{leaf}\n2:cpu,cpuacct:/{leaf}\n1:name=systemd:/\n0::/\n"
            ),
            "proc/self/mountinfo": mountinfo + "\n",
            "proc/meminfo": "MemTotal:       24684084 kB\n",
            f"{memory}/memory.limit_in_bytes": V1_UNLIMITED,
            f"{memory}/process_api/memory.limit_in_bytes": "2147483648",
            f"{memory}/{leaf}/memory.limit_in_bytes": V1_UNLIMITED,
            f"{memory}/{leaf}/memory.usage_in_bytes": "734003200",
            f"{memory}/{leaf}/memory.stat": "total_inactive_file 209715200\n",
            f"{memory}/{leaf}/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            f"{cpu}/cpu.cfs_quota_us": "-1",
            f"{cpu}/cpu.cfs_period_us": "100000",
            f"{cpu}/process_api/cpu.cfs_quota_us": "300000",
            f"{cpu}/process_api/cpu.cfs_period_us": "100000",
            f"{cpu}/{leaf}/cpu.cfs_quota_us": "150000",
            f"{cpu}/{leaf}/cpu.cfs_period_us": "100000",
            "sys/fs/cgroup/unified/cgroup.controllers": "",
        },
    )


def v2_container(root: Path, *, memory_max: str = "536870912", cpu_max: str = "50000 100000",
                 oom_kill: int = 3) -> Path:  # fmt: skip
    """A container with a private cgroup namespace on a cgroup v2 host (Docker's default on
    v2): /proc/self/cgroup says "0::/" and cgroup2 is mounted read-only at /sys/fs/cgroup."""
    mountinfo = "\n".join(
        [
            "622 621 0:52 / / rw,relatime master:304 - overlay overlay rw,lowerdir=/l,upperdir=/u",
            "627 623 0:57 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 "
            "rw,nsdelegate,memory_recursiveprot",
            "631 624 0:59 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k",
        ]
    )
    return write_tree(
        root,
        {
            "proc/self/cgroup": "0::/\n",
            "proc/self/mountinfo": mountinfo + "\n",
            "proc/meminfo": "MemTotal:       65843084 kB\n",
            "sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
            "sys/fs/cgroup/memory.max": memory_max + "\n",
            "sys/fs/cgroup/memory.current": "402653184\n",
            "sys/fs/cgroup/memory.stat": "anon 301989888\nfile 100663296\ninactive_file 33554432\n",
            "sys/fs/cgroup/memory.events": (
                f"low 0\nhigh 0\nmax 17\noom {oom_kill}\noom_kill {oom_kill}\noom_group_kill 0\n"
            ),
            "sys/fs/cgroup/cpu.max": cpu_max + "\n",
        },
    )


def v2_host_systemd(root: Path) -> Path:
    """A systemd service on a cgroup v2 host: limits set on its slice apply to it."""
    service = "system.slice/model-server.service"
    mountinfo = (
        "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 "
        "cgroup2 rw,nsdelegate,memory_recursiveprot\n"
        "26 24 0:24 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw,inode64\n"
    )
    return write_tree(
        root,
        {
            "proc/self/cgroup": f"0::/{service}\n",
            "proc/self/mountinfo": mountinfo,
            "proc/meminfo": "MemTotal:       32827140 kB\n",
            "sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n",
            "sys/fs/cgroup/system.slice/memory.max": "1073741824\n",
            "sys/fs/cgroup/system.slice/cpu.max": "200000 100000\n",
            f"sys/fs/cgroup/{service}/memory.max": "max\n",
            f"sys/fs/cgroup/{service}/memory.current": "104857600\n",
            f"sys/fs/cgroup/{service}/memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
            f"sys/fs/cgroup/{service}/cpu.max": "max 100000\n",
        },
    )


# --- real child cgroups of this process's own (cgroup v1, root) -------------------------------


@dataclass
class ChildCgroup:
    """A real cgroup v1 child of the test process's memory and cpu cgroups."""

    memory: Path
    cpu: Path

    def set_memory_limit(self, limit: int) -> None:
        """Memory (and memory+swap, where swap is accounted) limited to ``limit``."""
        names = ["memory.limit_in_bytes"]
        if (self.memory / "memory.memsw.limit_in_bytes").exists():
            # memory+swap may never be below memory: lower memory first, raise it last
            current = int((self.memory / "memory.limit_in_bytes").read_text())
            names = [*names, "memory.memsw.limit_in_bytes"]
            names = names if limit < current else names[::-1]
        for name in names:
            (self.memory / name).write_text(str(limit))

    def oom_kills(self) -> int:
        for line in (self.memory / "memory.oom_control").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        raise AssertionError("this kernel's memory.oom_control has no oom_kill count")

    def set_cpu_quota(self, quota_us: int, period_us: int = 100_000) -> None:
        (self.cpu / "cpu.cfs_period_us").write_text(str(period_us))
        (self.cpu / "cpu.cfs_quota_us").write_text(str(quota_us))

    def run(self, command: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``command`` inside this cgroup (the shell joins it, then execs the command)."""
        join = (
            f'echo $$ > "{self.memory}/cgroup.procs" && echo $$ > "{self.cpu}/cgroup.procs" '
            '&& exec "$@"'
        )
        return subprocess.run(
            ["sh", "-c", join, "sh", *command],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )


@contextmanager
def child_cgroup() -> Iterator[ChildCgroup]:
    """A fresh child cgroup (v1 memory + cpu), removed afterwards; skips where the cgroup
    tree cannot be written (not root, cgroup v2 without delegation, read-only cgroupfs)."""
    paths = _own_v1_paths()
    if paths is None:
        pytest.skip("needs cgroup v1 memory and cpu hierarchies mounted at /sys/fs/cgroup")
    name = f"modelseal-test-{uuid.uuid4().hex[:12]}"
    created: list[Path] = []
    try:
        for parent in paths:
            child = parent / name
            try:
                child.mkdir()
            except OSError as exc:
                pytest.skip(f"cannot create a cgroup under {parent}: {exc}")
            created.append(child)
        yield ChildCgroup(memory=created[0], cpu=created[1])
    finally:
        for child in created:
            child.rmdir()


def _own_v1_paths() -> tuple[Path, Path] | None:
    if not os.access("/sys/fs/cgroup", os.W_OK) and os.geteuid() != 0:
        return None
    found: dict[str, Path] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            mount = Path("/sys/fs/cgroup") / controllers
            if controller in ("memory", "cpu") and mount.is_dir():
                found[controller] = mount / path.lstrip("/")
    if "memory" not in found or "cpu" not in found:
        return None
    return found["memory"], found["cpu"]
