"""JSON and binary request bodies to numpy and back, for OIP v2 and /predict."""

from __future__ import annotations

import json
import re
import struct
from typing import Any

import numpy as np
import orjson
import pytest

from modelseal.errors import InputError
from modelseal.oip import datatype_of
from modelseal.serving.codecs import (
    InferRequest,
    decode_infer_request,
    decode_predict_request,
    dtype_of,
    encode_infer_response,
    encode_predict_response,
    error_body,
)
from modelseal.types import Array, NamedArrays, Signature, TensorSpec

NUMERIC = {
    "BOOL": np.array([[True, False, True], [False, False, True]]),
    "UINT8": np.array([[0, 7, 255], [1, 2, 3]], dtype=np.uint8),
    "UINT16": np.array([[0, 7, 65535], [1, 2, 3]], dtype=np.uint16),
    "UINT32": np.array([[0, 7, 2**32 - 1], [1, 2, 3]], dtype=np.uint32),
    "UINT64": np.array([[0, 7, 2**64 - 1], [1, 2, 3]], dtype=np.uint64),
    "INT8": np.array([[-128, 0, 127], [1, -2, 3]], dtype=np.int8),
    "INT16": np.array([[-(2**15), 0, 2**15 - 1], [1, -2, 3]], dtype=np.int16),
    "INT32": np.array([[-(2**31), 0, 2**31 - 1], [1, -2, 3]], dtype=np.int32),
    "INT64": np.array([[-(2**63), 0, 2**63 - 1], [1, -2, 3]], dtype=np.int64),
    "FP16": np.array([[0.5, -1.25, 65504.0], [1, 2, 3]], dtype=np.float16),
    "FP32": np.array([[0.1, -1.5e-30, 3.4e38], [1, 2, 3]], dtype=np.float32),
    "FP64": np.array([[0.1, -1e-300, 1.7e308], [1, 2, 3]], dtype=np.float64),
}
TEXT = np.array([["a", "héllo", ""], ["x y", "😀", "z"]], dtype=object)


def signature(
    *inputs: tuple[str, str, tuple[int, ...]], outputs: tuple[str, ...] = ("y",)
) -> Signature:
    return Signature(
        inputs=tuple(TensorSpec(name=n, dtype=d, shape=s) for n, d, s in inputs),
        outputs=tuple(TensorSpec(name=n, dtype="float32", shape=(-1,)) for n in outputs),
    )


def json_input(name: str, datatype: str, array: Array, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": datatype,
        "shape": list(array.shape),
        "data": array.reshape(-1).tolist(),
        **extra,
    }


def infer_body(*tensors: dict[str, Any], **extra: Any) -> bytes:
    return orjson.dumps({"inputs": list(tensors), **extra})


