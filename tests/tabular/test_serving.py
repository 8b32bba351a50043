"""The sealed pipeline served by a real `modelseal serve` process: records, MLflow's formats
(as MLflow's own helpers build them and its client sends them) and MLServer's per-column OIP
v2 requests answer the golden outputs; each bad column is a 422 and the server stays ready."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest
from mlflow.models import convert_input_example_to_serving_input
from mlflow.pyfunc.scoring_server.client import ScoringServerClient
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from modelseal import open_seal, pack
from modelseal.golden import load_golden
from modelseal.golden.compare import compare_output
from modelseal.verify import seal_policies
from tests.cli_process import run_modelseal as modelseal
from tests.serving.server import RunningServer, start_server

pytestmark = pytest.mark.slow
ROWS = 12
HERE = Path(__file__).parent
FEATURE_NAME_WARNINGS_FAIL = {
    "PYTHONWARNINGS": "error:X does not have valid feature names:UserWarning,"
    "error:X has feature names:UserWarning"
}


@pytest.fixture(scope="module")
def server(tabular_seal_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    running = start_server(
        tabular_seal_path, tmp_path_factory.mktemp("logs"), env=FEATURE_NAME_WARNINGS_FAIL
    )
    yield running
    running.stop()
    assert "feature names" not in running.logs()


@pytest.fixture(scope="module")
def records(golden: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(golden.iloc[:ROWS].to_json(orient="records"))
    return rows


def assert_golden(outputs: dict[str, Any], seal_path: Path, rows: slice = slice(0, ROWS)) -> None:
    """The answers are the golden outputs of those rows, under the seal's tolerance."""
    golden = load_golden(seal_path / "golden.npz").outputs
    policies = seal_policies(open_seal(seal_path))
    assert set(outputs) == set(golden)
    for name, values in outputs.items():
        expected = golden[name][rows]
        actual = np.asarray(values, dtype=expected.dtype)
        assert compare_output(name, expected, actual, policies[name]).passed, name


def post(server: RunningServer, path: str, body: Any) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=60)


def test_records_on_predict(server: RunningServer, records: Any, tabular_seal_path: Path) -> None:
    reply = post(server, "/predict", {"instances": records})
    assert reply.status_code == 200, reply.text
    assert_golden(reply.json()["predictions"], tabular_seal_path)


def test_one_record_on_predict(
    server: RunningServer, records: Any, tabular_seal_path: Path
) -> None:
    reply = post(server, "/predict", {"features": records[3]})
    assert reply.status_code == 200, reply.text
    one_row = {name: [value] for name, value in reply.json()["predictions"].items()}
    assert_golden(one_row, tabular_seal_path, slice(3, 4))


def test_mlflows_serving_input_on_predict_and_invocations(
    server: RunningServer, golden: Any, tabular_seal_path: Path
) -> None:
    body = convert_input_example_to_serving_input(golden.iloc[:ROWS])
    assert body is not None and "dataframe_split" in json.loads(body)
    for path in ("/predict", "/invocations"):
        reply = httpx.post(
            server.url + path, content=body, headers={"content-type": "application/json"}
        )
        assert reply.status_code == 200, (path, reply.text)
        predictions = reply.json()["predictions"]
        assert_golden(predictions, tabular_seal_path)


def test_mlflows_own_client_on_invocations_and_ping(
    server: RunningServer, golden: Any, tabular_seal_path: Path
) -> None:
    client = ScoringServerClient("127.0.0.1", server.port)  # type: ignore[no-untyped-call]
    client.ping()  # type: ignore[no-untyped-call]  # GET /ping: raises unless 200
    # invoke() sends {"dataframe_split": {"index": ..., "columns": ..., "data": ...}}.
    response = client.invoke(golden.iloc[:ROWS])
    frame = response.get_predictions()
    assert list(frame.columns) == ["label", "probabilities", "scores"]
    assert_golden({name: frame[name].tolist() for name in frame.columns}, tabular_seal_path)


