"""``modelseal doctor SEAL --container NAME`` against real containers of the demo serving image
(the ship tests' session image) on the test's own Docker engine, the doctor run as a
subprocess with that engine's DOCKER_HOST.

Two containers run as in production (``--read-only --tmpfs /tmp``, ``--network host`` bound
to 127.0.0.1): one started with the room the doctor asks for, one with a 1 MiB ``/dev/shm``
and a memory limit under the doctor's estimate of the model's loading peak, yet large enough
(measured, with a wide margin) for the server and the doctor run inside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.utils import canonicalize_name

from modelseal import open_seal
from tests.cli_process import run_modelseal
from tests.deploy.images import BuiltImage, Container, run_container, wait_for_health
from tests.docker_engine import DockerEngine

pytestmark = pytest.mark.slow
MIB = 1 << 20
ROOMY = "doctor-roomy"
CRAMPED = "doctor-cramped"
ROOMY_SHM, ROOMY_MEMORY = 1024 * MIB, 2048 * MIB
CRAMPED_SHM = 1 * MIB
CRAMPED_MEMORY = 250 * MIB
"""Under the doctor's estimate of the demo model's loading peak (256 MiB plus twice the model),
yet 100 MiB above what the server and the doctor inside used together at their peak (measured
on cgroup v1: the server ~120 MiB, 151 MiB while the doctor ran inside without loading a second
copy of the model; 227 MiB in the roomy container, where it does load one)."""
LIMITS = {
    ROOMY: ("--shm-size", str(ROOMY_SHM), "--memory", str(ROOMY_MEMORY)),
    CRAMPED: ("--shm-size", str(CRAMPED_SHM), "--memory", str(CRAMPED_MEMORY)),
}
FLAGGED = ("warn", "fail")


@dataclass(frozen=True)
class Diagnosis:
    """What ``modelseal doctor --container`` answered about one container."""

    container: Container
    exit_code: int
    report: dict[str, Any]
    stderr: str

    @property
    def checks(self) -> dict[str, dict[str, Any]]:
        return {check["id"]: check for check in self.report["checks"]}

    def check(self, check_id: str) -> dict[str, Any]:
        assert check_id in self.checks, f"no {check_id} in {sorted(self.checks)}"
        return self.checks[check_id]

    def explain(self) -> str:
        return json.dumps(self.report, indent=1)[-6000:] + self.stderr[-2000:]


@pytest.fixture(scope="module")
def diagnoses(
    docker_engine: DockerEngine, demo_image: BuiltImage, demo_seal_path: Path
) -> Iterator[dict[str, Diagnosis]]:
    """Both containers started, healthy and ready, then diagnosed from outside; removed after."""
    try:
        containers = {
            name: run_container(docker_engine, demo_image.tag, name, *options)
            for name, options in LIMITS.items()
        }
        for container in containers.values():
            wait_for_health(container)
            ready = httpx.get(f"{container.url}/health/ready", timeout=30)
            assert ready.status_code == 200, ready.text
        # The roomy one is also asked through --url, which the doctor inside checks.
        yield {
            name: diagnose(
                docker_engine, container, demo_seal_path,
                *(("--url", container.url) if name == ROOMY else ()),
            )
            for name, container in containers.items()
        }  # fmt: skip
    finally:
        for name in LIMITS:
            docker_engine.docker("rm", "-f", name, check=False)


def diagnose(engine: DockerEngine, container: Container, seal: Path, *extra: str) -> Diagnosis:
    result = run_modelseal(
        "doctor", str(seal), "--container", container.name, "--json", *extra,
        extra_env={"DOCKER_HOST": engine.host}, timeout=900,
    )  # fmt: skip
    assert result.stdout.strip(), f"exit {result.returncode}, no report:\n{result.stderr}"
    return Diagnosis(container, result.returncode, json.loads(result.stdout), result.stderr)


# --- the doctor inside ---------------------------------------------------------------------


@pytest.mark.parametrize("name", [ROOMY, CRAMPED])
def test_the_inside_checks_come_back_from_inside_the_container(
    diagnoses: dict[str, Diagnosis], name: str, demo_seal_path: Path
) -> None:
    diagnosis = diagnoses[name]
    assert diagnosis.report["container"] == name
    inside = diagnosis.check("container.inside")
    assert inside["status"] == "ok", diagnosis.explain()
    seal = open_seal(demo_seal_path)
    assert f"judged against seal {seal.name} {seal.version}" in inside["evidence"]
    engine_side = {c["where"] for c in diagnosis.report["checks"] if c["family"] == "container"}
    assert engine_side == {"docker engine"}
    inside_families = {
        c["family"] for c in diagnosis.report["checks"] if c["where"] == f"container {name}"
    }
    assert {"gpu", "deps", "limits", "threads"} <= inside_families, diagnosis.explain()
    # The limits seen inside are the container's own, not this test's.
    memory, shm = diagnosis.check("limits.memory"), diagnosis.check("limits.shm")
    assert memory["facts"]["memory_limit_bytes"] == int(LIMITS[name][3])
    assert shm["facts"]["shm_bytes"] == int(LIMITS[name][1])
    # The model is loaded a second time inside only where that cannot starve the server.
    load = diagnosis.check("deps.load")
    if name == ROOMY:
        assert load["status"] == "ok", diagnosis.explain()
    else:
        assert load["status"] == "skipped", diagnosis.explain()
        assert "could get the server OOM-killed" in load["evidence"]


def test_the_image_labels_match_the_seal(
    diagnoses: dict[str, Diagnosis], docker_engine: DockerEngine, demo_seal_path: Path
) -> None:
    diagnosis = diagnoses[ROOMY]
    labels = diagnosis.check("container.labels")
    assert labels["status"] == "ok", diagnosis.explain()
    assert "matches the local seal and the seal served inside" in labels["evidence"]
    seal = open_seal(demo_seal_path)
    assert labels["facts"]["label_digest"] == seal.digest
    image_labels = json.loads(
        docker_engine.docker(
            "inspect", "-f", "{{json .Config.Labels}}", diagnosis.container.name
        ).stdout
    )
    assert labels["facts"]["label_lock"] == image_labels["dev.modelseal.lock"]
    assert pins(seal.lock_lines()) <= pins(image_labels["dev.modelseal.lock"].split())


def pins(lines: list[str]) -> set[str]:
    found = set()
    for line in lines:
        name, separator, version = line.strip().rstrip(",;").partition("==")
        if separator:
            found.add(f"{canonicalize_name(name)}=={version}")
    return found


def test_the_server_checks_run_inside_against_the_url_the_container_answers_on(
    diagnoses: dict[str, Diagnosis],
) -> None:
    diagnosis = diagnoses[ROOMY]
    for check_id in ("server.live", "server.ready", "server.digest", "server.inference"):
        check = diagnosis.check(check_id)
        assert check["status"] == "ok", diagnosis.explain()
        assert check["where"] == f"container {ROOMY}"
    assert "server.live" not in diagnoses[CRAMPED].checks


# --- limits --------------------------------------------------------------------------------


def test_a_container_with_room_is_not_flagged(diagnoses: dict[str, Diagnosis]) -> None:
    diagnosis = diagnoses[ROOMY]
    for check_id in ("container.resources", "container.memory", "limits.memory", "limits.shm"):
        assert diagnosis.check(check_id)["status"] == "ok", diagnosis.explain()
    assert "--shm-size 1 GiB" in diagnosis.check("container.resources")["evidence"]
    assert diagnosis.exit_code == 0, diagnosis.explain()


def test_small_shm_and_memory_limits_are_flagged(diagnoses: dict[str, Diagnosis]) -> None:
    diagnosis = diagnoses[CRAMPED]
    resources = diagnosis.check("container.resources")
    assert resources["status"] in FLAGGED, diagnosis.explain()
    assert "--memory 250 MiB; --shm-size 1 MiB" in resources["evidence"]
    assert "raise the memory limit" in resources["fix"]
    assert "--shm-size=1g" in resources["fix"]
    inside_shm = diagnosis.check("limits.shm")
    assert inside_shm["status"] in FLAGGED
    assert "/dev/shm is 1 MiB" in inside_shm["evidence"]
    inside_memory = diagnosis.check("limits.memory")
    assert inside_memory["status"] in FLAGGED, diagnosis.explain()
    assert "raise the memory limit" in inside_memory["fix"]
    # The limits were flagged before anything broke: the server stayed up and healthy.
    assert diagnosis.check("container.oom")["status"] == "ok"
    assert diagnosis.check("container.health")["status"] == "ok"
