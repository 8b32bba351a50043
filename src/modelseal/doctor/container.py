"""Container checks (``--container NAME|ID``): the doctor run inside the container, plus what
only the engine knows: state and restarts, OOM kills, the health-check log, the resources it
was given, memory in use, and the image's labels and size against the seal.

Image labels written by ``modelseal dockerfile``: ``dev.modelseal.seal.digest``,
``dev.modelseal.seal.name``, ``dev.modelseal.seal.version`` and ``dev.modelseal.lock`` (the
serving lock's pins), beside the ``org.opencontainers.image.*`` ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from modelseal.doctor.docker import (
    NOT_RUNNABLE,
    Answer,
    ContainerInspect,
    ContainerStats,
    DockerCli,
    DockerUnavailableError,
    ImageInspect,
)
from modelseal.doctor.limits import (
    NEAR_LIMIT,
    SMALL_SHM_BYTES,
    judge_memory_room,
    memory_fix,
    model_needs_text,
)
from modelseal.doctor.report import Check, DoctorReport, Facts, Status, new_check, worst_status
from modelseal.doctor.subject import GIB, SealFacts, size_text
from modelseal.environment.lock import pins_in_text
from modelseal.serving.device import GPU_CHECKLIST

DIGEST_LABEL = "dev.modelseal.seal.digest"
NAME_LABEL = "dev.modelseal.seal.name"
VERSION_LABEL = "dev.modelseal.seal.version"
LOCK_LABEL = "dev.modelseal.lock"
LARGE_IMAGE_BYTES = 8 * GIB
"""Above this an image takes minutes to pull on every new node."""
DOCKER_DEFAULT_SHM = 64 << 20
ENGINE = "docker engine"
"""``Check.where`` of what the engine reports; the inside doctor's checks say the container."""


@dataclass(frozen=True)
class ContainerFacts:
    """What the engine and the doctor inside the container said."""

    name: str
    engine_version: str
    container: ContainerInspect
    image: ImageInspect | str
    stats: ContainerStats | str
    inside: Answer | None
    """The answer of the doctor run inside; None when the container does not run."""


def container_checks(
    name: str, seal: SealFacts | None, url: str | None, docker: DockerCli | None = None
) -> list[Check]:
    """Every container check, the inside doctor's checks included (``where`` says which)."""
    try:
        cli = docker or DockerCli()
        version = cli.engine_version()
    except DockerUnavailableError as exc:
        return [
            new_check(
                "container", "engine", "Docker engine", Status.SKIPPED,
                f"{exc}: nothing to ask about container {name!r}",
                "run the doctor where `docker ps` lists the container (DOCKER_HOST selects the "
                "engine), or run `modelseal doctor` inside the container itself",
            )
        ]  # fmt: skip
    inspected = cli.inspect_container(name)
    if isinstance(inspected, str):
        return [
            _engine_ok(version),
            new_check(
                "container", "state", "container state", Status.FAIL,
                f"docker inspect {name}: {inspected}",
                "`docker ps -a` lists the containers of this engine; a container that was "
                "removed after it crashed leaves only its logs in the orchestrator",
            ),
        ]  # fmt: skip
    facts = ContainerFacts(
        name=name,
        engine_version=version,
        container=inspected,
        image=cli.inspect_image(inspected.image_id),
        stats=cli.stats(name),
        inside=cli.exec_doctor(name, ("--url", url) if url else ())
        if inspected.state.running
        else None,
    )
    return judge_container(facts, seal)


def judge_container(facts: ContainerFacts, seal: SealFacts | None) -> list[Check]:
    inside_check, inside = judge_inside(facts)
    model_bytes = seal.model_bytes if seal is not None else _inside_model_bytes(inside)
    expects_gpu = seal.expects_gpu if seal is not None else None
    checks = [
        _engine_ok(facts.engine_version),
        check_state(facts.container),
        check_oom(facts.container),
        check_health(facts.container),
        check_resources(facts.container, model_bytes, expects_gpu),
        check_memory_use(facts.stats),
        check_labels(facts.image, seal, inside),
        check_image_size(facts.image),
        inside_check,
    ]
    located = [check.model_copy(update={"where": ENGINE}) for check in checks]
    inside_checks = inside.checks if inside is not None else []
    where = f"container {facts.name}"
    return located + [check.model_copy(update={"where": where}) for check in inside_checks]


