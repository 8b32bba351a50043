"""cgroup v1 and v2 limits, read from fixture trees laid out like real hosts and containers,
and from real cgroups of this machine (created by the test, with limits it sets)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from modelseal.cgroup import (
    parse_mountinfo,
    parse_proc_cgroup,
    parse_size,
    read_cgroup_limits,
    usable_cpus,
)
from modelseal.doctor.limits import shm_size
from tests.doctor.cgroup_trees import (
    child_cgroup,
    v1_container,
    v1_host_nested,
    v2_container,
    v2_host_systemd,
    write_tree,
)

MIB = 1 << 20


def test_a_v1_container_reads_its_own_cgroup_at_the_mount_root(tmp_path: Path) -> None:
    limits = read_cgroup_limits(v1_container(tmp_path, inactive_file=1048576))
    assert limits.version == 1
    assert limits.memory_limit == 256 * MIB
    assert limits.cpu_limit == 0.5
    assert limits.oom_kills == 0
    assert limits.memory_usage == 11358208 - 1048576  # the reclaimable file cache left out
    assert limits.folders == {"memory": "/sys/fs/cgroup/memory", "cpu": "/sys/fs/cgroup/cpu"}


def test_v1_no_limit_is_the_kernels_largest_counter(tmp_path: Path) -> None:
    limits = read_cgroup_limits(v1_container(tmp_path, memory_limit="9223372036854771712",
                                             quota="-1", oom_kill=4))  # fmt: skip
    assert limits.memory_limit is None
    assert limits.cpu_limit is None
    assert limits.oom_kills == 4


def test_v1_limits_set_on_a_parent_cgroup_apply(tmp_path: Path) -> None:
    limits = read_cgroup_limits(v1_host_nested(tmp_path))
    assert limits.version == 1  # the empty cgroup2 mount of a hybrid host is not used
    assert limits.memory_limit == 2 * 1024 * MIB  # the parent's, the leaf is unlimited
    assert limits.cpu_limit == 1.5  # the leaf's 1.5 CPUs are tighter than the parent's 3
    assert limits.oom_kills == 2
    assert limits.memory_usage == 734003200 - 209715200
    leaf = "/sys/fs/cgroup/memory/process_api/46cfb593590cd217643c270e7c89ab07"
    assert limits.folders["memory"] == leaf


def test_a_v2_container_with_a_cgroup_namespace(tmp_path: Path) -> None:
    limits = read_cgroup_limits(v2_container(tmp_path))
    assert limits.version == 2
    assert limits.memory_limit == 512 * MIB
    assert limits.cpu_limit == 0.5
    assert limits.oom_kills == 3
    assert limits.memory_usage == 402653184 - 33554432
    assert limits.folders == {"memory": "/sys/fs/cgroup", "cpu": "/sys/fs/cgroup"}


def test_v2_max_means_no_limit(tmp_path: Path) -> None:
    limits = read_cgroup_limits(v2_container(tmp_path, memory_max="max", cpu_max="max 100000"))
    assert (limits.memory_limit, limits.cpu_limit) == (None, None)


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("50000 100000", 0.5), ("250000 100000", 2.5), ("max 100000", None)],
    ids=["half-a-cpu", "two-and-a-half-cpus", "no-quota"],
)
def test_usable_cpus_are_the_affinity_capped_by_the_quota(
    tmp_path: Path, cpu_max: str, expected: float | None
) -> None:
    affinity = len(os.sched_getaffinity(0))
    usable = usable_cpus(v2_container(tmp_path, cpu_max=cpu_max))
    assert usable == (affinity if expected is None else min(affinity, expected))


def test_v2_limits_of_the_slice_apply_to_the_service(tmp_path: Path) -> None:
    limits = read_cgroup_limits(v2_host_systemd(tmp_path))
    assert limits.version == 2
    assert limits.memory_limit == 1024 * MIB
    assert limits.cpu_limit == 2.0
    assert limits.oom_kills == 0
    assert limits.folders["memory"] == "/sys/fs/cgroup/system.slice/model-server.service"


def test_no_cgroup_files_means_no_version(tmp_path: Path) -> None:
    write_tree(tmp_path, {"proc/self/cgroup": "", "proc/self/mountinfo": ""})
    limits = read_cgroup_limits(tmp_path)
    assert limits.version is None
    assert limits.memory_limit is None


def test_mountinfo_fields_and_escapes() -> None:
    line = (
        "36 35 98:0 /mnt1 /mnt\\040with\\040space rw,noatime master:1 shared:2 - ext3 "
        "/dev/root rw,errors=continue"
    )
    (mount,) = parse_mountinfo(line)
    assert mount.root == "/mnt1"
    assert mount.mount_point == "/mnt with space"
    assert (mount.fstype, mount.source) == ("ext3", "/dev/root")
    assert mount.super_options == ("rw", "errors=continue")


def test_proc_cgroup_lines() -> None:
    lines = parse_proc_cgroup("12:cpu,cpuacct:/docker/abc\n1:name=systemd:/\n0::/init.scope\n")
    assert [(line.hierarchy, line.controllers, line.path) for line in lines] == [
        (12, ("cpu", "cpuacct"), "/docker/abc"),
        (1, ("name=systemd",), "/"),
        (0, (), "/init.scope"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"), [("65536k", 64 * MIB), ("16384k", 16 * MIB), ("1g", 1 << 30),
                           ("512", 512), ("12x", None)]
)  # fmt: skip
def test_tmpfs_sizes(text: str, expected: int | None) -> None:
    assert parse_size(text) == expected


def test_shm_size_comes_from_the_captured_container_mountinfo(tmp_path: Path) -> None:
    assert shm_size(v1_container(tmp_path)) == 16 * MIB  # docker run --shm-size 16m


def test_shm_size_of_this_machine_matches_statvfs() -> None:
    if not Path("/dev/shm").is_dir():
        pytest.skip("this machine has no /dev/shm")
    stats = os.statvfs("/dev/shm")
    assert shm_size() == stats.f_blocks * stats.f_frsize


# --- this machine's own cgroups ---------------------------------------------------------------


DOCTOR_JSON = [sys.executable, "-m", "modelseal", "doctor", "--json"]


def _check(report: dict[str, Any], check_id: str) -> dict[str, Any]:
    return next(check for check in report["checks"] if check["id"] == check_id)


def test_limits_this_machine_sets_on_a_real_cgroup_are_read_back() -> None:
    with child_cgroup() as cgroup:
        cgroup.set_memory_limit(1536 * MIB)
        cgroup.set_cpu_quota(50_000)  # half a CPU
        result = cgroup.run(DOCTOR_JSON)
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    memory = _check(report, "limits.memory")
    assert memory["facts"]["memory_limit_bytes"] == 1536 * MIB
    assert memory["facts"]["cgroup_version"] == 1
    cpu = _check(report, "limits.cpu")
    assert cpu["facts"]["cpu_quota"] == 0.5
    assert cpu["status"] == "warn"  # under one CPU
    threads = _check(report, "threads.oversubscription")
    pools = threads["facts"]["max_threads"]
    assert isinstance(pools, int)
    expected = "warn" if pools > 1 else "ok"  # more than one thread on half a CPU
    assert threads["status"] == expected, threads["evidence"]


def test_an_oom_kill_in_a_real_cgroup_is_counted() -> None:
    with child_cgroup() as cgroup:
        cgroup.set_memory_limit(48 * MIB)
        hog = cgroup.run([sys.executable, "-c", "x = bytearray(512 << 20); print(len(x))"])
        assert hog.returncode == -9, (hog.returncode, hog.stderr)  # SIGKILL from the OOM killer
        kills = cgroup.oom_kills()
        cgroup.set_memory_limit(1536 * MIB)
        result = cgroup.run(DOCTOR_JSON)
    assert kills >= 1
    report = json.loads(result.stdout)
    oom = _check(report, "limits.oom")
    assert oom["status"] == "fail"
    assert oom["facts"]["oom_kills"] == kills
    assert result.returncode == 1