def binary_body(*tensors: tuple[str, str, Array], **extra: Any) -> tuple[bytes, int]:
    """A request with every input in the binary tensor extension, as tritonclient builds it."""
    entries, chunks = [], []
    for name, datatype, array in tensors:
        raw = (
            encode_bytes(array)
            if datatype == "BYTES"
            else array.astype(array.dtype.newbyteorder("<")).tobytes()
        )
        entries.append(
            {
                "name": name,
                "datatype": datatype,
                "shape": list(array.shape),
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        chunks.append(raw)
    header = orjson.dumps({"inputs": entries, **extra})
    return header + b"".join(chunks), len(header)


def encode_bytes(array: Array) -> bytes:
    out = b""
    for value in array.reshape(-1).tolist():
        data = value.encode() if isinstance(value, str) else bytes(value)
        out += struct.pack("<I", len(data)) + data
    return out


def decode_bytes(raw: bytes) -> list[bytes]:
    values, position = [], 0
    while position < len(raw):
        (length,) = struct.unpack_from("<I", raw, position)
        values.append(raw[position + 4 : position + 4 + length])
        position += 4 + length
    return values


def read_response(body: bytes, header_length: int | None) -> dict[str, Any]:
    """Parse a response; binary outputs come back under "raw"."""
    document: dict[str, Any] = orjson.loads(body[:header_length] if header_length else body)
    position = header_length or len(body)
    for output in document["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is not None:
            output["raw"] = body[position : position + size]
            position += size
    assert position == len(body)
    return document


def raises_input_error(message: str) -> Any:
    return pytest.raises(InputError, match=re.escape(message))


# --- datatypes ---------------------------------------------------------------------------


@pytest.mark.parametrize("datatype", [*NUMERIC, "BYTES"])
def test_datatype_and_dtype_round_trip(datatype: str) -> None:
    assert datatype_of(dtype_of(datatype)) == datatype


def test_text_dtypes_are_bytes_and_unknown_ones_are_refused() -> None:
    assert datatype_of("<U5") == datatype_of("S3") == datatype_of(object) == "BYTES"
    assert dtype_of("FP32") == np.float32
    with pytest.raises(ValueError, match="complex128"):
        datatype_of(np.complex128)
    with raises_input_error("datatype 'BF16' is not supported"):
        dtype_of("BF16")


# --- OIP: values both ways ---------------------------------------------------------------


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


@pytest.mark.parametrize("datatype", list(NUMERIC))
def test_numeric_binary_request_and_response_round_trip(datatype: str) -> None:
    array = NUMERIC[datatype]
    sig = signature(("x", str(array.dtype), (-1, 3)))
    body, header_length = binary_body(("x", datatype, array))
    decoded = decode_infer_request(body, header_length, sig).inputs["x"]
    np.testing.assert_array_equal(decoded, array)
    assert decoded.dtype == array.dtype and decoded.flags.writeable

    response, response_length = encode_infer_response("m", None, None, {"y": decoded}, binary=True)
    assert response_length is not None
    (output,) = read_response(response, response_length)["outputs"]
    assert output["parameters"] == {"binary_data_size": array.nbytes}
    raw = np.frombuffer(output["raw"], dtype=array.dtype.newbyteorder("<")).reshape(2, 3)
    np.testing.assert_array_equal(raw, array)


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


def test_bytes_become_str_for_a_str_signature_and_bytes_for_a_bytes_one() -> None:
    body, header_length = binary_body(("text", "BYTES", TEXT))
    as_str = decode_infer_request(body, header_length, signature(("text", "<U4", (-1, 3))))
    assert as_str.inputs["text"].dtype.kind == "U"
    assert as_str.inputs["text"][0, 1] == "héllo"  # wider than the signature's <U4: not cut
    as_bytes = decode_infer_request(
        infer_body(json_input("text", "BYTES", TEXT)), None, signature(("text", "S1", (-1, 3)))
    )
    assert as_bytes.inputs["text"][1, 0] == b"x y"


def test_non_utf8_bytes_output_is_refused_in_json_but_sent_in_binary() -> None:
    blob = np.array([b"\xff\xfe"], dtype=object)
    with raises_input_error(
        "output 'y': holds bytes that are not UTF-8 text; ask for it in binary"
    ):
        encode_infer_response("m", "1", None, {"y": blob})
    body, header_length = encode_infer_response("m", "1", None, {"y": blob}, binary={"y"})
    assert decode_bytes(read_response(body, header_length)["outputs"][0]["raw"]) == [b"\xff\xfe"]


def test_nested_and_flat_data_decode_alike() -> None:
    sig = signature(("x", "float32", (-1, 3)))
    nested = {"name": "x", "datatype": "FP32", "shape": [2, 3], "data": [[1, 2, 3], [4, 5, 6]]}
    flat = {**nested, "data": [1, 2, 3, 4, 5, 6]}
    a = decode_infer_request(infer_body(nested), None, sig).inputs["x"]
    b = decode_infer_request(infer_body(flat), None, sig).inputs["x"]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, np.arange(1, 7, dtype=np.float32).reshape(2, 3))


def test_mixed_json_and_binary_inputs_in_one_request() -> None:
    sig = signature(("a", "float32", (-1, 2)), ("b", "int64", (-1,)))
    a = np.array([[1.5, 2.5]], dtype=np.float32)
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "a",
                    "datatype": "FP32",
                    "shape": [1, 2],
                    "parameters": {"binary_data_size": 8},
                },
                {"name": "b", "datatype": "INT64", "shape": [1], "data": [42]},
            ]
        }
    )
    request = decode_infer_request(header + a.tobytes(), len(header), sig)
    np.testing.assert_array_equal(request.inputs["a"], a)
    assert request.inputs["b"].tolist() == [42]


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


