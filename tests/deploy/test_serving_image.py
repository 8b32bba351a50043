"""The demo seal's serving image, built and run for real in the test engine.

Containers run as they would in production: read-only root filesystem with a tmpfs /tmp,
the image's own user (or an arbitrary one in group 0), its own HEALTHCHECK deciding when it
is healthy, and ``docker stop`` with the grace period the generated compose.yaml states.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from pathlib import Path

import httpx
import pytest

from modelseal import pack
from modelseal.demo import DemoModel
from modelseal.deploy import Weights, write_dockerfile
from modelseal.deploy.container import DRAIN_SECONDS, USER_ID, grace_seconds
from modelseal.deploy.dockerfile import LABEL_PREFIX
from modelseal.deploy.sizing import StartupMeasurement
from modelseal.seal.artifact import open_seal
from tests.deploy.conftest import BuiltImage
from tests.deploy.images import (
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
        assert exit_code == 0, container.logs()[-3000:]
        assert "drain window over" in container.logs()
    finally:
        container.remove()


def test_an_arbitrary_uid_in_group_0_serves_too(
    docker_engine: DockerEngine, demo_image: BuiltImage, demo_seal_path: Path
) -> None:
    """OpenShift runs images under a random UID with group 0 and no passwd entry."""
    container = run_container(docker_engine, demo_image.tag, "digits-openshift", "--user", "1000870000:0")
    try:
        wait_for_health(container)
        assert container.exec("python", "-c", "import os; print(os.getuid())") == "1000870000\n"
        assert all(c.passed for c in golden_comparisons(demo_seal_path, container.url))
        exit_code, _seconds = container.stop(GRACE)
        assert exit_code == 0
    finally:
        container.remove()