def _engine_ok(version: str) -> Check:
    return new_check("container", "engine", "Docker engine", Status.OK, f"Docker engine {version}")


# --- state, OOM and health -----------------------------------------------------------------


def check_state(container: ContainerInspect) -> Check:
    state = container.state
    title = "container state"
    evidence = f"{state.status}, restarted {container.restart_count} time(s)"
    facts: Facts = {
        "status": state.status,
        "restart_count": container.restart_count,
        "exit_code": state.exit_code,
    }
    if not state.running or state.restarting:
        evidence += f", last exit code {state.exit_code}"
        if state.error:
            evidence += f" ({state.error})"
        if state.finished_at and not state.finished_at.startswith("0001"):
            evidence += f" at {state.finished_at}"
        fix = (
            "`docker logs` shows why it stopped; exit code 137 is a SIGKILL (the OOM killer or "
            "a stop timeout), 143 a SIGTERM"
        )
        return new_check("container", "state", title, Status.FAIL, evidence, fix, facts)
    if container.restart_count:
        fix = (
            "it crashed and was restarted: `docker logs --since` around the restart and "
            "container.oom say why"
        )
        return new_check("container", "state", title, Status.WARN, evidence, fix, facts)
    return new_check("container", "state", title, Status.OK, evidence, None, facts)


def check_oom(container: ContainerInspect) -> Check:
    limit = container.host_config.memory
    limit_text = f"memory limit {size_text(limit)}" if limit else "no memory limit"
    if container.state.oom_killed:
        return new_check(
            "container", "oom", "OOMKilled", Status.FAIL,
            f"the engine reports OOMKilled: the last run was killed for memory ({limit_text})",
            "raise --memory above the model's loading peak (container.resources) or lower "
            "--max-batch-size",
            {"oom_killed": True},
        )  # fmt: skip
    return new_check(
        "container", "oom", "OOMKilled", Status.OK,
        f"not killed for memory ({limit_text})", None, {"oom_killed": False},
    )  # fmt: skip


def check_health(container: ContainerInspect) -> Check:
    title = "health check"
    health = container.state.health
    if health is None:
        return new_check(
            "container", "health", title, Status.WARN,
            "the image defines no HEALTHCHECK, so the engine cannot tell a ready server from a "
            "wedged one",
            "build the image with `modelseal dockerfile` (its HEALTHCHECK asks /health/ready), "
            "or add one to the run: --health-cmd",
        )  # fmt: skip
    last = health.log[-1] if health.log else None
    evidence = f"{health.status}, failing streak {health.failing_streak}"
    if last is not None:
        output = _last_line(last.output) or "(no output)"
        evidence += f"; last probe at {last.start}: exit {last.exit_code}: {output}"
    facts: Facts = {"health": health.status, "failing_streak": health.failing_streak}
    if health.status == "healthy":
        return new_check("container", "health", title, Status.OK, evidence, None, facts)
    if health.status == "starting":
        fix = "still in its start period: wait, then run the doctor again"
        return new_check("container", "health", title, Status.WARN, evidence, fix, facts)
    fix = (
        "the health check fails: its output above (and server.ready from the inside doctor) "
        "says why; `docker inspect --format '{{json .State.Health}}'` shows every probe"
    )
    return new_check("container", "health", title, Status.FAIL, evidence, fix, facts)