# --- OIP: requested outputs --------------------------------------------------------------


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


# --- OIP: validation ---------------------------------------------------------------------

SIG = signature(("input", "float32", (-1, 64)))


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


def test_nan_literals_and_nulls_follow_the_nan_policy() -> None:
    sig = signature(("x", "float64", (-1,)), ("ids", "int64", (-1,)))
    # Python's json module (tritonclient, requests) writes NaN/Infinity, which is not JSON.
    literal = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP64",
                    "shape": [3],
                    "data": [1.0, float("nan"), -float("inf")],
                },
                {"name": "ids", "datatype": "INT64", "shape": [3], "data": [1, 2, 3]},
            ]
        }
    ).encode()
    assert b"NaN" in literal
    with raises_input_error("inputs[0] ('x'): row 1 holds NaN, Inf or null"):
        decode_infer_request(literal, None, sig)
    allowed = decode_infer_request(literal, None, sig, nan_policy="allow").inputs["x"]
    assert allowed[0] == 1.0 and np.isnan(allowed[1]) and allowed[2] == -np.inf
    nulls = literal.replace(b"NaN", b"null").replace(b"-Infinity", b"2")
    assert np.isnan(decode_infer_request(nulls, None, sig, nan_policy="allow").inputs["x"][1])
    with raises_input_error("inputs[1] ('ids'): INT64 needs integers; got null"):
        decode_infer_request(
            nulls.replace(b"[1, 2, 3]", b"[1, null, 3]"), None, sig, nan_policy="allow"
        )
    with raises_input_error("the request body is not valid JSON"):
        decode_infer_request(literal.replace(b"NaN", b"Nope"), None, sig)


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


def test_binary_extension_sizes_are_checked() -> None:
    row = np.zeros((1, 64), np.float32)
    body, length = binary_body(("input", "FP32", row))
    with raises_input_error("the body has 3 bytes after the last binary tensor"):
        decode_infer_request(body + b"xyz", length, SIG)
    with raises_input_error(
        "inputs[0] ('input'): binary_data_size is 256 but only 200 bytes of binary data"
    ):
        decode_infer_request(body[:-56], length, SIG)
    with raises_input_error("Inference-Header-Content-Length is 9999 but the body has"):
        decode_infer_request(body, 9999, SIG)
    with raises_input_error(
        "inputs[0] ('input'): parameters.binary_data_size is set but the request has no"
    ):
        decode_infer_request(body[:length], None, SIG)
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [1, 64],
                    "parameters": {"binary_data_size": 8},
                }
            ]
        }
    )
    with raises_input_error(
        "inputs[0] ('input'): binary_data_size is 8 bytes; shape [1, 64] of FP32 needs 256"
    ):
        decode_infer_request(header + bytes(8), len(header), SIG)


def test_binary_bytes_elements_are_checked() -> None:
    sig = signature(("text", "object", (-1,)))
    cut = struct.pack("<I", 10) + b"abc"
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": len(cut)},
                }
            ]
        }
    )
    with raises_input_error("inputs[0] ('text'): BYTES element 0 claims 10 bytes but 3 are left"):
        decode_infer_request(header + cut, len(header), sig)
    body, length = binary_body(("text", "BYTES", np.array(["a", "b"], dtype=object)))
    document = orjson.loads(body[:length])
    document["inputs"][0]["shape"] = [3]
    header = orjson.dumps(document)
    with raises_input_error(
        "inputs[0] ('text'): the binary data holds 2 BYTES elements; shape [3] needs 3"
    ):
        decode_infer_request(header + body[length:], len(header), sig)


