"""The tabular request codecs, transport-free: every body form and OIP column layout."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest

from modelseal import InputError
from modelseal.serving.codecs import (
    decode_infer_request,
    decode_invocations_request,
    decode_predict_request,
    encode_invocations_response,
)
from modelseal.serving.codecs.tabular import decode_table_body
from modelseal.types import ColumnKind, ColumnSpec, Signature, TableSpec, TensorSpec

TABLE = TableSpec(
    columns=(
        ColumnSpec(name="age", kind=ColumnKind.NUMERIC, dtype="int64", nullable=False),
        ColumnSpec(name="city", kind=ColumnKind.STRING, dtype="str", nullable=True),
        ColumnSpec(name="member", kind=ColumnKind.BOOL, dtype="bool", nullable=False),
    )
)
LABEL = TensorSpec(name="label", dtype="int64", shape=(-1,))
SIGNATURE = Signature.tabular(TABLE, (LABEL,))
EXPECTED = {"age": [41, 30], "city": ["Oslo", None], "member": [True, False]}
RECORDS: list[dict[str, Any]] = [
    {"age": 41, "city": "Oslo", "member": True},
    {"member": False, "city": None, "age": 30},
]


def as_lists(columns: dict[str, Any]) -> dict[str, list[Any]]:
    return {name: array.tolist() for name, array in columns.items()}


@pytest.mark.parametrize(
    "document",
    [
        {"instances": RECORDS},
        {"instances": [[41, "Oslo", True], [30, None, False]]},
        {"inputs": {"age": [41, 30], "city": ["Oslo", None], "member": [True, False]}},
        {"inputs": RECORDS},
        {"dataframe_records": RECORDS},
        {
            "dataframe_split": {
                "index": [7, 8],
                "columns": ["member", "age", "city"],
                "data": [[True, 41, "Oslo"], [False, 30, None]],
            }
        },
        {
            "dataframe_split": {
                "columns": ["age", "city", "member"],
                "data": [[41, "Oslo", True], [30, None, False]],
            },
            "params": {},
        },
    ],
    ids=["records", "rows", "columns", "input-records", "dataframe-records", "split", "params"],
)
def test_every_body_form_gives_the_same_columns(document: dict[str, Any]) -> None:
    columns, single = decode_table_body(document, TABLE)
    assert as_lists(columns) == EXPECTED and list(columns) == TABLE.names
    assert single is False


def test_features_is_one_record() -> None:
    columns, single = decode_predict_request(
        json.dumps({"features": RECORDS[0]}).encode(), SIGNATURE
    )
    assert single is True and as_lists(columns) == {"age": [41], "city": ["Oslo"], "member": [True]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"instances": RECORDS, "inputs": {}}, r"got keys: 'instances', 'inputs'"),
        ({"rows": RECORDS}, r"got key 'rows'"),
        ({"instances": RECORDS, "params": {"k": 1}}, r"params: this model takes no parameters"),
        ({"instances": []}, r"instances: holds no rows"),
        ({"features": [41, "Oslo", True]}, r"features: expected one record"),
        ({"instances": [RECORDS[0], 5]}, r"instances\[1\]: expected a record"),
        ({"instances": [[41, "Oslo"]]}, r"instances\[0\]: has 2 values; expected 3"),
        ({"dataframe_split": {"data": []}}, r"dataframe_split: expected \{\"columns\""),
        ({"dataframe_split": {"columns": ["age", "age"], "data": []}}, r"named twice"),
        (
            {"dataframe_split": {"columns": ["age", "city"], "data": [[1, "a"]]}},
            r"dataframe_split.columns: missing column 'member'",
        ),
        (
            {"dataframe_records": [RECORDS[0] | {"zip": 1}]},
            r"records\[0\]: unexpected column 'zip'",
        ),
    ],
)
def test_malformed_bodies_say_what_to_send(document: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        decode_table_body(document, TABLE)


def oip(*inputs: dict[str, Any]) -> bytes:
    return json.dumps({"parameters": {"content_type": "pd"}, "inputs": list(inputs)}).encode()


def test_oip_columns_as_mlservers_pandas_codec_sends_them() -> None:
    body = oip(
        {"name": "age", "datatype": "INT64", "shape": [2, 1], "data": [41, 30]},
        {"name": "city", "datatype": "BYTES", "shape": [2, 1], "data": ["Oslo", None],
         "parameters": {"content_type": "str"}},
        {"name": "member", "datatype": "BOOL", "shape": [2], "data": [[True], [False]]},
    )  # fmt: skip
    assert as_lists(decode_infer_request(body, None, SIGNATURE).inputs) == EXPECTED


def test_oip_binary_text_columns_are_decoded() -> None:
    text = b"".join(struct.pack("<I", len(word)) + word for word in (b"Oslo", b"Lima"))
    header = json.dumps({"inputs": [
        {"name": "age", "datatype": "FP64", "shape": [2], "data": [41.0, 30.0]},
        {"name": "city", "datatype": "BYTES", "shape": [2],
         "parameters": {"binary_data_size": len(text)}},
        {"name": "member", "datatype": "BOOL", "shape": [2], "data": [True, False]},
    ]}).encode()  # fmt: skip
    decoded = decode_infer_request(header + text, len(header), SIGNATURE)
    assert as_lists(decoded.inputs)["city"] == ["Oslo", "Lima"]
    assert decoded.inputs["age"].dtype == np.int64


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ({"name": "city", "datatype": "FP64", "shape": [2], "data": [1.0, 2.0]},
         r"inputs\[1\] \('city'\): datatype 'FP64' does not fit the column.*send BYTES"),
        ({"name": "city", "datatype": "BYTES", "shape": [2, 2], "data": ["a"] * 4},
         r"'shape' must be \[rows\] or \[rows, 1\]"),
        ({"name": "city", "datatype": "BYTES", "shape": [3], "data": ["a", "b"]},
         r"'data' has 2 values; shape says 3 rows"),
        ({"name": "city", "datatype": "BYTES", "shape": [2], "data": ["a", "b"],
          "parameters": {"content_type": "base64"}}, r"content_type must be one of"),
        ({"name": "town", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]},
         r"unexpected column 'town'"),
    ],
)  # fmt: skip
def test_bad_oip_columns_are_named(column: dict[str, Any], message: str) -> None:
    body = oip(
        {"name": "age", "datatype": "INT64", "shape": [2], "data": [41, 30]},
        column,
        {"name": "member", "datatype": "BOOL", "shape": [2], "data": [True, False]},
    )
    with pytest.raises(InputError, match=message):
        decode_infer_request(body, None, SIGNATURE)


def test_an_oip_request_missing_a_column_names_it() -> None:
    body = oip({"name": "age", "datatype": "INT64", "shape": [1], "data": [41]})
    with pytest.raises(InputError, match=r"inputs: missing columns 'city', 'member'"):
        decode_infer_request(body, None, SIGNATURE)


TENSORS = Signature(
    inputs=(TensorSpec(name="input", dtype="float32", shape=(-1, 2)),),
    outputs=(LABEL, TensorSpec(name="scores", dtype="float32", shape=(-1, 2))),
)


@pytest.mark.parametrize(
    "document",
    [{"inputs": [[1, 2], [3, 4]]}, {"instances": [[1, 2], [3, 4]]},
     {"inputs": {"input": [[1, 2], [3, 4]]}}],
)  # fmt: skip
def test_invocations_takes_mlflows_tensor_forms(document: dict[str, Any]) -> None:
    inputs = decode_invocations_request(json.dumps(document).encode(), TENSORS)
    assert inputs["input"].tolist() == [[1, 2], [3, 4]] and inputs["input"].dtype == np.float32


def test_invocations_refuses_a_dataframe_for_a_tensor_model() -> None:
    body = json.dumps({"dataframe_split": {"columns": ["a"], "data": [[1]]}}).encode()
    with pytest.raises(InputError, match="this model takes tensors"):
        decode_invocations_request(body, TENSORS)


def test_invocations_answers_as_mlflow_does() -> None:
    label = np.array([1, 0])
    assert json.loads(encode_invocations_response({"label": label})) == {"predictions": [1, 0]}
    both = {"label": label, "scores": np.array([[0.5, 0.25], [1, 2]], dtype=np.float32)}
    assert json.loads(encode_invocations_response(both)) == {
        "predictions": {"label": [1, 0], "scores": [[0.5, 0.25], [1.0, 2.0]]}
    }
