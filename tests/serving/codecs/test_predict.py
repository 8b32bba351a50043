"""The simple /predict API: rows in, predictions by output name out."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from modelseal.serving.codecs import decode_predict_request, encode_predict_response
from modelseal.types import NamedArrays
from tests.serving.codecs.helpers import raises_input_error, signature

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
