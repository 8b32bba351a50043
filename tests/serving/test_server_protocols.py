"""The demo seal served for real: tritonclient, /predict, /seal, /metrics, verify --url."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families

from modelseal import open_seal
from modelseal.golden import load_golden
from modelseal.golden.compare import compare_output
from modelseal.verify import seal_policies
from tests.cli_process import run_modelseal
from tests.serving.server import RunningServer, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(
    demo_seal_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    running = start_server(demo_seal_path, tmp_path_factory.mktemp("logs"))
    yield running
    assert running.stop() == 0, running.logs()


def triton_client(server: RunningServer) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.url.removeprefix("http://"))


def assert_within_tolerance(seal: Path, name: str, got: np.ndarray, rows: slice) -> None:
    """As the product compares: under the seal's tolerance policy, never bitwise (bits change
    with the batch size, the process and the CPU's BLAS kernel)."""
    expected = load_golden(seal / "golden.npz").outputs[name][rows]
    policy = seal_policies(open_seal(seal))[name]
    comparison = compare_output(name, expected, got, policy)
    assert comparison.passed, comparison.checks


def test_tritonclient_sees_a_live_ready_server_and_model(server: RunningServer) -> None:
    client = triton_client(server)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("digits", "1.0.0")
    metadata = client.get_model_metadata("digits")
    assert metadata["name"] == "digits"
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 64]}]
    assert [o["name"] for o in metadata["outputs"]] == ["label", "probabilities", "scores"]
    assert not client.is_model_ready("not-digits")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_infer_returns_the_golden_outputs(
    server: RunningServer, demo_seal_path: Path, binary: bool
) -> None:
    golden = load_golden(demo_seal_path / "golden.npz")
    features = golden.inputs["input"]
    request = triton.InferInput("input", list(features.shape), "FP64")
    request.set_data_from_numpy(features, binary_data=binary)
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary)
        for name in ("label", "probabilities", "scores")
    ]
    result = triton_client(server).infer(
        "digits", [request], outputs=outputs, model_version="1.0.0"
    )
    for name in golden.outputs:
        assert_within_tolerance(demo_seal_path, name, result.as_numpy(name), slice(None))
    assert result.get_response()["model_name"] == "digits"


def test_predict_one_row_and_many(server: RunningServer, demo_seal_path: Path) -> None:
    golden = load_golden(demo_seal_path / "golden.npz")
    rows = golden.inputs["input"]
    one = httpx.post(f"{server.url}/predict", json={"features": rows[0].tolist()}).json()
    label = np.asarray([one["predictions"]["label"]], dtype=golden.outputs["label"].dtype)
    assert_within_tolerance(demo_seal_path, "label", label, slice(0, 1))
    assert one["seal_digest"] == json.loads((demo_seal_path / "seal.json").read_text())["digest"]
    assert (one["model_version"], one["device"]) == ("1.0.0", "cpu")
    many = httpx.post(f"{server.url}/predict", json={"instances": rows[:5].tolist()}).json()
    for name in ("label", "probabilities", "scores"):
        got = np.asarray(many["predictions"][name], dtype=golden.outputs[name].dtype)
        assert_within_tolerance(demo_seal_path, name, got, slice(0, 5))


def test_health_and_seal_documents(server: RunningServer) -> None:
    health = httpx.get(f"{server.url}/health")
    assert health.status_code == 200
    body = health.json()
    assert body["state"] == "ready" and body["ready"] is True
    assert [step["state"] for step in body["history"]] == [
        "loading", "verifying", "warming", "ready",
    ]  # fmt: skip
    assert body["probe"]["ok"] is True
    seal = httpx.get(f"{server.url}/seal").json()
    assert seal["verify"]["verdict"] == "consistent"
    assert seal["manifest"]["digest"] == body["seal_digest"]
    assert httpx.get(f"{server.url}/health/live").status_code == 200


def test_metrics_parse_and_hold_what_operators_need(server: RunningServer) -> None:
    httpx.post(f"{server.url}/predict", json={"features": [0.0] * 64})
    text = httpx.get(f"{server.url}/metrics").text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    expected = {
        "modelseal_requests", "modelseal_request_duration_seconds",
        "modelseal_inference_duration_seconds", "modelseal_batch_size_rows",
        "modelseal_queue_depth", "modelseal_queue_wait_seconds", "modelseal_state",
        "modelseal_drift_verdict", "modelseal_drift_warning", "modelseal_device_info",
        "modelseal_build_info",
    }  # fmt: skip
    assert expected <= set(families), sorted(set(families))
    requests = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["modelseal_requests"].samples
        if s.name == "modelseal_requests_total"
    }
    assert requests[("/predict", "200")] >= 1
    build = families["modelseal_build_info"].samples[0].labels
    assert build["model_name"] == "digits" and len(build["seal_digest"]) == 64
    state = {s.labels["modelseal_state"]: s.value for s in families["modelseal_state"].samples}
    assert state["ready"] == 1.0
    verdicts = {s.labels["verdict"]: s.value for s in families["modelseal_drift_verdict"].samples}
    assert verdicts == {"consistent": 1.0}


def test_verify_url_exits_0_against_the_matching_server(
    server: RunningServer, demo_seal_path: Path
) -> None:
    result = run_modelseal("verify", "--json", str(demo_seal_path), "--url", server.url)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "consistent"
    assert report["server_seal_digest"] == report["seal"]["digest"]
