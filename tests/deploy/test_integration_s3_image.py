"""The `--weights s3` serving image meets a real S3-protocol server.

The image is built once from `modelseal dockerfile --weights s3` (the baked image cannot stand
in for it: its serving requirements hold no boto3, so its server cannot fetch from S3). The
container runs as in production (read-only root, tmpfs /tmp, its own user and HEALTHCHECK)
on the host network, with MODELSEAL_SOURCE=s3://..., the AWS variables and
MODELSEAL_S3_ENDPOINT pointing at a moto server on 127.0.0.1 that this test starts and stops.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from modelseal.deploy import Weights, write_dockerfile
from modelseal.deploy.container import CACHE_DIR, DRAIN_SECONDS, TMP, grace_seconds
from modelseal.deploy.dockerfile import LOCK_FILE, SERVING_FILE
from modelseal.deploy.sizing import StartupMeasurement
from modelseal.seal.artifact import open_seal
from modelseal.sources.publish import PushResult, push
from modelseal.sources.s3 import s3_client
from tests.deploy.images import (
    build_image,
    cached_wheels,
    golden_comparisons,
    oip_comparisons,
    run_container,
    wait_for_health,
    wheelhouse,
)
from tests.docker_engine import DockerEngine
from tests.sources.conftest import SECRET_KEY, aws_environment
from tests.sources.servers import MotoServer, moto_server

pytestmark = pytest.mark.slow
TAG = "modelseal-test/digits:s3"
PASSED_TO_CONTAINER = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "MODELSEAL_S3_ENDPOINT",
    "NO_PROXY",
)
"""The test S3 environment minus MODELSEAL_CACHE_DIR: the image's own (on the tmpfs) is used."""


@dataclass(frozen=True)
class S3Image:
    tag: str
    serving_requirements: str


@pytest.fixture(scope="module")
def s3_image(
    docker_engine: DockerEngine,
    docker_base_image: str,
    demo_seal_path: Path,
    demo_measurement: StartupMeasurement,
    app_wheel: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> S3Image:
    """The demo seal's `--weights s3` image: the one extra build of this suite."""
    seal = open_seal(demo_seal_path)
    staging = tmp_path_factory.mktemp("s3-requirements")
    write_dockerfile(seal, staging, weights=Weights.S3, measurement=demo_measurement)
    wheels = cached_wheels(staging / LOCK_FILE, staging / SERVING_FILE)
    _plan, context = write_dockerfile(
        seal,
        tmp_path_factory.mktemp("s3-context"),
        weights=Weights.S3,
        base_image=docker_base_image,
        wheelhouse=wheelhouse(tmp_path_factory.mktemp("s3-wheelhouse"), app_wheel, wheels),
        measurement=demo_measurement,
    )
    build_image(docker_engine, context.root, TAG)
    return S3Image(TAG, (context.root / SERVING_FILE).read_text())


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def pushed(
    moto: MotoServer, demo_seal_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[PushResult, dict[str, str]]:
    """The demo seal pushed to a fresh bucket; the environment that reaches it."""
    environment = aws_environment(moto.url, tmp_path / "host-cache")
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    bucket = f"seals-{uuid.uuid4().hex[:12]}"
    s3_client().create_bucket(Bucket=bucket)
    return push(demo_seal_path, f"s3://{bucket}/", progress=lambda _: None), environment


def test_the_s3_image_fetches_from_s3_verifies_and_answers_with_the_golden_outputs(
    docker_engine: DockerEngine,
    s3_image: S3Image,
    pushed: tuple[PushResult, dict[str, str]],
    demo_seal_path: Path,
) -> None:
    result, environment = pushed
    assert "boto3==" in s3_image.serving_requirements
    variables = [f"{name}={environment[name]}" for name in PASSED_TO_CONTAINER]
    container = run_container(
        docker_engine, s3_image.tag, "digits-s3", "-e", f"MODELSEAL_SOURCE={result.uri}",
        *[arg for variable in variables for arg in ("-e", variable)],
    )  # fmt: skip
    try:
        wait_for_health(container)
        for comparison in golden_comparisons(demo_seal_path, container.url):
            assert comparison.passed, comparison
        for comparison in oip_comparisons(demo_seal_path, container.url):
            assert comparison.passed, comparison

        health = httpx.get(f"{container.url}/health", timeout=10).json()
        assert health["state"] == "ready", health
        assert [entry["state"] for entry in health["history"]][:2] == ["fetching", "loading"]
        fetch = health["fetch"]
        assert (fetch["phase"], fetch["source"]) == ("done", result.uri), fetch
        assert fetch["bytes_done"] == fetch["bytes_total"] == result.bytes, fetch

        # The fetch cache is on the tmpfs (the image's MODELSEAL_CACHE_DIR), the root read-only.
        assert container.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
        assert CACHE_DIR.startswith(f"{TMP}/")
        mounts = container.exec("cat", "/proc/mounts").splitlines()
        assert any(line.split()[1:3] == [TMP, "tmpfs"] for line in mounts), mounts
        entry = f"{CACHE_DIR}/seals/{result.digest}"
        listing = container.exec("python", "-c", f"import os; print(sorted(os.listdir({entry!r})))")
        assert "seal.json" in json.loads(listing.replace("'", '"')), listing

        documents = [container.logs(), *(httpx.get(container.url + path, timeout=10).text
                                         for path in ("/health", "/seal", "/metrics"))]  # fmt: skip
        assert not [text for text in documents if SECRET_KEY in text]
        exit_code, seconds = container.stop(grace_seconds(DRAIN_SECONDS))
        assert exit_code == 0, f"exit {exit_code} after {seconds:.1f} s: {container.logs()[-3000:]}"
    finally:
        container.remove()
