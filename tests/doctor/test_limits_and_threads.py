"""Limit and thread verdicts: the model against memory, small /dev/shm, OOM kills, disk, and
BLAS/OpenMP threads against the CPU quota (set through the environment of a real process)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from modelseal.cgroup import CgroupLimits, read_cgroup_limits
from modelseal.doctor.limits import (
    DiskFacts,
    LimitFacts,
    check_cpu,
    check_disk,
    check_memory,
    check_oom,
    check_shm,
    disk_facts,
    gather_limit_facts,
)
from modelseal.doctor.report import Status
from tests.doctor.cgroup_trees import v1_container, v2_container

MIB = 1 << 20
GIB = 1 << 30


def limit_facts(cgroup: CgroupLimits, *, shm: int | None = 64 * MIB, cpus: int = 8) -> LimitFacts:
    return LimitFacts(cgroup=cgroup, host_memory=64 * GIB, cpus=cpus, shm_bytes=shm, disks=())


@pytest.mark.parametrize(
    ("limit_mib", "model_mib", "status"),
    [(64, 10, Status.FAIL), (400, 100, Status.WARN), (2048, 100, Status.OK),
     (2048, 2000, Status.FAIL), (2048, 1000, Status.WARN)],
)  # fmt: skip
def test_the_model_against_the_memory_limit(
    tmp_path: Path, limit_mib: int, model_mib: int, status: Status
) -> None:
    cgroup = read_cgroup_limits(v1_container(tmp_path, memory_limit=str(limit_mib * MIB),
                                             usage=0))  # fmt: skip
    check = check_memory(limit_facts(cgroup), model_mib * MIB)
    assert check.status is status, check.evidence
    assert check.facts["memory_limit_bytes"] == limit_mib * MIB
    if status is not Status.OK:
        assert "raise the memory limit" in (check.fix or "")


def test_memory_in_use_near_the_limit_warns(tmp_path: Path) -> None:
    cgroup = read_cgroup_limits(
        v1_container(tmp_path, memory_limit=str(256 * MIB), usage=250 * MIB, inactive_file=0)
    )
    check = check_memory(limit_facts(cgroup), None)
    assert check.status is Status.WARN
    assert "98% of the limit" in check.evidence


def test_no_limit_judges_the_model_against_the_host(tmp_path: Path) -> None:
    cgroup = read_cgroup_limits(v2_container(tmp_path, memory_max="max"))
    check = check_memory(limit_facts(cgroup), 100 * GIB)
    assert check.status is Status.FAIL
    assert "no memory limit; host memory 64 GiB" in check.evidence


def test_less_than_one_cpu_warns(tmp_path: Path) -> None:
    cgroup = read_cgroup_limits(v1_container(tmp_path, quota="50000"))
    check = check_cpu(limit_facts(cgroup))
    assert check.status is Status.WARN
    assert "CPU quota 0.5 CPUs" in check.evidence


def test_oom_kills_fail(tmp_path: Path) -> None:
    check = check_oom(limit_facts(read_cgroup_limits(v2_container(tmp_path, oom_kill=3))))
    assert check.status is Status.FAIL
    assert check.facts == {"oom_kills": 3}


@pytest.mark.parametrize(
    ("shm", "status"), [(16 * MIB, Status.WARN), (64 * MIB, Status.WARN), (1 * GIB, Status.OK),
                        (None, Status.WARN)]
)  # fmt: skip
def test_small_shm_warns(shm: int | None, status: Status) -> None:
    check = check_shm(limit_facts(CgroupLimits(version=None), shm=shm))
    assert check.status is status
    if status is Status.WARN:
        assert "--shm-size" in (check.fix or "")


def test_a_container_with_a_small_shm_is_flagged_from_its_mounts(tmp_path: Path) -> None:
    facts = gather_limit_facts(v1_container(tmp_path), tmp_path, tmp_path)
    check = check_shm(facts)
    assert check.status is Status.WARN
    assert check.facts == {"shm_bytes": 16 * MIB}


def test_disk_smaller_than_the_model_fails_and_unwritable_warns(tmp_path: Path) -> None:
    roomy = DiskFacts("temp files", "/tmp", 50 * GIB, 100 * GIB, writable=True)
    full = DiskFacts("temp files", "/cache", 10 * MIB, 100 * GIB, writable=True)
    locked = DiskFacts("temp files", "/ro", 50 * GIB, 100 * GIB, writable=False)
    cache = DiskFacts("seal cache", "/ro", 1 * MIB, 100 * GIB, writable=False, required=False)
    facts = LimitFacts(CgroupLimits(version=None), None, 2, None, (roomy, full))
    check = check_disk(facts, 200 * MIB)
    assert check.status is Status.FAIL
    assert "/cache: 10 MiB free" in check.evidence
    ok = check_disk(LimitFacts(CgroupLimits(version=None), None, 2, None, (roomy,)), 200 * MIB)
    assert ok.status is Status.OK
    ro = check_disk(LimitFacts(CgroupLimits(version=None), None, 2, None, (locked,)), None)
    assert ro.status is Status.WARN
    assert "not writable" in ro.evidence
    optional = check_disk(LimitFacts(CgroupLimits(version=None), None, 2, None, (cache,)), None)
    assert optional.status is Status.OK
    assert "not writable (only seals from remote sources need it)" in optional.evidence


def test_disk_facts_of_a_folder_not_made_yet_come_from_its_parent(tmp_path: Path) -> None:
    disk = disk_facts("seal cache", tmp_path / "not" / "yet")
    assert disk.writable
    assert disk.free is not None and disk.free > 0


# --- threads, in real processes ---------------------------------------------------------------

THREADS_SCRIPT = """
import json, sys
from pathlib import Path
from modelseal.cgroup import available_cpus, read_cgroup_limits
from modelseal.doctor.limits import LimitFacts
from modelseal.doctor.threads import check_threads, live_pools
import sklearn  # loads numpy's OpenBLAS and the OpenMP runtime, as the demo seal does

cgroup = read_cgroup_limits(Path(sys.argv[1]))
facts = LimitFacts(cgroup, None, available_cpus(), None, ())
check = check_threads(live_pools(), facts.effective_cpus, None)
print(check.model_dump_json())
"""


def threads_check(root: Path, env: dict[str, str]) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", THREADS_SCRIPT, str(root)],
        capture_output=True, text=True, check=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", **env},
    )  # fmt: skip
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def test_blas_threads_beyond_the_cpu_quota_are_flagged(tmp_path: Path) -> None:
    root = v2_container(tmp_path, cpu_max="100000 100000")  # one CPU
    check = threads_check(root, {"OMP_NUM_THREADS": "8"})
    assert check["status"] == "warn", check
    evidence = str(check["evidence"])
    assert re.search(r"openmp \(libgomp[^)]*\) runs 8 threads", evidence), evidence
    assert "on 1 usable CPU(s): oversubscribed" in evidence
    assert "OMP_NUM_THREADS=1" in str(check["fix"])


def test_blas_threads_within_the_quota_are_fine(tmp_path: Path) -> None:
    root = v2_container(tmp_path, cpu_max="200000 100000")  # two CPUs
    check = threads_check(root, {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    assert check["status"] == "ok", check
    usable = min(2.0, len(os.sched_getaffinity(0)))
    assert check["facts"] == {"usable_cpus": usable, "max_threads": 1}
