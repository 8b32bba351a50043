"""Session fixtures of the ship tests: the demo seal's measured start-up, the host's wheels,
and the demo serving image, built once in the test engine and shared by every test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from modelseal.deploy import Weights, write_dockerfile
from modelseal.deploy.context import BuildContext
from modelseal.deploy.dockerfile import LOCK_FILE, SERVING_FILE
from modelseal.deploy.image import ImagePlan
from modelseal.deploy.sizing import StartupMeasurement, measure_startup
from modelseal.seal.artifact import open_seal
from tests.deploy.images import REPO, build_image, cached_wheels, modelseal_wheel, wheelhouse
from tests.docker_engine import DockerEngine


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    plan: ImagePlan
    context: BuildContext
    build_log: str


@pytest.fixture(scope="session")
def demo_measurement(demo_seal_path: Path) -> StartupMeasurement:
    """The demo seal's start-up, measured once (a fresh interpreter running verify)."""
    return measure_startup(open_seal(demo_seal_path))


@pytest.fixture(scope="session")
def app_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """modelseal built from this checkout: the code layer of every test image."""
    return modelseal_wheel(REPO, tmp_path_factory.mktemp("app-wheel"))


@pytest.fixture(scope="session")
def demo_wheelhouse(
    demo_seal_path: Path,
    demo_measurement: StartupMeasurement,
    app_wheel: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The host's wheels for the demo seal's lock and serving requirements, plus modelseal."""
    staging = tmp_path_factory.mktemp("demo-requirements")
    write_dockerfile(open_seal(demo_seal_path), staging, measurement=demo_measurement)
    wheels = cached_wheels(staging / LOCK_FILE, staging / SERVING_FILE)
    return wheelhouse(tmp_path_factory.mktemp("demo-wheelhouse"), app_wheel, wheels)


@pytest.fixture(scope="session")
def demo_image(
    docker_engine: DockerEngine,
    docker_base_image: str,
    demo_seal_path: Path,
    demo_measurement: StartupMeasurement,
    demo_wheelhouse: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> BuiltImage:
    """The demo seal's serving image (weights baked), built once with no network."""
    plan, context = write_dockerfile(
        open_seal(demo_seal_path),
        tmp_path_factory.mktemp("demo-context"),
        weights=Weights.BAKED,
        base_image=docker_base_image,
        wheelhouse=demo_wheelhouse,
        measurement=demo_measurement,
    )
    tag = "modelseal-test/digits:baked"
    return BuiltImage(tag, plan, context, build_image(docker_engine, context.root, tag))
