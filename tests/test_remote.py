"""verify --url against real servers on loopback: string labels, another seal, bad URLs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelseal import pack
from tests.cli_process import run_modelseal as modelseal
from tests.serving.server import RunningServer, free_port, start_server

pytestmark = pytest.mark.slow
SCHEMAS = Path(__file__).parents[1] / "docs" / "schemas"


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return loaded


@pytest.fixture(scope="module")
def iris_seal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier whose labels are strings: its label output is a ``<U`` golden array."""
    features, target = load_iris(return_X_y=True)
    labels = np.array(["setosa", "versicolor", "virginica"])[target]
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    seal = pack(
        model, runtime="sklearn", name="iris", version="1", golden=features[::5],
        output=tmp_path_factory.mktemp("iris") / "iris.seal",
    )  # fmt: skip
    assert np.load(seal.golden_path)["outputs/label"].dtype.kind == "U"
    return seal.root


@pytest.fixture(scope="module")
def iris_server(
    iris_seal: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    server = start_server(iris_seal, tmp_path_factory.mktemp("iris-server"))
    try:
        yield server
    finally:
        assert server.stop() == 0


def test_string_labels_served_over_http_are_consistent(
    iris_seal: Path, iris_server: RunningServer
) -> None:
    result = modelseal("verify", "--json", str(iris_seal), "--url", iris_server.url)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    jsonschema.validate(report, schema("remote-verify-report.schema.json"))
    assert report["verdict"] == "consistent"
    label = next(r["comparison"] for r in report["golden"] if r["comparison"]["name"] == "label")
    assert label["passed"] and label["bitwise_equal"] and label["dtype"].startswith("<U")
    assert label["rows"] == 30


def test_a_url_without_a_scheme_is_taken_as_http(
    iris_seal: Path, iris_server: RunningServer
) -> None:
    host_port = iris_server.url.removeprefix("http://")
    result = modelseal("verify", str(iris_seal), "--url", host_port, "--batch-size", "7")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("CONSISTENT")
    assert iris_server.url in result.stdout


def test_a_server_of_another_seal_is_wrong_seal_with_exit_3(
    demo_seal_path: Path, iris_seal: Path, iris_server: RunningServer
) -> None:
    human = modelseal("verify", str(demo_seal_path), "--url", iris_server.url)
    assert human.returncode == 3, human.stdout + human.stderr
    assert human.stdout.startswith("WRONG-SEAL")
    iris_digest = json.loads((iris_seal / "seal.json").read_text())["digest"]
    assert f"the server serves seal {iris_digest}" in " ".join(human.stdout.split())
    assert "Traceback" not in human.stderr

    as_json = modelseal("verify", "--json", str(demo_seal_path), "--url", iris_server.url)
    assert as_json.returncode == 3
    report = json.loads(as_json.stdout)
    jsonschema.validate(report, schema("remote-verify-report.schema.json"))
    assert report["verdict"] == "wrong-seal"
    assert report["server_seal_digest"] == iris_digest
    assert report["golden"] == []


class _Answers(BaseHTTPRequestHandler):
    """A plain HTTP server that is not modelseal: every request gets ``status``."""

    status: ClassVar[int] = 404

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self._answer()

    def _answer(self) -> None:
        body = json.dumps({"error": f"answered {self.status}"}).encode()
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(status: int) -> Iterator[str]:
    handler = type(f"Answers{status}", (_Answers,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def not_found_server() -> Iterator[str]:
    yield from _serve(404)


@pytest.fixture
def failing_server() -> Iterator[str]:
    yield from _serve(500)


def test_a_server_that_does_not_serve_the_model_is_wrong_seal(
    demo_seal_path: Path, not_found_server: str
) -> None:
    result = modelseal("verify", "--json", str(demo_seal_path), "--url", not_found_server)
    assert result.returncode == 3
    report = json.loads(result.stdout)
    assert report["verdict"] == "wrong-seal" and report["server_seal_digest"] is None
    assert "does not serve digits version 1.0.0" in report["failure"]["message"]


def test_a_server_error_is_run_failed_with_exit_1(
    demo_seal_path: Path, failing_server: str
) -> None:
    result = modelseal("verify", "--json", str(demo_seal_path), "--url", failing_server)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["verdict"] == "run-failed"
    assert "HTTP 500" in report["failure"]["message"]


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:9", "http://", "127.0.0.1:notaport", "a b"])
def test_a_url_that_is_not_an_http_base_url_is_a_usage_error(
    demo_seal_path: Path, url: str
) -> None:
    result = modelseal("verify", "--json", str(demo_seal_path), "--url", url)
    assert result.returncode == 2, result.stdout + result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, schema("error-report.schema.json"))
    assert document["error"]["type"] == "UsageError"
    assert "http://HOST:PORT" in document["error"]["message"]


def test_an_unreachable_server_exits_2_with_an_error_document(demo_seal_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = modelseal("verify", "--json", str(demo_seal_path), "--url", url)
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert document["error"]["type"] == "SourceError"
    assert "cannot reach the server" in document["error"]["message"]
