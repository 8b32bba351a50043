"""Fixtures for the source tests: a moto S3 server per session, a bucket per test, the AWS
environment (with a recognisable secret key that must never be printed), and seals."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelseal import pack
from modelseal.runtimes.numpy_function import NumpyFunction
from modelseal.sources.s3 import s3_client
from tests.serving.server import RunningServer
from tests.sources.servers import FaultyProxy, MotoServer, moto_server

SECRET_KEY = "ms-test-secret-7Qx9Zr2WkP"
MLP_FUNCTION = Path(__file__).parents[1] / "fixtures" / "mlp_function.py"
MARKER_FUNCTION = Path(__file__).parent / "marker_function.py"


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


def aws_environment(endpoint: str, cache: Path) -> dict[str, str]:
    """The variables a process needs to reach the test S3 server, and nothing from outside."""
    return {
        "AWS_ACCESS_KEY_ID": "AKIATESTMODELSEAL",
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "MODELSEAL_S3_ENDPOINT": endpoint,
        "MODELSEAL_CACHE_DIR": str(cache),
        "NO_PROXY": "127.0.0.1",
    }


@pytest.fixture
def s3_env(moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test S3 environment, set in this process too (boto3 reads os.environ)."""
    environment = aws_environment(moto.url, tmp_path / "cache")
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment


@pytest.fixture
def bucket(s3_env: dict[str, str]) -> str:
    name = f"seals-{uuid.uuid4().hex[:12]}"
    client().create_bucket(Bucket=name)
    return name


def client() -> Any:
    return s3_client()


@pytest.fixture(scope="session")
def mlp_seal_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A numpy MLP seal with about 3 MB of weights: many chunks at a small chunk size."""
    rng = np.random.default_rng(5)
    weights = {
        "a": (rng.standard_normal((16, 40960)) / 4).astype(np.float32),
        "b": (rng.standard_normal((40960, 4)) / 200).astype(np.float32),
    }
    golden = rng.standard_normal((6, 16)).astype(np.float32)
    seal = pack(
        NumpyFunction(source=MLP_FUNCTION, weights=weights),
        runtime="numpy", name="mlp", version="2", golden=golden,
        output=tmp_path_factory.mktemp("mlp") / "mlp-2.seal",
    )  # fmt: skip
    return seal.root


@pytest.fixture(scope="session")
def marker_seal_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seal whose model, when loaded, writes the file named by MODELSEAL_TEST_LOAD_MARKER."""
    seal = pack(
        NumpyFunction(source=MARKER_FUNCTION, weights={"scale": np.ones(3, np.float32)}),
        runtime="numpy", name="marker", version="1", golden=np.ones((2, 3), np.float32),
        output=tmp_path_factory.mktemp("marker") / "marker-1.seal",
    )  # fmt: skip
    return seal.root


@pytest.fixture
def servers() -> Iterator[list[RunningServer]]:
    """Servers a test starts; killed by PID when it ends."""
    started: list[RunningServer] = []
    yield started
    for server in started:
        server.stop(signal.SIGKILL)


@pytest.fixture
def proxies() -> Iterator[list[FaultyProxy]]:
    """Fault-injecting proxies a test starts; stopped when it ends."""
    started: list[FaultyProxy] = []
    yield started
    for proxy in started:
        proxy.stop()