def test_tritonclient_requests_decode_and_responses_parse() -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    sig = signature(
        ("input", "float32", (-1, 64)), ("text", "object", (-1,)), outputs=("y", "label")
    )
    x = np.random.default_rng(0).random((2, 64), dtype=np.float32)
    text = np.array([b"one", b"two"], dtype=object)
    for binary_data in (True, False):
        tensor = httpclient.InferInput("input", [2, 64], "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary_data)
        words = httpclient.InferInput("text", [2], "BYTES")
        words.set_data_from_numpy(text, binary_data=binary_data)
        outputs = [
            httpclient.InferRequestedOutput("y", binary_data=binary_data),
            httpclient.InferRequestedOutput("label", binary_data=not binary_data),
        ]
        body, length = httpclient.InferenceServerClient.generate_request_body(
            [tensor, words], outputs=outputs, request_id="7"
        )
        request = decode_infer_request(body, length, sig)
        np.testing.assert_array_equal(request.inputs["input"], x)
        assert [bytes(v, "utf-8") if isinstance(v, str) else v for v in request.inputs["text"]] == [
            b"one",
            b"two",
        ]

        results: NamedArrays = {"y": x.sum(axis=1), "label": np.array(["a", "b"], dtype=object)}
        selected = {name: results[name] for name in request.output_names}
        response, header_length = encode_infer_response(
            "m", "1", request.id, selected, binary=request.binary_outputs
        )
        parsed = httpclient.InferenceServerClient.parse_response_body(
            response, header_length=header_length
        )
        np.testing.assert_array_equal(parsed.as_numpy("y"), results["y"])
        labels = parsed.as_numpy("label").tolist()
        assert [v.decode() if isinstance(v, bytes) else v for v in labels] == ["a", "b"]
        assert parsed.get_response()["id"] == "7"


# --- /predict ----------------------------------------------------------------------------


PREDICT_SIG = signature(("x", "float32", (-1, 4)), outputs=("score",))


def test_features_is_one_row_and_instances_a_batch() -> None:
    inputs, single = decode_predict_request(b'{"features": [1, 2, 3, 4]}', PREDICT_SIG)
    assert single is True
    np.testing.assert_array_equal(inputs["x"], np.array([[1, 2, 3, 4]], np.float32))
    assert inputs["x"].dtype == np.float32
    inputs, single = decode_predict_request(
        b'{"instances": [[1, 2, 3, 4], [5, 6, 7, 8]]}', PREDICT_SIG
    )
    assert single is False and inputs["x"].shape == (2, 4)


def test_inputs_by_name_for_a_multi_input_model() -> None:
    sig = signature(("a", "float32", (-1, 2)), ("ids", "int64", (-1,)))
    inputs, single = decode_predict_request(
        b'{"inputs": {"a": [[1, 2], [3, 4]], "ids": [7, 8]}}', sig
    )
    assert single is False
    assert inputs["a"].shape == (2, 2) and inputs["ids"].tolist() == [7, 8]
    assert inputs["ids"].dtype == np.int64
    inputs, single = decode_predict_request(b'{"features": {"a": [1, 2], "ids": 7}}', sig)
    assert single is True and inputs["ids"].tolist() == [7] and inputs["a"].shape == (1, 2)
    with raises_input_error("instances: the model has inputs 'a', 'ids'; send {\"inputs\""):
        decode_predict_request(b'{"instances": [[1, 2]]}', sig)
    with raises_input_error("inputs: missing 'ids'"):
        decode_predict_request(b'{"inputs": {"a": [[1, 2]]}}', sig)
    with raises_input_error("inputs: no input named 'b'"):
        decode_predict_request(b'{"inputs": {"a": [[1, 2]], "ids": [1], "b": [1]}}', sig)
    with raises_input_error("inputs disagree on the batch size (axis 0): 'a' has 2, 'ids' has 1"):
        decode_predict_request(b'{"inputs": {"a": [[1, 2], [3, 4]], "ids": [7]}}', sig)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"feature": [1, 2, 3, 4]}', 'exactly one of "features"'),
        (b'{"features": [1, 2, 3, 4], "instances": []}', "got keys: 'features', 'instances'"),
        (
            b'{"features": [1, 2, 3]}',
            "features ('x'): shape [1, 3] does not match the signature [-1, 4]",
        ),
        (
            b'{"instances": [[1, 2, 3, 4], [1, 2]]}',
            "instances ('x'): float32 needs numbers in a flat list",
        ),
        (
            b'{"instances": [[1, 2, 3, "4"]]}',
            "instances ('x'): float32 needs numbers; got strings",
        ),
        (b'{"instances": []}', "instances ('x'): shape [0] does not match"),
        (b'{"instances": [[1, 2, 3, NaN]]}', "instances ('x'): row 0 holds NaN, Inf or null"),
        (
            b'{"instances": [[1, 2, 3, 4], [1, 2, 3, 1e39]]}',
            "instances ('x'): row 1 holds NaN, Inf or null",
        ),
    ],
)
def test_predict_errors_name_the_field(body: bytes, message: str) -> None:
    with raises_input_error(message):
        decode_predict_request(body, PREDICT_SIG)


