"""models:/ sources against a real `mlflow server` on loopback (sqlite, served artifacts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelseal import IntegrityError, SourceError, open_seal
from modelseal.golden.store import load_golden
from modelseal.sources import resolve
from tests.cli_process import run_modelseal
from tests.fixtures.mlflow_server import mlflow_server
from tests.sources.processes import launch, wait_ready

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The server's URL and the folder holding its artifacts."""
    folder = tmp_path_factory.mktemp("mlflow")
    with mlflow_server(folder) as url:
        yield url, folder / "artifacts"


@pytest.fixture
def registry_env(
    registry: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    environment = {"MLFLOW_TRACKING_URI": registry[0], "MODELSEAL_CACHE_DIR": str(tmp_path / "c")}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment


def _register(seal: Path, name: str, env: dict[str, str], *extra: str) -> dict[str, str]:
    result = run_modelseal("register", str(seal), "--name", name, "--json", *extra, extra_env=env)
    assert result.returncode == 0, result.stderr
    answer: dict[str, str] = json.loads(result.stdout)
    return answer


def test_register_then_serve_by_version_and_by_alias(
    demo_seal_path: Path, registry_env: dict[str, str], tmp_path: Path
) -> None:
    registered = _register(demo_seal_path, "digits", registry_env, "--alias", "champion")
    assert (registered["version"], registered["uri"]) == ("1", "models:/digits/1")
    golden = load_golden(demo_seal_path / "golden.npz")
    logs = []
    for source in ("models:/digits/1", "models:/digits@champion"):
        server = wait_ready(launch(source, tmp_path / source.replace("/", "_"), registry_env))
        try:
            rows = golden.inputs["input"].tolist()
            answer = httpx.post(f"{server.url}/predict", json={"instances": rows}).json()
            np.testing.assert_array_equal(answer["predictions"]["label"], golden.outputs["label"])
            assert source in httpx.get(f"{server.url}/seal").text
        finally:
            server.stop()
        logs.append(server.logs())
    assert "fetched and checked" in logs[0]
    assert "models:/digits@champion is version 1" in logs[1]
    assert "found in the cache" in logs[1]


def test_a_missing_version_fails_at_once(registry_env: dict[str, str]) -> None:
    with pytest.raises(
        SourceError, match="models:/nothing-here/3: not found in the MLflow registry"
    ):
        resolve("models:/nothing-here/3", progress=lambda _: None)


def test_a_changed_artifact_in_the_registry_is_refused_and_not_cached(
    mlp_seal_path: Path, registry: tuple[str, Path], registry_env: dict[str, str]
) -> None:
    registered = _register(mlp_seal_path, "mlp", registry_env)
    run = registered["run_id"]
    [weights] = registry[1].glob(f"*/{run}/artifacts/seal/model/weights.npz")
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model/weights.npz: sha256 is"):
        resolve(registered["uri"], progress=lambda _: None)
    cache = Path(registry_env["MODELSEAL_CACHE_DIR"])
    assert not any((cache / "seals").glob("*"))
    assert not (cache / "downloads").exists() or not any((cache / "downloads").iterdir())
    assert open_seal(mlp_seal_path).digest == registered["digest"]
