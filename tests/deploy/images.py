"""Build serving images and run their containers in the test engine, stopped by the tests.

Wheels come from the host (same cp311 ABI as the debootstrap base), cached under
.cache/wheelhouse per set of requirement files, so builds run with ``--network none``.
Containers run with ``--network host`` bound to 127.0.0.1, never on the default bridge.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from modelseal.deploy.context import BuildContext
from modelseal.deploy.image import ImagePlan
from modelseal.golden.compare import OutputComparison, compare_output
from modelseal.golden.store import load_golden
from modelseal.oip import datatype_of
from modelseal.seal.artifact import open_seal
from modelseal.verify import seal_policies
from tests.docker_engine import DockerEngine
from tests.serving.server import free_port

REPO = Path(__file__).resolve().parents[2]
WHEEL_CACHE = REPO / ".cache" / "wheelhouse"
HEALTH_TIMEOUT_SECONDS = 240.0
PIP_TIMEOUT_SECONDS = 900


def cached_wheels(*requirement_files: Path) -> Path:
    """The host's wheels for these requirement files, in the shared cache (made once)."""
    pins = sorted(
        line.strip()
        for path in requirement_files
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    key = hashlib.sha256("\n".join(pins).encode()).hexdigest()[:16]
    stamp = WHEEL_CACHE / f".done-{key}"
    if not stamp.exists():
        WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
        requirements = [arg for path in requirement_files for arg in ("-r", str(path))]
        _pip("wheel", "-q", "-w", str(WHEEL_CACHE), *requirements)
        stamp.write_text("\n".join(pins) + "\n")
    return WHEEL_CACHE


def modelseal_wheel(source: Path, out: Path) -> Path:
    """A wheel of modelseal built from ``source`` (the repository or a changed copy)."""
    out.mkdir(parents=True, exist_ok=True)
    _pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(source))
    return next(out.glob("modelseal-*.whl"))


def wheelhouse(folder: Path, app_wheel: Path, *sources: Path) -> Path:
    """``folder`` holding ``app_wheel`` and every other wheel of ``sources`` (hard links)."""
    folder.mkdir(parents=True, exist_ok=True)
    dependencies = [
        path
        for source in sources
        for path in source.glob("*.whl")
        if not path.name.startswith("modelseal-")
    ]
    for path in [app_wheel, *dependencies]:
        target = folder / path.name
        if target.exists():
            target.unlink()
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
    return folder


def build_image(engine: DockerEngine, context: Path, tag: str) -> str:
    """``docker build --network none``; returns the plain build log (for CACHED steps)."""
    result = engine.docker(
        "build", "--network", "none", "--progress", "plain", "-t", tag, str(context),
        timeout=1200,
    )  # fmt: skip
    return result.stdout + result.stderr


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    plan: ImagePlan
    context: BuildContext
    build_log: str


@dataclass
class Container:
    engine: DockerEngine
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inspect(self, template: str) -> str:
        return self.engine.docker("inspect", "-f", template, self.name).stdout.strip()

    def state(self) -> dict[str, object]:
        state: dict[str, object] = json.loads(self.inspect("{{json .State}}"))
        return state

    def logs(self) -> str:
        result = self.engine.docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *command: str) -> str:
        return self.engine.docker("exec", self.name, *command).stdout

    def stop(self, grace_seconds: int) -> tuple[int, float]:
        """``docker stop -t GRACE``: the exit code and how long the stop took."""
        started = time.monotonic()
        self.engine.docker("stop", "-t", str(grace_seconds), self.name, timeout=grace_seconds + 60)
        elapsed = time.monotonic() - started
        return int(self.inspect("{{.State.ExitCode}}")), elapsed

    def remove(self) -> None:
        self.engine.docker("rm", "-f", self.name, check=False)


def run_container(
    engine: DockerEngine,
    image: str,
    name: str,
    *options: str,
) -> Container:
    """``docker run -d --read-only --tmpfs /tmp --network host`` on a free loopback port."""
    port = free_port()
    engine.docker("rm", "-f", name, check=False)
    engine.docker(
        "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp",
        "--network", "host", "-e", "MODELSEAL_HOST=127.0.0.1", "-e", f"MODELSEAL_PORT={port}",
        *options, image,
    )  # fmt: skip
    return Container(engine, name, port)


def wait_for_health(container: Container, wanted: str = "healthy") -> None:
    """Wait until Docker's own HEALTHCHECK reports ``wanted``; fail on exit, or on
    ``healthy`` when ``unhealthy`` is wanted. Waiting for ``healthy``, an ``unhealthy`` on the
    way is not final: on a loaded machine a check can miss its timeout, and Docker keeps
    checking (the container turns healthy at the next check that passes)."""
    deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        state = container.state()
        health = state.get("Health")
        status = health.get("Status") if isinstance(health, dict) else None
        if status == wanted:
            return
        if not state.get("Running") or (status == "healthy" and wanted != "healthy"):
            raise AssertionError(
                f"{container.name}: {status or 'no health'}, running={state.get('Running')}:\n"
                f"{container.logs()[-4000:]}"
            )
        time.sleep(0.5)
    raise AssertionError(f"{container.name} not {wanted} after {HEALTH_TIMEOUT_SECONDS} s")


def wait_for_state(container: Container, states: tuple[str, ...]) -> dict[str, object]:
    """Poll /health until the server's state machine reaches one of ``states``."""
    deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            body: dict[str, object] = httpx.get(f"{container.url}/health", timeout=5).json()
        except (httpx.TransportError, ValueError):
            body = {}
        if body.get("state") in states:
            return body
        if not container.state().get("Running"):
            raise AssertionError(f"{container.name} exited:\n{container.logs()[-4000:]}")
        time.sleep(0.5)
    raise AssertionError(f"{container.name} never reached {states}:\n{container.logs()[-4000:]}")


def golden_comparisons(seal_dir: Path, url: str) -> list[OutputComparison]:
    """POST the seal's golden inputs to /predict and compare under the seal's own policies."""
    seal = open_seal(seal_dir)
    golden = load_golden(seal.golden_path)
    (inputs,) = golden.inputs.values()
    response = httpx.post(f"{url}/predict", json={"instances": inputs.tolist()}, timeout=60)
    response.raise_for_status()
    predictions = response.json()["predictions"]
    policies = seal_policies(seal)
    return [
        compare_output(output, expected, np.asarray(predictions[output]), policies[output])
        for output, expected in golden.outputs.items()
    ]


def oip_comparisons(seal_dir: Path, url: str) -> list[OutputComparison]:
    """The same golden check through the Open Inference Protocol v2 ``infer`` route."""
    seal = open_seal(seal_dir)
    golden = load_golden(seal.golden_path)
    (name, inputs), *_ = golden.inputs.items()
    request = {
        "inputs": [
            {"name": name, "shape": list(inputs.shape), "datatype": datatype_of(inputs.dtype),
             "data": inputs.ravel().tolist()}
        ]
    }  # fmt: skip
    response = httpx.post(f"{url}/v2/models/{seal.name}/infer", json=request, timeout=60)
    response.raise_for_status()
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    policies = seal_policies(seal)
    return [
        compare_output(
            output,
            expected,
            np.asarray(outputs[output]["data"]).reshape(outputs[output]["shape"]),
            policies[output],
        )
        for output, expected in golden.outputs.items()
    ]


def _pip(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"pip {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