def test_predict_with_text_and_integer_inputs() -> None:
    sig = signature(("text", "<U1", (-1,)))
    inputs, _ = decode_predict_request(b'{"instances": ["long text", "b"]}', sig)
    assert inputs["text"].tolist() == ["long text", "b"]
    with raises_input_error("instances ('ids'): int64 needs integers; got 1.5"):
        decode_predict_request(b'{"instances": [1.5]}', signature(("ids", "int64", (-1,))))


def test_predict_response_is_a_row_for_features_and_rows_for_instances() -> None:
    outputs: NamedArrays = {
        "score": np.array([0.25, 0.75], np.float32),
        "probabilities": np.array([[0.1, 0.9], [0.6, 0.4]], np.float64),
        "label": np.array(["cat", "dog"], dtype=object),
    }
    one = {name: array[:1] for name, array in outputs.items()}
    single = orjson.loads(encode_predict_response(one, True, "3", "sha256:ab", "cpu"))
    assert single == {
        "predictions": {"score": 0.25, "probabilities": [0.1, 0.9], "label": "cat"},
        "model_version": "3",
        "seal_digest": "sha256:ab",
        "device": "cpu",
    }
    batch = orjson.loads(encode_predict_response(outputs, False, "3", "sha256:ab", "cuda:0"))
    assert batch["predictions"] == {
        "score": [0.25, 0.75],
        "probabilities": [[0.1, 0.9], [0.6, 0.4]],
        "label": ["cat", "dog"],
    }
    assert batch["device"] == "cuda:0"


def test_non_native_and_strided_outputs_are_written_correctly() -> None:
    big_endian = np.array([[1.5, 2.5], [3.5, 4.5]], dtype=">f4")
    column = np.arange(6, dtype=np.int64).reshape(2, 3)[:, 1]
    body, _ = encode_infer_response("m", "1", None, {"a": big_endian, "b": column})
    a, b = orjson.loads(body)["outputs"]
    assert (a["datatype"], a["data"], b["data"]) == ("FP32", [1.5, 2.5, 3.5, 4.5], [1, 4])
    body, length = encode_infer_response("m", "1", None, {"a": big_endian}, binary=True)
    raw = read_response(body, length)["outputs"][0]["raw"]
    assert np.frombuffer(raw, "<f4").tolist() == [1.5, 2.5, 3.5, 4.5]


def test_error_body() -> None:
    assert orjson.loads(error_body('bad "x"')) == {"error": 'bad "x"'}
