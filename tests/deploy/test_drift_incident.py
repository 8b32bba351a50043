"""The drift incident, end to end, in a real container.

What this proves: models trained and sealed in a real numpy 1.26 / scikit-learn 1.3
environment are put into a serving image whose lock was moved forward to this machine's
numpy 2 / scikit-learn (the upgrade nobody noticed in the incident), with no other help.
Inside the container, the server's own start-up verification catches it:

- for the decision tree, whose predictions really changed (checked here independently,
  with joblib and numpy alone), ``/seal`` reports numpy, scipy and scikit-learn as critical
  environment drift and the golden replay's verdict ``drift``, and readiness stays 503, so
  neither Docker's HEALTHCHECK nor a load balancer would ever send it traffic;
- the same image serving the logistic regression, whose outputs still hold, turns ready
  while still reporting the critical drift: readiness follows the replay, not the diff alone.

What it does not prove: anything about numpy or scikit-learn versions other than the two
environments built here (the legacy one under .cache/envs, and this one).
"""

from __future__ import annotations

import subprocess
import time
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from modelseal.deploy import write_dockerfile
from modelseal.deploy.dockerfile import LOCK_FILE, SERVING_FILE
from modelseal.deploy.sizing import StartupMeasurement
from modelseal.seal.artifact import open_seal
from modelseal.verify import Verdict
from tests.deploy.images import (
    Container,
    build_image,
    cached_wheels,
    run_container,
    wait_for_state,
    wheelhouse,
)
from tests.docker_engine import DockerEngine
from tests.e2e.test_cross_version_drift import expected_verdict

pytestmark = pytest.mark.slow
LEGACY_MODELS = Path(__file__).parents[1] / "e2e" / "legacy_seal_models.py"
MOVED = ("numpy", "scipy", "scikit-learn", "joblib", "threadpoolctl")


@pytest.fixture(scope="module")
def legacy_seals(legacy_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("legacy-seals")
    result = subprocess.run(
        [str(legacy_python), str(LEGACY_MODELS), str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def drifted_image(
    docker_engine: DockerEngine,
    docker_base_image: str,
    legacy_seals: Path,
    app_wheel: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The tree seal baked into an image whose lock moved to this machine's versions."""
    seal = open_seal(legacy_seals / "tree.seal")
    sealed = dict(line.split("==") for line in seal.lock_lines())
    assert sealed["numpy"].startswith("1.") and sealed["scikit-learn"].startswith("1.3.")
    pins = [f"{name}=={metadata.version(name)}" for name in MOVED]
    staging = tmp_path_factory.mktemp("drift-requirements")
    budget = StartupMeasurement(seconds=60.0, peak_rss_bytes=0, verdict="drift")
    write_dockerfile(seal, staging, pins=pins, measurement=budget)
    wheels = cached_wheels(staging / LOCK_FILE, staging / SERVING_FILE)
    house = wheelhouse(tmp_path_factory.mktemp("drift-wheelhouse"), app_wheel, wheels)
    plan, context = write_dockerfile(
        seal, tmp_path_factory.mktemp("drift-context"), pins=pins, base_image=docker_base_image,
        wheelhouse=house, measurement=budget,
    )  # fmt: skip
    assert set(plan.moved_pins) == set(MOVED)
    assert plan.lock["numpy"] == metadata.version("numpy") != sealed["numpy"]
    tag = "modelseal-test/tree:moved-lock"
    build_image(docker_engine, context.root, tag)
    return tag


def seal_document(container: Container) -> dict[str, object]:
    body: dict[str, object] = httpx.get(f"{container.url}/seal", timeout=10).json()
    return body


def critical_subjects(document: dict[str, object]) -> dict[str, tuple[str, str]]:
    report = document["verify"]
    assert isinstance(report, dict)
    return {
        row["subject"]: (row["packed"], row["current"])
        for row in report["environment"]
        if row["risk"] == "critical"
    }


def test_the_server_in_the_image_refuses_traffic_for_the_drifted_model(
    docker_engine: DockerEngine, drifted_image: str, legacy_seals: Path
) -> None:
    # Independent precondition: with this machine's scikit-learn, the tree's golden outputs
    # no longer hold (joblib and numpy only, no modelseal code).
    assert expected_verdict(legacy_seals / "tree.seal")[0] is Verdict.DRIFT
    container = run_container(docker_engine, drifted_image, "tree-drift")
    try:
        health = wait_for_state(container, ("failed", "ready"))
        assert health["state"] == "failed"
        assert httpx.get(f"{container.url}/v2/health/ready", timeout=10).status_code == 503
        document = seal_document(container)
        report = document["verify"]
        assert isinstance(report, dict)
        assert report["verdict"] == "drift"
        critical = critical_subjects(document)
        assert critical["numpy"] == ("1.26.4", metadata.version("numpy"))
        assert critical["scikit-learn"] == ("1.3.2", metadata.version("scikit-learn"))
        # Docker's own HEALTHCHECK sees the same 503.
        wait_for_health_log(container, "not ready")
        assert container.state()["Running"] is True
    finally:
        container.remove()


def test_the_same_image_serves_a_model_whose_outputs_still_hold(
    docker_engine: DockerEngine, drifted_image: str, legacy_seals: Path
) -> None:
    assert expected_verdict(legacy_seals / "logreg.seal")[0] is Verdict.CONSISTENT
    logreg = legacy_seals / "logreg.seal"
    container = run_container(
        docker_engine, drifted_image, "logreg-moved",
        "--volume", f"{logreg}:/models/logreg.seal:ro",
        "-e", "MODELSEAL_SOURCE=/models/logreg.seal",
        "-e", f"MODELSEAL_EXPECT_DIGEST=sha256:{open_seal(logreg).digest}",
    )  # fmt: skip
    try:
        health = wait_for_state(container, ("failed", "ready"))
        assert health["state"] == "ready", health
        document = seal_document(container)
        report = document["verify"]
        assert isinstance(report, dict)
        assert report["verdict"] == "consistent"
        assert {"numpy", "scikit-learn"} <= set(critical_subjects(document))
    finally:
        container.remove()


def wait_for_health_log(container: Container, text: str) -> None:
    """Wait until Docker has run the image's HEALTHCHECK and logged ``text``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if text in container.inspect("{{json .State.Health}}"):
            return
        time.sleep(0.5)
    health = container.inspect("{{json .State.Health}}")
    raise AssertionError(f"no HEALTHCHECK output with {text!r}: {health}")
