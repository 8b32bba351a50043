"""Bad requests get the right 4xx and a JSON error naming the problem; the server stays ready.
Then schemathesis fuzzes every route of the server's own OpenAPI and finds no 5xx."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving.metrics_text import metric_samples
from tests.serving.server import RunningServer, start_server

pytestmark = pytest.mark.slow
ROW = [0.0] * 64
INFER = "/v2/models/digits/infer"
DEEP = b"[" * 40_000 + b"1" + b"]" * 40_000  # deeper than any stack; under --max-body-bytes


@pytest.fixture(scope="module")
def server(
    demo_seal_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    running = start_server(
        demo_seal_path, tmp_path_factory.mktemp("logs"), "--max-body-bytes", "100000"
    )
    yield running
    assert running.stop() == 0, running.logs()


def infer_body(shape: list[int], datatype: str = "FP64", data: list[object] | None = None) -> dict:  # type: ignore[type-arg]
    count = 1
    for dim in shape:
        count *= dim
    return {
        "inputs": [
            {"name": "input", "shape": shape, "datatype": datatype, "data": data or [0.5] * count}
        ]
    }


CASES = [
    pytest.param("/predict", b'{"features": [1, 2', 400, "not valid JSON", id="predict-malformed"),
    pytest.param(INFER, b"{not json", 400, "not valid JSON", id="infer-malformed"),
    pytest.param("/predict", b"[1, 2, 3]", 400, "JSON object", id="predict-not-an-object"),
    pytest.param(
        "/predict",
        {"features": [0.0] * 7},
        422,
        "64",
        id="predict-wrong-width",
    ),
    pytest.param(
        INFER,
        infer_body([2, 7]),
        422,
        "shape [2, 7] does not match the signature [-1, 64]",
        id="infer-wrong-shape",
    ),
    pytest.param(
        INFER, infer_body([1, 64], "BYTES", ["x"] * 64), 422, "BYTES", id="infer-wrong-dtype"
    ),
    pytest.param(
        "/predict",
        {"features": ["a"] * 64},
        422,
        "input",
        id="predict-strings",
    ),
    pytest.param(
        "/predict",
        b'{"features": [NaN' + b", 0.0" * 63 + b"]}",
        422,
        "NaN",
        id="predict-nan",
    ),
    pytest.param(
        INFER,
        infer_body([1, 64], data=[None] * 64),
        422,
        "NaN",
        id="infer-null-is-nan",
    ),
    pytest.param(
        "/v2/models/nope/infer",
        infer_body([1, 64]),
        404,
        "'nope' is not served here",
        id="unknown-model",
    ),
    pytest.param(
        "/v2/models/digits/versions/9/infer",
        infer_body([1, 64]),
        404,
        "no version '9'",
        id="unknown-version",
    ),
    pytest.param(
        "/predict",
        {"instances": [ROW] * 1000},
        413,
        "at most 100000",
        id="too-large",
    ),
    pytest.param(
        "/predict", b'{"instances": ' + DEEP + b"}", 400, "not valid JSON", id="predict-deep"
    ),
    pytest.param(
        INFER,
        b'{"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 64], "data": '
        + DEEP
        + b"}]}",
        400,
        "not valid JSON",
        id="infer-deep",
    ),
    pytest.param(
        "/predict",
        b'{"features": [NaN, ' + DEEP + b"]}",
        400,
        "too deeply",
        id="predict-deep-with-nan",
    ),
    pytest.param(
        "/predict",
        {"features": [1, True, *ROW[2:]]},
        422,
        "features ('input'): float64 needs numbers; got true or false",
        id="predict-boolean",
    ),
    pytest.param(
        INFER,
        infer_body([1, 64], data=[True, *ROW[1:]]),
        422,
        "inputs[0] ('input'): FP64 needs numbers; got true or false",
        id="infer-boolean",
    ),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), CASES)
def test_bad_requests_get_a_named_4xx_and_the_server_stays_ready(
    server: RunningServer,
    path: str,
    body: bytes | dict[str, object],
    status: int,
    message: str,
) -> None:
    if isinstance(body, bytes):
        response = httpx.post(server.url + path, content=body)
    else:
        response = httpx.post(server.url + path, json=body)
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]
    assert httpx.get(server.url + "/v2/health/ready").status_code == 200
    assert httpx.post(server.url + "/predict", json={"features": ROW}).status_code == 200


def test_schemathesis_finds_no_server_error(server: RunningServer, tmp_path: Path) -> None:
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert binary is not None, "schemathesis is in the development lock"
    result = subprocess.run(
        [
            binary, "run", f"{server.url}/openapi.json", "--checks", "not_a_server_error",
            "--max-examples", "40", "--seed", "1", "--workers", "1",
            "--generation-deterministic", "--report-dir", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    tested = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert tested is not None and tested.group(1) == tested.group(2), result.stdout[-2000:]
    assert int(tested.group(1)) >= 100
    assert httpx.get(server.url + "/v2/health/ready").status_code == 200


def test_unknown_paths_and_methods_get_json_errors_and_are_counted(server: RunningServer) -> None:
    def count(route: str, method: str, status: str) -> float:
        labels = (("method", method), ("route", route), ("status", status))
        return metric_samples(server.url, "modelseal_requests").get(labels, 0.0)

    missing_before = count("other", "GET", "404")
    wrong_before = count("/predict", "GET", "405")
    missing = httpx.get(server.url + "/v3/nothing")
    assert missing.status_code == 404
    assert "has no route" in missing.json()["error"]
    wrong_method = httpx.get(server.url + "/predict")
    assert wrong_method.status_code == 405
    assert "GET /predict" in wrong_method.json()["error"] and "takes POST" in wrong_method.text
    assert count("other", "GET", "404") == missing_before + 1
    assert count("/predict", "GET", "405") == wrong_before + 1
