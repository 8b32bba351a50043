"""Container checks judged on ``docker inspect`` / ``docker image inspect`` / ``docker stats``
output captured from a real Docker 20.10 engine (fixtures/docker, see its README), and the
skip when no engine answers. test_container_live.py runs the same checks against real
containers the test starts on its own engine."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from modelseal import open_seal
from modelseal.doctor.container import (
    DIGEST_LABEL,
    LOCK_LABEL,
    ContainerFacts,
    check_health,
    check_image_size,
    check_labels,
    check_memory_use,
    check_oom,
    check_resources,
    check_state,
    judge_container,
)
from modelseal.doctor.docker import (
    Answer,
    ContainerInspect,
    ImageInspect,
    parse_container_inspect,
    parse_docker_size,
    parse_image_inspect,
    parse_stats_line,
)
from modelseal.doctor.report import DoctorReport, Status
from modelseal.doctor.subject import SealFacts
from tests.cli_process import run_modelseal
from tests.doctor.seals import A100, packed_with_gpus

DOCKER = Path(__file__).parent / "fixtures" / "docker"
MIB = 1 << 20


def container(name: str) -> ContainerInspect:
    parsed = parse_container_inspect((DOCKER / f"inspect-{name}.json").read_text())
    assert isinstance(parsed, ContainerInspect), parsed
    return parsed


def image(labels: dict[str, str] | None = None) -> ImageInspect:
    document = json.loads((DOCKER / "image-inspect.json").read_text())
    if labels is not None:
        document[0]["Config"]["Labels"] = labels
    parsed = parse_image_inspect(json.dumps(document))
    assert isinstance(parsed, ImageInspect), parsed
    return parsed


def stats_line(name: str) -> str:
    lines = (DOCKER / "stats.jsonl").read_text().splitlines()
    return next(line for line in lines if json.loads(line)["Name"] == name)


@pytest.fixture
def demo_facts(demo_seal_path: Path) -> SealFacts:
    return SealFacts(open_seal(demo_seal_path))


@pytest.fixture(scope="module")
def inside_report(demo_seal_path: Path) -> str:
    """What `modelseal doctor --json` answers where the demo seal is served."""
    result = run_modelseal("doctor", str(demo_seal_path), "--json")
    assert result.returncode == 0, result.stderr
    return result.stdout


# --- parsing what the engine prints -----------------------------------------------------------


def test_inspect_of_a_running_container_with_limits() -> None:
    healthy = container("i11-healthy")
    assert healthy.name == "/i11-healthy"
    assert healthy.state.running and healthy.state.status == "running"
    assert healthy.host_config.memory == 256 * MIB  # --memory 256m
    assert healthy.host_config.shm_size == 16 * MIB  # --shm-size 16m
    assert healthy.host_config.cpus == 0.5  # --cpus 0.5
    assert not healthy.host_config.gpu_access
    assert healthy.state.health is not None and healthy.state.health.status == "healthy"
    assert healthy.image_id.startswith("sha256:")


def test_inspect_of_a_container_started_with_gpus() -> None:
    assert container("i11-gpu-created").host_config.gpu_access  # --gpus all


def test_image_inspect_and_stats() -> None:
    probe = image()
    assert probe.size == 241206455
    assert probe.repo_tags == ["i11-probe:1"]
    assert (probe.config.labels or {})["dev.modelseal.seal.name"] == "digits"
    stats = parse_stats_line(stats_line("i11-healthy"))
    assert not isinstance(stats, str)
    assert (stats.memory_usage, stats.memory_limit) == (parse_docker_size("9.922MiB"), 256 * MIB)


@pytest.mark.parametrize(
    ("text", "size"),
    [("9.922MiB", round(9.922 * MIB)), ("23.54GiB", round(23.54 * (1 << 30))), ("0B", 0),
     ("1.5kB", 1500), ("12 furlongs", None)],
)  # fmt: skip
def test_docker_sizes(text: str, size: int | None) -> None:
    assert parse_docker_size(text) == size


def test_unexpected_output_is_said_not_raised() -> None:
    assert "no JSON" in str(parse_container_inspect("Error: No such object: x"))
    assert "empty answer" in str(parse_container_inspect("[]"))


# --- verdicts -------------------------------------------------------------------------------


def test_a_running_healthy_container_is_ok() -> None:
    healthy = container("i11-healthy")
    assert check_state(healthy).status is Status.OK
    assert check_oom(healthy).status is Status.OK
    assert check_health(healthy).status is Status.OK


def test_an_oom_killed_container_that_kept_restarting() -> None:
    oom = container("i11-oom")
    state = check_state(oom)
    assert state.status is Status.FAIL
    assert "exited, restarted 2 time(s), last exit code 137" in state.evidence
    killed = check_oom(oom)
    assert killed.status is Status.FAIL
    assert "memory limit 64 MiB" in killed.evidence


def test_a_failing_health_check_shows_its_log() -> None:
    check = check_health(container("i11-unhealthy"))
    assert check.status is Status.FAIL
    assert "unhealthy, failing streak 11" in check.evidence
    assert "exit 1" in check.evidence


def test_small_shm_and_memory_limits_are_flagged(demo_facts: SealFacts) -> None:
    shm_only = check_resources(container("i11-healthy"), None, False)
    assert shm_only.status is Status.WARN  # --shm-size 16m
    assert "/dev/shm is 16 MiB: start with --shm-size=1g" in (shm_only.fix or "")
    both = check_resources(container("i11-healthy"), demo_facts.model_bytes, False)
    assert both.status is Status.WARN  # --memory 256m: tight for a runtime and the model
    assert "raise the memory limit" in (both.fix or "")
    assert "--shm-size=1g" in (both.fix or "")
    tight = check_resources(container("i11-oom"), demo_facts.model_bytes, False)
    assert tight.status is Status.FAIL  # --memory 64m: no process and model fit
    assert "--memory 64 MiB" in tight.evidence


def test_a_gpu_seal_in_a_container_without_gpus_fails() -> None:
    check = check_resources(container("i11-unhealthy"), 1 << 20, expects_gpu=True)
    assert check.status is Status.FAIL
    assert "--gpus all" in (check.fix or "")
    with_gpus = check_resources(container("i11-gpu-created"), 1 << 20, expects_gpu=True)
    assert "GPU access (--gpus)" in with_gpus.evidence
    assert "--gpus all" not in (with_gpus.fix or "")


def test_memory_in_use() -> None:
    in_use = check_memory_use(parse_stats_line(stats_line("i11-healthy")))
    assert in_use.status is Status.OK
    assert "of 256 MiB (4%)" in in_use.evidence
    stopped = check_memory_use(parse_stats_line(stats_line("i11-oom")))
    assert stopped.status is Status.SKIPPED


def test_labels_for_another_seal_fail(demo_facts: SealFacts) -> None:
    check = check_labels(image(), demo_facts, None)
    assert check.status is Status.FAIL
    assert f"the local seal is {demo_facts.seal.digest}" in check.evidence


def test_labels_of_the_seal_match(demo_facts: SealFacts) -> None:
    lock = " ".join(demo_facts.seal.lock_lines())
    labels = {DIGEST_LABEL: f"sha256:{demo_facts.seal.digest}", LOCK_LABEL: lock}
    assert check_labels(image(labels), demo_facts, None).status is Status.OK
    # The image installs modelseal's serving requirements beside the seal's lock.
    with_serving = {**labels, LOCK_LABEL: f"{lock} uvicorn==0.54.0"}
    assert check_labels(image(with_serving), demo_facts, None).status is Status.OK
    other_lock = {**labels, LOCK_LABEL: lock.replace("numpy==", "numpy==1.0.0.")}
    check = check_labels(image(other_lock), demo_facts, None)
    assert check.status is Status.FAIL
    assert "label lacks these pins of the seal's lock" in check.evidence
    assert "numpy==" in check.evidence


def test_an_unlabelled_image_warns(demo_facts: SealFacts) -> None:
    check = check_labels(image({}), demo_facts, None)
    assert check.status is Status.WARN
    assert "modelseal dockerfile" in (check.fix or "")


def test_image_size() -> None:
    check = check_image_size(image())
    assert check.status is Status.OK
    assert check.evidence == "i11-probe:1: 230 MiB"


# --- the doctor inside, merged -----------------------------------------------------------------


def facts_with_inside(answer: Answer | None, name: str = "i11-healthy") -> ContainerFacts:
    return ContainerFacts(
        name=name,
        engine_version="20.10.24+dfsg1",
        container=container(name),
        image=image(),
        stats=parse_stats_line(stats_line(name)),
        inside=answer,
    )


def test_the_inside_report_comes_back_with_where_it_ran(inside_report: str) -> None:
    checks = judge_container(facts_with_inside(Answer(0, inside_report, "")), None)
    by_id = {check.id: check for check in checks}
    assert by_id["container.inside"].status is Status.OK
    inside_ids = {c.id for c in DoctorReport.model_validate_json(inside_report).checks}
    assert inside_ids <= set(by_id)
    assert {c.where for c in checks if c.family == "container"} == {"docker engine"}
    assert {c.where for c in checks if c.family != "container"} == {"container i11-healthy"}
    # no local seal: the labels are judged against the seal served inside
    assert by_id["container.labels"].status is Status.FAIL
    assert "the container serves seal" in by_id["container.labels"].evidence


def test_a_container_without_modelseal_inside_warns() -> None:
    missing = Answer(126, "", 'exec: "modelseal": executable file not found in $PATH: unknown')
    checks = judge_container(facts_with_inside(missing), None)
    inside = next(check for check in checks if check.id == "container.inside")
    assert inside.status is Status.WARN
    assert "executable file not found" in inside.evidence


def test_an_unreadable_inside_answer_fails() -> None:
    checks = judge_container(facts_with_inside(Answer(2, "", "error: boom")), None)
    inside = next(check for check in checks if check.id == "container.inside")
    assert inside.status is Status.FAIL
    assert "error: boom" in inside.evidence


def test_a_stopped_container_is_not_asked() -> None:
    checks = judge_container(facts_with_inside(None, "i11-oom"), None)
    inside = next(check for check in checks if check.id == "container.inside")
    assert inside.status is Status.SKIPPED


def test_a_gpu_seal_judges_the_containers_gpu_access(demo_seal_path: Path, tmp_path: Path) -> None:
    gpu_sklearn = SealFacts(open_seal(packed_with_gpus(demo_seal_path, [A100], tmp_path / "s")))
    assert not gpu_sklearn.expects_gpu  # sklearn runs on the CPU: no GPU needed
    checks = judge_container(facts_with_inside(None), gpu_sklearn)
    resources = next(check for check in checks if check.id == "container.resources")
    assert "--gpus all" not in (resources.fix or "")


# --- no engine ---------------------------------------------------------------------------------


def container_report(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    result = run_modelseal("doctor", "--container", "model-server", "--json", extra_env=env)
    return result.returncode, json.loads(result.stdout)


def test_no_engine_reachable_is_skipped_and_said() -> None:
    code, report = container_report({"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert code == 0
    (check,) = report["checks"]
    assert (check["id"], check["status"]) == ("container.engine", "skipped")
    assert "no Docker engine answers" in check["evidence"]
    assert report["container"] == "model-server"


def test_no_docker_cli_is_skipped_and_said(tmp_path: Path) -> None:
    code, report = container_report({"PATH": str(tmp_path)})
    assert code == 0
    (check,) = report["checks"]
    assert check["status"] == "skipped"
    assert "the docker CLI is not on PATH" in check["evidence"]
    assert os.environ.get("PATH")  # the test's own PATH is untouched