def test_mlserver_pandas_codec_requests_on_oip_v2(
    server: RunningServer, mlserver_python: Path, tabular_seal_path: Path
) -> None:
    encoded = subprocess.run(
        [str(mlserver_python), str(HERE / "mlserver_encode.py"),
         str(tabular_seal_path / "golden-inputs.parquet"), str(ROWS)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert encoded.returncode == 0, encoded.stderr
    request = json.loads(encoded.stdout)
    assert request["parameters"] == {"content_type": "pd"}
    text = next(item for item in request["inputs"] if item["name"] == "size_band")
    assert (text["datatype"], text["shape"], text["parameters"]) == (
        "BYTES", [ROWS, 1], {"content_type": "str"},
    )  # fmt: skip
    reply = post(server, "/v2/models/patients/infer", request)
    assert reply.status_code == 200, reply.text
    outputs = {
        output["name"]: np.reshape(output["data"], output["shape"])
        for output in reply.json()["outputs"]
    }
    assert_golden(outputs, tabular_seal_path)


def test_the_metadata_lists_one_input_per_column(server: RunningServer) -> None:
    metadata = httpx.get(server.url + "/v2/models/patients").json()
    inputs = {item["name"]: (item["datatype"], item["shape"]) for item in metadata["inputs"]}
    assert inputs["mean_area"] == ("FP64", [-1])
    assert inputs["size_band"] == ("BYTES", [-1])
    assert inputs["smooth"] == ("BOOL", [-1])
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert {"/invocations", "/ping"} <= set(paths)


def with_change(records: list[dict[str, Any]], **change: Any) -> list[dict[str, Any]]:
    """Two records, the second changed; a column DROPped is dropped from both."""
    changed = [dict(record) for record in records[:2]]
    for name, value in change.items():
        if value is DROP:
            for record in changed:
                del record[name]
        else:
            changed[1][name] = value
    return changed


DROP = object()
BAD_COLUMNS: dict[str, tuple[dict[str, Any], str]] = {
    "missing column": ({"smooth": DROP}, r"missing column 'smooth'"),
    "extra column": ({"colour": "red"}, r"unexpected column 'colour'"),
    "text in a numeric column": (
        {"mean_area": "large"},
        r"column 'mean_area': expected numbers \(float64, no nulls\); row 1 is 'large'",
    ),
    "null where none is allowed": (
        {"texture_band": None},
        r"column 'texture_band': row 1 is null, and the column allows none",
    ),
}


@pytest.mark.parametrize("case", BAD_COLUMNS, ids=list(BAD_COLUMNS))
@pytest.mark.parametrize("form", ["predict-records", "invocations-split", "oip-columns"])
def test_each_bad_column_is_a_422_naming_it_and_the_server_stays_ready(
    server: RunningServer, records: Any, case: str, form: str
) -> None:
    change, message = BAD_COLUMNS[case]
    bad = with_change(records, **change)
    if form == "predict-records":
        reply = post(server, "/predict", {"instances": bad})
    elif form == "invocations-split":
        frame = pd.DataFrame(bad)
        split = json.loads(frame.to_json(orient="split"))
        reply = post(server, "/invocations", {"dataframe_split": split})
    else:
        reply = post(server, "/v2/models/patients/infer", {"inputs": oip_columns(bad)})
    assert reply.status_code == 422, reply.text
    assert re.search(message, reply.json()["error"]), reply.json()["error"]
    assert httpx.get(server.url + "/v2/health/ready").status_code == 200


def oip_columns(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One OIP v2 input per column, built by the documented format (not by a codec)."""
    names = list(dict.fromkeys(name for record in records for name in record))
    columns = []
    for name in names:
        values = [record.get(name) for record in records]
        first = next(value for value in values if value is not None)
        datatype = {bool: "BOOL", int: "INT64", float: "FP64"}.get(type(first), "BYTES")
        columns.append({"name": name, "datatype": datatype, "shape": [len(values)], "data": values})
    return columns


def test_verify_url_replays_the_golden_columns_on_the_server(
    server: RunningServer, tabular_seal_path: Path
) -> None:
    result = modelseal("verify", "--json", "--url", server.url, str(tabular_seal_path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verdict"] == "consistent"


def test_nullable_integer_text_and_datetime_columns_are_served(tmp_path: Path) -> None:
    """Int64 with a missing value, object text with None, a datetime column: golden replay
    over HTTP (verify --url) and a record with nulls where the golden data had them."""
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({
        "visits": pd.array(rng.integers(0, 9, 40), dtype="Int64"),
        "city": pd.Series(rng.choice(["Oslo", "Lima"], 40), dtype=object),
        "joined": pd.date_range("2024-01-01", periods=40, freq="D"),
        "spend": rng.normal(size=40),
    })  # fmt: skip
    frame.loc[3, "visits"], frame.loc[5, "city"] = None, None
    model = make_pipeline(
        ColumnTransformer([
            ("city", OneHotEncoder(handle_unknown="ignore"), ["city"]),
            ("numbers", SimpleImputer(), ["visits", "spend"]),
        ]),
        LogisticRegression(),
    ).fit(frame, (frame["spend"] > 0).to_numpy())  # fmt: skip
    sealed = pack(model, runtime="sklearn", name="visits", version="1", golden=frame[:10],
                  output=tmp_path / "visits.seal")  # fmt: skip
    running = start_server(sealed.root, tmp_path, env=FEATURE_NAME_WARNINGS_FAIL)
    try:
        result = modelseal("verify", "--json", "--url", running.url, str(sealed.root))
        assert result.returncode == 0, result.stderr
        record = {"visits": None, "city": None, "joined": "2024-03-01T00:00:00", "spend": 0.5}
        reply = post(running, "/predict", {"features": record})
        assert reply.status_code == 200, reply.text
        expected = model.predict_proba(pd.DataFrame([record]).astype(frame.dtypes.to_dict()))
        policy = seal_policies(sealed)["probabilities"]
        answered = np.asarray([reply.json()["predictions"]["probabilities"]])
        assert compare_output("probabilities", expected, answered, policy).passed
    finally:
        running.stop()
