"""The binary tensor data extension: raw tensors after the JSON part, as tritonclient sends them."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from modelseal.serving.codecs import decode_infer_request, encode_infer_response
from modelseal.types import NamedArrays
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
