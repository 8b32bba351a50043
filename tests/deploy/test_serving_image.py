"""The demo seal's serving image, built and run for real in the test engine.

Containers run as they would in production: read-only root filesystem with a tmpfs /tmp,
the image's own user (or an arbitrary one in group 0), its own HEALTHCHECK deciding when it
is healthy, and ``docker stop`` with the grace period the generated compose.yaml states.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
from pathlib import Path

import httpx
import pytest
from packaging.utils import canonicalize_name

from modelseal import pack
from modelseal.demo import DemoModel
from modelseal.deploy import Weights, write_dockerfile
from modelseal.deploy.container import DRAIN_SECONDS, USER_ID, grace_seconds
from modelseal.deploy.dockerfile import LABEL_PREFIX
from modelseal.deploy.sizing import StartupMeasurement
from modelseal.seal.artifact import open_seal
from tests.deploy.images import (
    REPO,
    BuiltImage,
    build_image,
    golden_comparisons,
    modelseal_wheel,
    oip_comparisons,
    run_container,
    wait_for_health,
    wheelhouse,
)
from tests.docker_engine import DockerEngine

pytestmark = pytest.mark.slow
GRACE = grace_seconds(DRAIN_SECONDS)


def test_the_image_turns_healthy_read_only_and_answers_with_the_golden_outputs(
    docker_engine: DockerEngine, demo_image: BuiltImage, demo_seal_path: Path
) -> None:
    container = run_container(docker_engine, demo_image.tag, "digits-default")
    try:
        wait_for_health(container)
        assert container.state()["Running"] is True
        for comparison in golden_comparisons(demo_seal_path, container.url):
            assert comparison.passed, comparison
        for comparison in oip_comparisons(demo_seal_path, container.url):
            assert comparison.passed, comparison
        seal_doc = httpx.get(f"{container.url}/seal", timeout=10).json()
        assert seal_doc["verify"]["verdict"] == "consistent"
        assert container.exec("python", "-c", "import os; print(os.getuid(), os.getgid())") == (
            f"{USER_ID} 0\n"
        )
        exit_code, seconds = container.stop(GRACE)
        # Docker kills (exit 137) a container still running when the grace period ends.
        assert exit_code == 0, f"exit {exit_code} after {seconds:.1f} s: {container.logs()[-3000:]}"
        assert "drain window over" in container.logs()
    finally:
        container.remove()


def test_an_arbitrary_uid_in_group_0_serves_too(
    docker_engine: DockerEngine, demo_image: BuiltImage, demo_seal_path: Path
) -> None:
    """OpenShift runs images under a random UID with group 0 and no passwd entry."""
    container = run_container(
        docker_engine, demo_image.tag, "digits-openshift", "--user", "1000870000:0"
    )
    try:
        wait_for_health(container)
        assert container.exec("python", "-c", "import os; print(os.getuid())") == "1000870000\n"
        assert all(c.passed for c in golden_comparisons(demo_seal_path, container.url))
        exit_code, _seconds = container.stop(GRACE)
        assert exit_code == 0
    finally:
        container.remove()


def test_labels_carry_the_seal_digest_and_exactly_what_the_image_installed(
    docker_engine: DockerEngine, demo_image: BuiltImage, demo_seal_path: Path
) -> None:
    seal = open_seal(demo_seal_path)
    inspected = docker_engine.docker(
        "image", "inspect", "-f", "{{json .Config.Labels}}", demo_image.tag
    )
    labels = json.loads(inspected.stdout)
    assert labels[f"{LABEL_PREFIX}.seal.digest"] == f"sha256:{seal.digest}"
    assert labels[f"{LABEL_PREFIX}.seal.name"] == "digits"
    assert labels["org.opencontainers.image.version"] == "1.0.0"
    labelled = pins(labels[f"{LABEL_PREFIX}.lock"].split())
    frozen = docker_engine.docker(
        "run", "--rm", "--network", "none", "--entrypoint", "/opt/modelseal/venv/bin/pip",
        demo_image.tag, "freeze",
    ).stdout  # fmt: skip
    assert labelled == pins(frozen.split())
    assert pins(seal.lock_lines()) <= labelled  # every package at its sealed version


def pins(lines: list[str]) -> set[tuple[str, str]]:
    return {(canonicalize_name(n), v) for n, _, v in (line.partition("==") for line in lines)}


# What must be in no layer of a serving image (the base's included).
FORBIDDEN = {
    "a compiler": re.compile(r"^usr/(local/)?bin/(gcc|cc|c\+\+|g\+\+|clang|x86_64-linux-gnu-gcc)"),
    "a pip cache": re.compile(r"(^|/)\.cache/pip(/|$)"),
    # ensurepip's own wheels (pip, setuptools) come with every Python base; no others.
    "a wheel file": re.compile(r"^(?!.*(/python-wheels/|/ensurepip/_bundled/)).*\.whl$"),
    "a test or notebook tool": re.compile(
        r"site-packages/(_?pytest|IPython|ipykernel|jupyter\w*|notebook|nose|hypothesis|mypy)/"
    ),
}


def test_no_layer_holds_a_compiler_a_pip_cache_or_test_tools(
    docker_engine: DockerEngine, demo_image: BuiltImage, tmp_path: Path
) -> None:
    layers = layer_listings(docker_engine, demo_image.tag, tmp_path)
    found: dict[str, list[str]] = {}
    for names in layers:
        for name in names:
            for what, pattern in FORBIDDEN.items():
                if pattern.search(name):
                    found.setdefault(what, []).append(name)
    assert len(layers) >= 4  # base, runtime folders, dependencies, seal, code
    assert any(n.endswith("site-packages/sklearn/__init__.py") for layer in layers for n in layer)
    assert found == {}
    # The same checks find what they look for in an image that has it.
    assert FORBIDDEN["a pip cache"].search("root/.cache/pip/http/x")
    assert FORBIDDEN["a compiler"].search("usr/bin/gcc-12")
    assert FORBIDDEN["a wheel file"].search("wheels/numpy-2.4.6-cp311-cp311-linux_x86_64.whl")


def layer_listings(engine: DockerEngine, tag: str, tmp_path: Path) -> list[list[str]]:
    """The paths in each layer of ``tag``: read in place from overlay2's layer folders (fast),
    else from ``docker save``."""
    driver = json.loads(
        engine.docker("image", "inspect", "-f", "{{json .GraphDriver}}", tag).stdout
    )
    if driver["Name"] == "overlay2":
        data = driver["Data"]
        folders = [data["UpperDir"], *data.get("LowerDir", "").split(":")]
        return [_walk(Path(folder)) for folder in folders if folder]
    saved = tmp_path / "image.tar"
    engine.docker("save", "-o", str(saved), tag)
    with tarfile.open(saved) as image:
        manifest = json.load(image.extractfile("manifest.json"))  # type: ignore[arg-type]
        listings = []
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=image.extractfile(layer)) as files:
                listings.append([name.removeprefix("./") for name in files.getnames()])
        return listings


def _walk(folder: Path) -> list[str]:
    return [
        str((Path(root) / name).relative_to(folder))
        for root, dirs, files in os.walk(folder)
        for name in [*dirs, *files]
    ]


def build_steps(log: str) -> dict[str, bool]:
    """Instruction -> whether BuildKit reused it from its cache, from a plain progress log."""
    instructions: dict[str, str] = {}
    cached: set[str] = set()
    for line in log.splitlines():
        step = re.match(r"^#(\d+) \[(\w+) +\d+/\d+\] (.*)$", line)
        if step:
            instructions[step[1]] = f"{step[2]}: {step[3]}"
        elif re.match(r"^#(\d+) CACHED$", line):
            cached.add(line.split()[0][1:])
    return {instruction: number in cached for number, instruction in instructions.items()}


def step(steps: dict[str, bool], stage: str, fragment: str) -> bool:
    (cached,) = [c for text, c in steps.items() if text.startswith(stage) and fragment in text]
    return cached


def test_a_code_change_reuses_every_dependency_layer_and_a_weight_change_too(
    docker_engine: DockerEngine,
    demo_image: BuiltImage,
    demo_model: DemoModel,
    demo_measurement: StartupMeasurement,
    demo_wheelhouse: Path,
    docker_base_image: str,
    tmp_path: Path,
) -> None:
    source = tmp_path / "source"
    shutil.copytree(REPO / "src", source / "src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    with (source / "src" / "modelseal" / "deploy" / "yaml.py").open("a") as module:
        module.write("\n# a change to the application code only\n")
    changed = modelseal_wheel(source, tmp_path / "changed-wheel")
    house = wheelhouse(tmp_path / "wheelhouse", changed, demo_wheelhouse)
    _plan, context = write_dockerfile(
        open_seal(demo_image.context.root / "seal"), tmp_path / "code-change",
        base_image=docker_base_image, wheelhouse=house, measurement=demo_measurement,
    )  # fmt: skip
    steps = build_steps(build_image(docker_engine, context.root, "modelseal-test/digits:code"))
    assert step(steps, "builder", "--wheel-dir /wheels") is True
    assert step(steps, "serving", "python3 -m venv /opt/modelseal/venv") is True
    assert step(steps, "serving", "COPY seal/") is True
    assert step(steps, "serving", "--no-deps --find-links /app") is False

    retrained = pack(
        demo_model.estimator, runtime="sklearn", name="digits", version="1.0.1",
        golden=demo_model.golden_inputs[:8], output=tmp_path / "digits-1.0.1.seal",
    )  # fmt: skip
    _plan, context = write_dockerfile(
        retrained, tmp_path / "weight-change", base_image=docker_base_image,
        wheelhouse=demo_wheelhouse, measurement=demo_measurement,
    )  # fmt: skip
    steps = build_steps(build_image(docker_engine, context.root, "modelseal-test/digits:weights"))
    assert step(steps, "serving", "python3 -m venv /opt/modelseal/venv") is True
    assert step(steps, "serving", "COPY seal/") is False


def test_the_volume_strategy_serves_the_seal_mounted_read_only(
    docker_engine: DockerEngine,
    demo_image: BuiltImage,
    demo_seal_path: Path,
    demo_measurement: StartupMeasurement,
    demo_wheelhouse: Path,
    docker_base_image: str,
    tmp_path: Path,
) -> None:
    plan, context = write_dockerfile(
        open_seal(demo_seal_path), tmp_path / "volume", weights=Weights.VOLUME,
        base_image=docker_base_image, wheelhouse=demo_wheelhouse, measurement=demo_measurement,
    )  # fmt: skip
    assert not (context.root / "seal").exists()
    tag = "modelseal-test/digits:volume"
    steps = build_steps(build_image(docker_engine, context.root, tag))
    assert step(steps, "serving", "python3 -m venv /opt/modelseal/venv") is True
    mount = f"{demo_seal_path}:/models/{demo_seal_path.name}:ro"
    container = run_container(docker_engine, tag, "digits-volume", "--volume", mount)
    try:
        wait_for_health(container)
        assert all(c.passed for c in golden_comparisons(demo_seal_path, container.url))
        assert plan.source == f"/models/{demo_seal_path.name}"
        exit_code, _seconds = container.stop(GRACE)
        assert exit_code == 0
    finally:
        container.remove()
