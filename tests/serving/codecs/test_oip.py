"""Open Inference Protocol v2 infer requests to numpy and responses back."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from modelseal.serving.codecs import InferRequest, decode_infer_request, encode_infer_response
from tests.serving.codecs.helpers import (
    NUMERIC,
    SIG,
    TEXT,
    binary_body,
    decode_bytes,
    infer_body,
    json_input,
    raises_input_error,
    read_response,
    signature,
)


@pytest.mark.parametrize("datatype", list(NUMERIC))
def test_numeric_json_request_and_response_round_trip(datatype: str) -> None:
    array = NUMERIC[datatype]
    sig = signature(("x", str(array.dtype), (-1, 3)))
    request = decode_infer_request(infer_body(json_input("x", datatype, array)), None, sig)
    decoded = request.inputs["x"]
    assert decoded.dtype == array.dtype
    np.testing.assert_array_equal(decoded, array)

    body, header_length = encode_infer_response("m", "1", "r1", {"y": decoded})
    assert header_length is None
    (output,) = read_response(body, None)["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("y", datatype, [2, 3])
    np.testing.assert_array_equal(np.array(output["data"], dtype=array.dtype).reshape(2, 3), array)


def test_bytes_round_trip_in_json_and_binary() -> None:
    sig = signature(("text", "object", (-1, 3)))
    from_json = decode_infer_request(infer_body(json_input("text", "BYTES", TEXT)), None, sig)
    assert from_json.inputs["text"].tolist() == TEXT.tolist()

    body, header_length = binary_body(("text", "BYTES", TEXT))
    from_binary = decode_infer_request(body, header_length, sig).inputs["text"]
    assert from_binary.shape == (2, 3)
    assert from_binary.tolist() == [[v.encode() for v in row] for row in TEXT.tolist()]

    outputs = {"as_json": TEXT, "as_binary": from_binary}
    response, response_length = encode_infer_response("m", "1", None, outputs, binary={"as_binary"})
    as_json, as_binary = read_response(response, response_length)["outputs"]
    assert as_json["datatype"] == as_binary["datatype"] == "BYTES"
    assert as_json["data"] == TEXT.reshape(-1).tolist()
    assert decode_bytes(as_binary["raw"]) == [v.encode() for v in TEXT.reshape(-1)]


def test_nested_and_flat_data_decode_alike() -> None:
    sig = signature(("x", "float32", (-1, 3)))
    nested = {"name": "x", "datatype": "FP32", "shape": [2, 3], "data": [[1, 2, 3], [4, 5, 6]]}
    flat = {**nested, "data": [1, 2, 3, 4, 5, 6]}
    a = decode_infer_request(infer_body(nested), None, sig).inputs["x"]
    b = decode_infer_request(infer_body(flat), None, sig).inputs["x"]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, np.arange(1, 7, dtype=np.float32).reshape(2, 3))


def test_request_id_parameters_and_response_envelope() -> None:
    sig = signature(("x", "float32", (-1,)))
    body = infer_body(
        json_input("x", "FP32", np.ones(2, np.float32)), id="req-9", parameters={"k": 1}
    )
    request = decode_infer_request(body, None, sig)
    assert isinstance(request, InferRequest)
    assert (request.id, request.parameters) == ("req-9", {"k": 1})
    response, _ = encode_infer_response(
        "model", "3", request.id, {"y": np.zeros(2, np.float32)}, parameters={"k": 1}
    )
    document = orjson.loads(response)
    assert {k: document[k] for k in ("model_name", "model_version", "id", "parameters")} == {
        "model_name": "model",
        "model_version": "3",
        "id": "req-9",
        "parameters": {"k": 1},
    }


def test_outputs_default_to_all_in_json() -> None:
    sig = signature(("x", "float32", (-1,)), outputs=("p", "q"))
    request = decode_infer_request(
        infer_body(json_input("x", "FP32", np.ones(1, np.float32))), None, sig
    )
    assert (request.output_names, request.binary_outputs) == (("p", "q"), frozenset())


def test_binary_data_output_makes_every_output_binary_unless_one_says_otherwise() -> None:
    sig = signature(("x", "float32", (-1,)), outputs=("p", "q"))
    x = json_input("x", "FP32", np.ones(1, np.float32))
    everything = decode_infer_request(
        infer_body(x, parameters={"binary_data_output": True}), None, sig
    )
    assert everything.binary_outputs == {"p", "q"}
    chosen = decode_infer_request(
        infer_body(
            x,
            parameters={"binary_data_output": True},
            outputs=[{"name": "q"}, {"name": "p", "parameters": {"binary_data": False}}],
        ),
        None,
        sig,
    )
    assert (chosen.output_names, chosen.binary_outputs) == (("q", "p"), frozenset({"q"}))


def test_unknown_output_is_refused() -> None:
    sig = signature(("x", "float32", (-1,)), outputs=("p",))
    body = infer_body(json_input("x", "FP32", np.ones(1, np.float32)), outputs=[{"name": "nope"}])
    with raises_input_error("outputs[0] ('nope'): no output named 'nope'; the signature has: 'p'"):
        decode_infer_request(body, None, sig)


def test_shape_mismatch_names_the_input_and_both_shapes() -> None:
    body = infer_body(json_input("input", "FP32", np.zeros((3, 7), np.float32)))
    with raises_input_error(
        "inputs[0] ('input'): shape [3, 7] does not match the signature [-1, 64]"
    ):
        decode_infer_request(body, None, SIG)


def test_rank_mismatch_is_refused() -> None:
    body = infer_body(json_input("input", "FP32", np.zeros(64, np.float32)))
    with raises_input_error(
        "inputs[0] ('input'): shape [64] does not match the signature [-1, 64]"
    ):
        decode_infer_request(body, None, SIG)


def test_unknown_duplicate_and_missing_inputs_are_refused() -> None:
    row = np.zeros((1, 64), np.float32)
    with raises_input_error(
        "inputs[0] ('other'): no input named 'other'; the signature has: 'input'"
    ):
        decode_infer_request(infer_body(json_input("other", "FP32", row)), None, SIG)
    twice = json_input("input", "FP32", row)
    with raises_input_error("inputs[1] ('input'): given twice"):
        decode_infer_request(infer_body(twice, twice), None, SIG)
    two = signature(("a", "float32", (-1,)), ("b", "float32", (-1,)))
    with raises_input_error("inputs: missing 'b'; the signature has: 'a', 'b'"):
        decode_infer_request(infer_body(json_input("a", "FP32", np.ones(1, np.float32))), None, two)


def test_mismatched_datatype_names_expected_and_got() -> None:
    sig = signature(("ids", "int64", (-1,)))
    body = infer_body(json_input("ids", "FP32", np.ones(2, np.float32)))
    with raises_input_error(
        "inputs[0] ('ids'): datatype does not match the signature: expected INT64, got FP32"
    ):
        decode_infer_request(body, None, sig)
    with raises_input_error("expected INT64, got BOOL"):
        decode_infer_request(infer_body(json_input("ids", "BOOL", np.ones(2, bool))), None, sig)
    with raises_input_error("expected FP32, got BYTES"):
        decode_infer_request(infer_body(json_input("input", "BYTES", TEXT)), None, SIG)


@pytest.mark.parametrize(
    ("sent", "values"),
    [("FP64", [0.5, 1.5]), ("FP16", [0.5, 1.5]), ("INT64", [1, 2]), ("UINT8", [1, 2])],
)
def test_same_kind_numeric_datatypes_are_cast_to_the_signature(
    sent: str, values: list[float]
) -> None:
    sig = signature(("x", "float32", (-1,)))
    body = infer_body({"name": "x", "datatype": sent, "shape": [2], "data": values})
    decoded = decode_infer_request(body, None, sig).inputs["x"]
    assert decoded.dtype == np.float32
    assert decoded.tolist() == values


def test_integers_must_fit_the_declared_and_the_signature_type() -> None:
    body = infer_body({"name": "x", "datatype": "INT8", "shape": [1], "data": [300]})
    with raises_input_error("inputs[0] ('x'): value 300 is out of range for INT8 [-128, 127]"):
        decode_infer_request(body, None, signature(("x", "int8", (-1,))))
    body = infer_body({"name": "x", "datatype": "INT64", "shape": [2], "data": [1, -129]})
    with raises_input_error("inputs[0] ('x'): value -129 is out of range for INT8 [-128, 127]"):
        decode_infer_request(body, None, signature(("x", "int8", (-1,))))
    binary, length = binary_body(("x", "INT64", np.array([5, 2**40])))
    with raises_input_error("value 1099511627776 is out of range for INT32"):
        decode_infer_request(binary, length, signature(("x", "int32", (-1,))))


def test_json_values_must_be_of_the_declared_kind() -> None:
    sig = signature(("x", "int64", (-1,)))
    with raises_input_error("inputs[0] ('x'): INT64 needs integers; got 2.5"):
        decode_infer_request(
            infer_body({"name": "x", "datatype": "INT64", "shape": [2], "data": [1, 2.5]}),
            None,
            sig,
        )
    with raises_input_error("inputs[0] ('input'): FP32 needs numbers; got strings"):
        decode_infer_request(
            infer_body({"name": "input", "datatype": "FP32", "shape": [1, 64], "data": ["1"] * 64}),
            None,
            SIG,
        )
    with raises_input_error(
        "inputs[0] ('input'): FP32 needs numbers in a flat list or in nested lists of equal"
    ):
        decode_infer_request(
            infer_body(
                {"name": "input", "datatype": "FP32", "shape": [2, 64], "data": [[1.0] * 64, [1.0]]}
            ),
            None,
            SIG,
        )


def test_element_count_must_match_the_shape() -> None:
    body = infer_body({"name": "input", "datatype": "FP32", "shape": [2, 64], "data": [0.0] * 100})
    with raises_input_error(
        "inputs[0] ('input'): 'data' has 100 elements; shape [2, 64] needs 128"
    ):
        decode_infer_request(body, None, SIG)


def test_inputs_must_agree_on_the_batch_size_and_hold_a_row() -> None:
    sig = signature(("a", "float32", (-1,)), ("b", "float32", (-1,)))
    body = infer_body(
        json_input("a", "FP32", np.ones(3, np.float32)),
        json_input("b", "FP32", np.ones(2, np.float32)),
    )
    with raises_input_error("inputs disagree on the batch size (axis 0): 'a' has 3, 'b' has 2"):
        decode_infer_request(body, None, sig)
    empty = infer_body({"name": "input", "datatype": "FP32", "shape": [0, 64], "data": []})
    with raises_input_error("inputs[0] ('input'): the batch is empty"):
        decode_infer_request(empty, None, SIG)


def test_nan_and_inf_are_refused_with_the_row_unless_allowed() -> None:
    batch = np.zeros((4, 64), np.float32)
    batch[2, 5] = np.nan
    batch[3, 0] = np.inf
    body = infer_body(json_input("input", "FP32", batch))
    assert body.count(b"null") == 2  # orjson, like JSON, has no NaN or Inf
    with raises_input_error("inputs[0] ('input'): row 2 holds NaN, Inf or null"):
        decode_infer_request(body, None, SIG)
    allowed = decode_infer_request(body, None, SIG, nan_policy="allow").inputs["input"]
    assert np.isnan(allowed[2, 5]) and np.isnan(allowed[3, 0])
    assert np.count_nonzero(allowed) == 2
    inf_only = np.zeros((2, 64), np.float32)
    inf_only[1, 63] = -np.inf
    binary, length = binary_body(("input", "FP32", inf_only))
    with raises_input_error("inputs[0] ('input'): row 1 holds NaN, Inf or null"):
        decode_infer_request(binary, length, SIG)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the request body is not valid JSON"),
        (b"[1, 2]", "the request body must be a JSON object"),
        (b'{"inputs": {}}', "inputs: must be a non-empty list of tensors"),
        (b'{"inputs": [7]}', "inputs[0]: must be an object with name, datatype, shape"),
        (b'{"inputs": [{"name": 1}]}', "inputs[0]: 'name' must be a string"),
        (
            b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, -64], "data": []}]}',
            "inputs[0] ('input'): 'shape' must be a list of non-negative integers",
        ),
        (
            b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64]}]}',
            "inputs[0] ('input'): 'data' is missing",
        ),
        (
            b'{"inputs": [{"name": "input", "datatype": 32, "shape": [1, 64], "data": []}]}',
            "inputs[0] ('input'): 'datatype' must be a string such as FP32",
        ),
        (
            b'{"inputs": [{"name": "input", "datatype": "FP8", "shape": [1, 64], "data": []}]}',
            "inputs[0] ('input'): datatype 'FP8' is not supported",
        ),
        (
            b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1], "data": [1]}]}',
            "inputs[0] ('input'): shape [1, 1] does not match",
        ),
        (
            b'{"id": 5, "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], '
            b'"data": [' + b", ".join([b"1"] * 64) + b"]}]}",
            "id: must be a string",
        ),
    ],
)
def test_malformed_requests_name_the_field(body: bytes, message: str) -> None:
    with raises_input_error(message):
        decode_infer_request(body, None, SIG)


def test_non_native_and_strided_outputs_are_written_correctly() -> None:
    big_endian = np.array([[1.5, 2.5], [3.5, 4.5]], dtype=">f4")
    column = np.arange(6, dtype=np.int64).reshape(2, 3)[:, 1]
    body, _ = encode_infer_response("m", "1", None, {"a": big_endian, "b": column})
    a, b = orjson.loads(body)["outputs"]
    assert (a["datatype"], a["data"], b["data"]) == ("FP32", [1.5, 2.5, 3.5, 4.5], [1, 4])
    body, length = encode_infer_response("m", "1", None, {"a": big_endian}, binary=True)
    raw = read_response(body, length)["outputs"][0]["raw"]
    assert np.frombuffer(raw, "<f4").tolist() == [1.5, 2.5, 3.5, 4.5]