def _last_line(output: str) -> str:
    """The line of a probe's output that says what went wrong (a traceback's last line)."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# --- resources -----------------------------------------------------------------------------


def check_resources(
    container: ContainerInspect, model_bytes: int | None, expects_gpu: bool | None
) -> Check:
    host = container.host_config
    title = "container resources"
    shm = host.shm_size
    parts = [
        f"--memory {size_text(host.memory)}" if host.memory else "no --memory limit",
        f"--shm-size {size_text(shm)}" if shm else "default /dev/shm",
        f"--cpus {host.cpus:g}" if host.cpus is not None else "no CPU limit",
        "GPU access (--gpus)" if host.gpu_access else "no GPU access",
    ]
    if model_bytes is not None:
        parts.append(model_needs_text(model_bytes))
    evidence = "; ".join(parts)
    facts: Facts = {
        "memory_limit_bytes": host.memory or None,
        "shm_bytes": shm,
        "cpus": host.cpus,
        "gpu_access": host.gpu_access,
    }
    statuses: list[Status] = []
    fixes: list[str] = []
    if expects_gpu and not host.gpu_access:
        statuses.append(Status.FAIL)
        fixes.append(
            "the seal was validated on a GPU but the container was started without one: the "
            f"model silently runs on the CPU. Start it with --gpus all ({GPU_CHECKLIST})"
        )
    if host.memory and model_bytes is not None:
        room = judge_memory_room(host.memory, model_bytes)
        if room is not Status.OK:
            statuses.append(room)
            fixes.append(memory_fix(room, model_bytes))
    if (shm or DOCKER_DEFAULT_SHM) < SMALL_SHM_BYTES:
        statuses.append(Status.WARN)
        fixes.append(
            f"/dev/shm is {size_text(shm or DOCKER_DEFAULT_SHM)}: start with --shm-size=1g so "
            "DataLoader workers and shared-memory tensors have room"
        )
    status = worst_status(statuses)
    return new_check(
        "container", "resources", title, status, evidence, "; ".join(fixes) or None, facts
    )


def check_memory_use(stats: ContainerStats | str) -> Check:
    title = "memory in use"
    if isinstance(stats, str):
        return new_check("container", "memory", title, Status.SKIPPED, f"docker stats: {stats}")
    usage, limit = stats.memory_usage, stats.memory_limit
    if not usage or not limit:
        return new_check(
            "container", "memory", title, Status.SKIPPED,
            "docker stats reports no memory use (the container is not running)",
        )  # fmt: skip
    share = usage / limit
    evidence = f"{size_text(usage)} of {size_text(limit)} ({share:.0%}), CPU {stats.cpu_percent}"
    facts: Facts = {"memory_usage_bytes": usage, "memory_limit_bytes": limit}
    if share >= NEAR_LIMIT:
        fix = "the next large batch can get the container OOM-killed: raise --memory"
        return new_check("container", "memory", title, Status.WARN, evidence, fix, facts)
    return new_check("container", "memory", title, Status.OK, evidence, None, facts)


# --- image ---------------------------------------------------------------------------------


def check_labels(
    image: ImageInspect | str, seal: SealFacts | None, inside: DoctorReport | None
) -> Check:
    title = "image labels"
    if isinstance(image, str):
        return new_check(
            "container", "labels", title, Status.SKIPPED, f"docker image inspect: {image}"
        )
    labels = image.config.labels or {}
    labelled_digest = labels.get(DIGEST_LABEL)
    digest = labelled_digest.removeprefix("sha256:") if labelled_digest else None
    facts: Facts = {"label_digest": digest, "label_lock": labels.get(LOCK_LABEL)}
    if digest is None:
        return new_check(
            "container", "labels", title, Status.WARN,
            f"the image carries no {DIGEST_LABEL} label: nothing says which seal it was built "
            "for",
            "build the image with `modelseal dockerfile`, which labels it with the seal's "
            "digest and lock",
            facts,
        )  # fmt: skip
    named = f"{labels.get(NAME_LABEL, '?')} {labels.get(VERSION_LABEL, '?')} ({digest})"
    problems = _label_problems(digest, labels.get(LOCK_LABEL), seal, inside)
    evidence = f"image labelled for seal {named}"
    if problems:
        fix = (
            "the image was built for another seal or lock than the one checked: rebuild it from "
            "this seal (`modelseal dockerfile SEAL`), or deploy the image built for it"
        )
        return new_check(
            "container",
            "labels",
            title,
            Status.FAIL,
            f"{evidence}; {'; '.join(problems)}",
            fix,
            facts,
        )
    compared = [
        text
        for text, present in (
            ("the local seal", seal is not None),
            ("the seal served inside", inside is not None and inside.seal is not None),
        )
        if present
    ]
    if not compared:
        return new_check(
            "container", "labels", title, Status.SKIPPED,
            f"{evidence}; no seal here or inside to compare it with", None, facts,
        )  # fmt: skip
    evidence += f"; matches {' and '.join(compared)}"
    return new_check("container", "labels", title, Status.OK, evidence, None, facts)


def _label_problems(
    digest: str, lock_label: str | None, seal: SealFacts | None, inside: DoctorReport | None
) -> list[str]:
    problems = []
    if seal is not None and digest != seal.seal.digest:
        problems.append(f"the local seal is {seal.seal.digest}")
    if inside is not None and inside.seal is not None and digest != inside.seal.digest:
        problems.append(f"the container serves seal {inside.seal.digest} ({inside.seal.source})")
    if seal is not None and lock_label is not None:
        # The image installs the seal's lock plus modelseal's own serving requirements.
        labelled = pins_in_text(lock_label).items()
        sealed = pins_in_text(" ".join(seal.seal.lock_lines())).items()
        missing = sorted(f"{name}=={version}" for name, version in sealed - labelled)
        if missing:
            problems.append(
                f"the image's {LOCK_LABEL} label lacks these pins of the seal's lock: {missing[:6]}"
            )
    return problems


def check_image_size(image: ImageInspect | str) -> Check:
    title = "image size"
    if isinstance(image, str):
        return new_check(
            "container", "image", title, Status.SKIPPED, f"docker image inspect: {image}"
        )
    tags = ", ".join(image.repo_tags or []) or image.id[:19]
    evidence = f"{tags}: {size_text(image.size)}"
    facts: Facts = {"image_bytes": image.size}
    if image.size > LARGE_IMAGE_BYTES:
        fix = (
            "every new node pulls this for minutes: build with `modelseal dockerfile` (slim "
            "runtime base, only the serving lock, no build tools) and keep weights in a volume "
            "or object storage when they are large"
        )
        return new_check("container", "image", title, Status.WARN, evidence, fix, facts)
    return new_check("container", "image", title, Status.OK, evidence, None, facts)


# --- the doctor inside ---------------------------------------------------------------------


def judge_inside(facts: ContainerFacts) -> tuple[Check, DoctorReport | None]:
    """The inside doctor's report, and a check saying whether it could be run and read."""
    title = "doctor inside"
    answer = facts.inside
    if answer is None:
        return (
            new_check(
                "container", "inside", title, Status.SKIPPED,
                f"the container is {facts.container.state.status}: nothing runs inside to ask",
            ),
            None,
        )  # fmt: skip
    if answer.returncode in NOT_RUNNABLE:
        return (
            new_check(
                "container", "inside", title, Status.WARN,
                f"docker exec {facts.name} modelseal doctor: {answer.message}",
                "install modelseal in the image (images from `modelseal dockerfile` have it) "
                "to see the checks from inside: GPU, dependencies, limits, threads",
            ),
            None,
        )  # fmt: skip
    try:
        report = DoctorReport.model_validate_json(answer.stdout)
    except ValidationError as exc:
        first = str(exc).splitlines()[0]
        return (
            new_check(
                "container", "inside", title, Status.FAIL,
                f"the doctor inside answered exit {answer.returncode} without a report it can "
                f"read ({first}); stderr: {answer.stderr.strip()[:300]}",
                "run `docker exec CONTAINER modelseal doctor` by hand: the modelseal inside "
                "may be too old or broken",
            ),
            None,
        )  # fmt: skip
    counts = ", ".join(f"{n} {status.value}" for status, n in report.counts.items() if n)
    seal_text = (
        f"judged against seal {report.seal.name} {report.seal.version} ({report.seal.source})"
        if report.seal is not None
        else "no seal found inside (set MODELSEAL_SOURCE or MODEL_SOURCE in the container)"
    )
    evidence = f"modelseal {report.modelseal_version} inside: {counts}; {seal_text}"
    status = Status.OK if report.seal is not None else Status.WARN
    fix = None if report.seal is not None else "point MODELSEAL_SOURCE at the seal inside"
    return new_check("container", "inside", title, status, evidence, fix), report


def _inside_model_bytes(inside: DoctorReport | None) -> int | None:
    if inside is None:
        return None
    for check in inside.checks:
        value = check.facts.get("model_bytes")
        if isinstance(value, int):
            return value
    return None
