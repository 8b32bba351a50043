"""JSON documents and values to numpy: the parse fallbacks and checks both APIs share."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelseal.errors import MalformedRequestError
from modelseal.serving.codecs import batch_rows, decode_infer_request, decode_predict_request
from tests.serving.codecs.helpers import SIG, raises_input_error, signature


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


DEPTH = 100_000


@pytest.mark.parametrize("literal", [b"", b"NaN, "], ids=["plain", "with-a-nan-literal"])
def test_json_nested_past_any_stack_is_a_malformed_request(literal: bytes) -> None:
    # orjson stops at its depth limit; the NaN fallback parser must not recurse into a crash.
    deep = b"[" * DEPTH + b"1" + b"]" * DEPTH
    body = b'{"inputs": [' + literal + deep + b"]}"
    with pytest.raises(MalformedRequestError, match="JSON"):
        decode_infer_request(body, None, signature(("x", "float64", (-1,))))
    with pytest.raises(MalformedRequestError, match="JSON"):
        decode_predict_request(b'{"instances": [' + literal + deep + b"]}", SIG)


@pytest.mark.parametrize(
    ("rows", "dtype"),
    [("[1, true]", "float64"), ("[false, 2.5]", "float32"), ("[[1], [true]]", "int64")],
)
def test_booleans_are_not_numbers(rows: str, dtype: str) -> None:
    sig = signature(("x", dtype, (-1,) if "[[" not in rows else (-1, 1)))
    with raises_input_error("(a boolean is not a number: send 1 or 0)"):
        decode_predict_request(f'{{"instances": {rows}}}'.encode(), sig)
    flat = rows.replace("[[", "[").replace("]]", "]").replace("], [", ", ")
    shape = [2] if "[[" not in rows else [2, 1]
    body = f'{{"inputs": [{{"name": "x", "datatype": "FP64", "shape": {shape}, "data": {flat}}}]}}'
    with raises_input_error("inputs[0] ('x'): FP64 needs numbers; got true or false"):
        decode_infer_request(body.encode(), None, signature(("x", "float64", tuple(shape))))


def test_a_boolean_elsewhere_in_the_body_leaves_numbers_alone() -> None:
    body = (
        b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [2], "data": [1, 2]}],'
        b' "parameters": {"binary_data_output": false}}'
    )
    decoded = decode_infer_request(body, None, signature(("x", "float64", (-1,))))
    assert decoded.inputs["x"].tolist() == [1.0, 2.0]
    booleans = decode_predict_request(
        b'{"instances": [true, false]}', signature(("flag", "bool", (-1,)))
    )[0]["flag"]
    assert booleans.dtype == np.bool_ and booleans.tolist() == [True, False]


def test_batch_rows_is_the_one_batch_size_check() -> None:
    assert batch_rows({"a": np.zeros((3, 2)), "b": np.zeros(3)}) == 3
    with raises_input_error("inputs disagree on the batch size (axis 0): 'a' has 3, 'b' has 2"):
        batch_rows({"a": np.zeros((3, 2)), "b": np.zeros(2)})
    with raises_input_error("input 'a' is a 0-d array; inputs need a batch axis (axis 0)"):
        batch_rows({"a": np.array(1.0)})
    with raises_input_error("the request has no inputs"):
        batch_rows({})


def test_finite_values_whose_sum_overflows_are_accepted_and_a_lone_inf_is_not() -> None:
    """Values near the dtype's limit are finite, however they add up."""
    sig = signature(("x", "float32", (-1, 2)))
    big = 3.0e38  # float32's largest is about 3.4e38: two of them overflow the sum
    body = json.dumps({"inputs": {"x": [[big, big], [big, 1.0]]}}).encode()
    inputs, _ = decode_predict_request(body, sig)
    np.testing.assert_array_equal(inputs["x"], np.array([[big, big], [big, 1.0]], np.float32))
    # 1e39 is finite in the JSON, but Inf as float32: refused under the NaN/Inf policy.
    with raises_input_error("inputs['x']: row 1 holds NaN, Inf or null"):
        decode_predict_request(body.replace(b"1.0]", b"1e39]"), sig)
