"""What the Docker engine knows about a container, read through the ``docker`` CLI.

The CLI (not the engine's socket API) is used on purpose: it honours ``DOCKER_HOST``,
contexts and TLS settings exactly as the on-call engineer's own ``docker`` commands do.
The JSON of ``docker inspect`` is parsed into the few fields the checks judge.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

INSPECT_TIMEOUT_S = 30
EXEC_TIMEOUT_S = 600
DOCTOR_INSIDE = ("modelseal", "doctor", "--json")
"""The command run in the container; it must be on the container's PATH."""
# `docker exec` answers 126 (cannot run) or 127 (not found) when the command is missing.
NOT_RUNNABLE = frozenset({126, 127})
_Model = TypeVar("_Model", bound=BaseModel)


class _Docker(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class HealthLogEntry(_Docker):
    start: str = Field(alias="Start")
    end: str = Field(default="", alias="End")
    exit_code: int = Field(alias="ExitCode")
    output: str = Field(default="", alias="Output")


class Health(_Docker):
    status: str = Field(alias="Status")
    failing_streak: int = Field(default=0, alias="FailingStreak")
    log: list[HealthLogEntry] = Field(default_factory=list, alias="Log")


class ContainerState(_Docker):
    status: str = Field(alias="Status")
    running: bool = Field(alias="Running")
    restarting: bool = Field(default=False, alias="Restarting")
    oom_killed: bool = Field(default=False, alias="OOMKilled")
    exit_code: int = Field(default=0, alias="ExitCode")
    error: str = Field(default="", alias="Error")
    started_at: str = Field(default="", alias="StartedAt")
    finished_at: str = Field(default="", alias="FinishedAt")
    health: Health | None = Field(default=None, alias="Health")


class DeviceRequest(_Docker):
    driver: str = Field(default="", alias="Driver")
    count: int = Field(default=0, alias="Count")
    device_ids: list[str] | None = Field(default=None, alias="DeviceIDs")
    capabilities: list[list[str]] | None = Field(default=None, alias="Capabilities")

    @property
    def is_gpu(self) -> bool:
        return any("gpu" in group for group in self.capabilities or [])


class HostConfig(_Docker):
    memory: int = Field(default=0, alias="Memory")
    shm_size: int | None = Field(default=None, alias="ShmSize")
    nano_cpus: int = Field(default=0, alias="NanoCpus")
    cpu_quota: int = Field(default=0, alias="CpuQuota")
    cpu_period: int = Field(default=0, alias="CpuPeriod")
    device_requests: list[DeviceRequest] | None = Field(default=None, alias="DeviceRequests")
    runtime: str = Field(default="", alias="Runtime")

    @property
    def cpus(self) -> float | None:
        if self.nano_cpus:
            return self.nano_cpus / 1e9
        if self.cpu_quota > 0:
            return self.cpu_quota / (self.cpu_period or 100_000)
        return None

    @property
    def gpu_access(self) -> bool:
        """Started with ``--gpus`` (a GPU device request) or the legacy nvidia runtime."""
        requests = self.device_requests or []
        return self.runtime == "nvidia" or any(request.is_gpu for request in requests)


class ContainerConfig(_Docker):
    image: str = Field(default="", alias="Image")
    labels: dict[str, str] | None = Field(default=None, alias="Labels")
    env: list[str] | None = Field(default=None, alias="Env")


class ContainerInspect(_Docker):
    """One element of ``docker inspect CONTAINER``."""

    id: str = Field(alias="Id")
    name: str = Field(alias="Name")
    image_id: str = Field(alias="Image")
    state: ContainerState = Field(alias="State")
    restart_count: int = Field(default=0, alias="RestartCount")
    host_config: HostConfig = Field(alias="HostConfig")
    config: ContainerConfig = Field(alias="Config")


class ImageConfig(_Docker):
    labels: dict[str, str] | None = Field(default=None, alias="Labels")


class ImageInspect(_Docker):
    """One element of ``docker image inspect IMAGE``."""

    id: str = Field(alias="Id")
    repo_tags: list[str] | None = Field(default=None, alias="RepoTags")
    size: int = Field(alias="Size")
    config: ImageConfig = Field(alias="Config")


@dataclass(frozen=True)
class ContainerStats:
    """One line of ``docker stats --no-stream --format '{{json .}}'``."""

    memory_usage: int | None
    memory_limit: int | None
    cpu_percent: str


@dataclass(frozen=True)
class Answer:
    """What one docker CLI command answered."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def message(self) -> str:
        return (self.stderr.strip() or self.stdout.strip() or f"exit {self.returncode}")[:500]


class DockerUnavailableError(Exception):
    """No docker CLI, or no engine answering it."""


class DockerCli:
    """Runs ``docker`` commands; ``executable`` defaults to the one on PATH."""

    def __init__(self, executable: str | None = None) -> None:
        found = executable or shutil.which("docker")
        if found is None:
            raise DockerUnavailableError("the docker CLI is not on PATH")
        self.executable = found

    def engine_version(self) -> str:
        answer = self.run("version", "--format", "{{.Server.Version}}")
        if answer.returncode != 0 or not answer.stdout.strip():
            raise DockerUnavailableError(f"no Docker engine answers: {answer.message}")
        return answer.stdout.strip()

    def inspect_container(self, name: str) -> ContainerInspect | str:
        """The container, or why it cannot be inspected (e.g. no such container)."""
        answer = self.run("inspect", "--type", "container", name)
        if answer.returncode != 0:
            return answer.message
        return parse_container_inspect(answer.stdout)

    def inspect_image(self, image_id: str) -> ImageInspect | str:
        answer = self.run("image", "inspect", image_id)
        if answer.returncode != 0:
            return answer.message
        return parse_image_inspect(answer.stdout)

    def stats(self, name: str) -> ContainerStats | str:
        answer = self.run("stats", "--no-stream", "--format", "{{json .}}", name)
        if answer.returncode != 0:
            return answer.message
        return parse_stats_line(answer.stdout)

    def exec_doctor(self, name: str, extra: tuple[str, ...] = ()) -> Answer:
        return self.run("exec", name, *DOCTOR_INSIDE, *extra, timeout=EXEC_TIMEOUT_S)

    def run(self, *args: str, timeout: float = INSPECT_TIMEOUT_S) -> Answer:
        try:
            result = subprocess.run(
                [self.executable, *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Answer(124, "", f"docker {args[0]} did not answer within {timeout:g} s")
        except OSError as exc:
            return Answer(126, "", f"docker could not run: {exc}")
        return Answer(result.returncode, result.stdout, result.stderr)


def parse_container_inspect(text: str) -> ContainerInspect | str:
    """``docker inspect`` output (a JSON list of one object) -> the container."""
    return _first(text, ContainerInspect)


def parse_image_inspect(text: str) -> ImageInspect | str:
    return _first(text, ImageInspect)


def parse_stats_line(text: str) -> ContainerStats | str:
    try:
        document = json.loads(text.strip().splitlines()[0])
    except (ValueError, IndexError):
        return f"docker stats printed no JSON: {text[:200]!r}"
    usage, _, limit = str(document.get("MemUsage", "")).partition(" / ")
    return ContainerStats(
        memory_usage=parse_docker_size(usage),
        memory_limit=parse_docker_size(limit),
        cpu_percent=str(document.get("CPUPerc", "")),
    )


_UNITS = {"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}
_UNITS |= {"kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}


def parse_docker_size(text: str) -> int | None:
    """Sizes as ``docker stats`` prints them (``9.922MiB``, ``23.54GiB``, ``0B``)."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]+)\s*", text)
    if match is None or match.group(2).lower() not in _UNITS:
        return None
    return round(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _first(text: str, model: type[_Model]) -> _Model | str:
    try:
        document = json.loads(text)
    except ValueError as exc:
        return f"docker printed no JSON ({exc})"
    if not isinstance(document, list) or not document:
        return "docker printed an empty answer"
    try:
        return model.model_validate(document[0])
    except ValidationError as exc:
        return f"unexpected docker inspect output: {exc}"
