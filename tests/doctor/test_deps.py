"""Dependency checks: the seal's packing environment against another, ranked as verify ranks
it, and loading the model here (or declining to, when the memory limit has no room)."""

from __future__ import annotations

from pathlib import Path

from modelseal import open_seal
from modelseal.cgroup import CgroupLimits
from modelseal.doctor.deps import deps_checks
from modelseal.doctor.load import check_load, load_here
from modelseal.doctor.report import Status
from modelseal.doctor.subject import SealFacts
from modelseal.environment.record import EnvironmentRecord
from tests.conftest import seal_of_a_vanished_module

MIB = 1 << 20


def by_id(seal: SealFacts, current: EnvironmentRecord, loaded: bool = True) -> dict[str, Status]:
    return {c.id: c.status for c in deps_checks(seal, current, model_loaded=loaded)}


def test_the_packing_environment_itself_is_ok(demo_seal_path: Path) -> None:
    seal = SealFacts(open_seal(demo_seal_path))
    assert by_id(seal, seal.environment) == {"deps.lock": Status.OK, "deps.environment": Status.OK}


def test_a_minor_numpy_change_fails_the_lock(demo_seal_path: Path) -> None:
    seal = SealFacts(open_seal(demo_seal_path))
    packages = {**seal.environment.packages, "numpy": "1.26.4"}
    current = seal.environment.model_copy(update={"packages": packages})
    (lock, _) = deps_checks(seal, current)
    assert lock.status is Status.FAIL
    assert lock.evidence.startswith(
        f"numpy {seal.environment.packages['numpy']} -> 1.26.4 (critical"
    )
    assert "requirements.lock" in (lock.fix or "")


def test_thread_pools_are_compared_only_with_the_model_loaded(demo_seal_path: Path) -> None:
    seal = SealFacts(open_seal(demo_seal_path))
    pools = [pool.model_copy(update={"num_threads": pool.num_threads + 3})
             for pool in seal.environment.threadpools]  # fmt: skip
    current = seal.environment.model_copy(update={"threadpools": pools})
    assert by_id(seal, current)["deps.environment"] is Status.WARN
    assert by_id(seal, current, loaded=False)["deps.environment"] is Status.OK
    (_, environment) = deps_checks(seal, current, model_loaded=False)
    assert "thread pools not compared" in environment.evidence


def test_without_a_seal_nothing_is_compared(demo_seal_path: Path) -> None:
    current = open_seal(demo_seal_path).environment()
    assert {c.status for c in deps_checks(None, current)} == {Status.SKIPPED}


def test_the_model_loads_here_and_its_memory_is_measured(demo_seal_path: Path) -> None:
    seal = SealFacts(open_seal(demo_seal_path))
    facts = load_here(seal, CgroupLimits(version=None))
    check = check_load(seal, facts)
    assert check.status is Status.OK, check.evidence
    assert "loaded with the sklearn runtime on the CPU" in check.evidence
    assert isinstance(check.facts["resident_bytes"], int) and check.facts["resident_bytes"] > 0


def test_no_second_copy_without_room_under_the_limit(demo_seal_path: Path) -> None:
    seal = SealFacts(open_seal(demo_seal_path))
    crowded = CgroupLimits(version=2, memory_limit=512 * MIB, memory_usage=500 * MIB)
    check = check_load(seal, load_here(seal, crowded))
    assert check.status is Status.SKIPPED
    assert "only 12 MiB left under the memory limit" in check.evidence


def test_a_model_that_cannot_load_here_fails(tmp_path: Path) -> None:
    seal = SealFacts(seal_of_a_vanished_module(tmp_path))
    check = check_load(seal, load_here(seal, CgroupLimits(version=None)))
    assert check.status is Status.FAIL
    assert "vanishing_models" in check.evidence
