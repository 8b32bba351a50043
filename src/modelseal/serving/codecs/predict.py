"""The simple API (``POST /predict``): rows of values in, predictions by output name out.

A body is one of::

    {"features": ROW}                        one row: predictions hold one row per output
    {"instances": [ROW, ...]}                rows, for a model with exactly one input
    {"inputs": {"<input>": [ROW, ...]}}      rows by input name, for any model

A ROW is what the signature's shape without its batch axis describes: a number for shape
``[-1]``, a list for ``[-1, 64]``, nested lists beyond. For a model with several inputs,
``features`` takes ``{"<input>": ROW, ...}``. The response is::

    {"predictions": {"<output>": ROW_OR_ROWS, ...}, "model_version": "3",
     "seal_digest": "sha256:…", "device": "cpu"}

with each output's row itself after ``features`` and a list of rows otherwise. A tabular
model takes records and MLflow's formats instead (``tabular``).
"""

from __future__ import annotations

from typing import Any

import orjson

from modelseal.errors import InputError
from modelseal.oip import TEXT_KINDS
from modelseal.serving.codecs.tabular import decode_table_body
from modelseal.serving.codecs.values import (
    ValueRules,
    batch_rows,
    check_finite,
    check_rows,
    check_shape,
    load_object,
    native,
    numbers_from_json,
    numpy_name,
    object_array,
    output_texts,
    quoted,
    strings_from_json,
    to_spec_dtype,
)
from modelseal.serving.config import NanPolicy
from modelseal.types import Array, NamedArrays, Signature, TensorSpec

_USAGE = (
    'the body must be one JSON object with exactly one of "features" (one row), '
    '"instances" (a list of rows) or "inputs" (rows by input name)'
)

_Fields = dict[str, tuple[str, object]]
"""Input name -> (the field to name in errors, the JSON rows for that input)."""


def decode_predict_request(
    body: bytes,
    signature: Signature,
    *,
    nan_policy: NanPolicy = "reject",
) -> tuple[NamedArrays, bool]:
    """Decode and validate a ``POST /predict`` body (see the module docstring for its forms).

    Returns the inputs (batch on axis 0, in the signature's dtypes) and ``single``: True for
    ``{"features": ...}``, which is a batch of one whose predictions are written as a row
    rather than a list of rows. Validation is that of ``decode_infer_request``, values
    taken against the signature's dtype. Raises ``InputError`` naming the field otherwise.
    """
    document = load_object(body)
    if signature.table is not None:
        return decode_table_body(document, signature.table)
    return decode_predict_document(document, signature, ValueRules.for_body(body, nan_policy))


def decode_predict_document(
    document: dict[str, Any], signature: Signature, rules: ValueRules
) -> tuple[NamedArrays, bool]:
    """``decode_predict_request`` for a tensor model's body, already parsed."""
    if len(document) != 1:
        raise InputError(f"{_USAGE}; got keys: {quoted(document)}")
    ((key, value),) = document.items()
    if key == "features":
        fields = _features_fields(value, signature)
    elif key == "instances":
        fields = _instances_fields(value, signature)
    elif key == "inputs":
        fields = _inputs_fields(value, signature)
    else:
        raise InputError(f"{_USAGE}; got key {key!r}")
    inputs = {
        name: _rows_array(rows, signature.input(name), field, rules)
        for name, (field, rows) in fields.items()
    }
    batch_rows(inputs)
    return inputs, key == "features"


def encode_predict_response(
    outputs: NamedArrays,
    single: bool,
    model_version: str,
    seal_digest: str,
    device: str,
) -> bytes:
    """Encode a ``/predict`` response: ``{"predictions": {output: ...}, "model_version",
    "seal_digest", "device"}``.

    ``predictions`` is keyed by output name even for a single-output model, so clients read
    ``predictions["<output>"]`` whatever the model. With ``single`` (the request used
    ``features``) each output is its first row itself (a number for a 1-D output, a list for
    a 2-D one); otherwise it is the list of rows.
    """
    predictions = {name: prediction(array, name, single) for name, array in outputs.items()}
    response = {
        "predictions": predictions,
        "model_version": model_version,
        "seal_digest": seal_digest,
        "device": device,
    }
    return orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)


def _features_fields(value: object, signature: Signature) -> _Fields:
    names = signature.input_names
    if len(names) == 1:
        return {names[0]: (f"features ({names[0]!r})", [value])}
    if not isinstance(value, dict):
        raise InputError(
            f"features: the model has inputs {quoted(names)}; send "
            '{"features": {"<input>": row, ...}}'
        )
    _check_input_names(value, signature, "features")
    return {name: (f"features[{name!r}]", [row]) for name, row in value.items()}


def _instances_fields(value: object, signature: Signature) -> _Fields:
    names = signature.input_names
    if len(names) != 1:
        raise InputError(
            f"instances: the model has inputs {quoted(names)}; send "
            '{"inputs": {"<input>": [row, ...], ...}} instead'
        )
    return {names[0]: (f"instances ({names[0]!r})", value)}


def _inputs_fields(value: object, signature: Signature) -> _Fields:
    if not isinstance(value, dict):
        raise InputError('inputs: must be an object {"<input>": [row, ...], ...}')
    _check_input_names(value, signature, "inputs")
    return {name: (f"inputs[{name!r}]", rows) for name, rows in value.items()}


def _check_input_names(value: dict[str, Any], signature: Signature, field: str) -> None:
    names = signature.input_names
    for name in value:
        if name not in names:
            raise InputError(
                f"{field}: no input named {name!r}; the signature has: {quoted(names)}"
            )
    missing = [name for name in names if name not in value]
    if missing:
        raise InputError(f"{field}: missing {quoted(missing)}; the signature has: {quoted(names)}")


def _rows_array(rows: object, spec: TensorSpec, field: str, rules: ValueRules) -> Array:
    if not isinstance(rows, list):
        raise InputError(f"{field}: must be a list of rows")
    expected = spec.numpy_dtype
    if expected.kind in TEXT_KINDS:
        array = to_spec_dtype(strings_from_json(rows, field), spec, field)
    else:
        array = numbers_from_json(rows, expected, numpy_name(expected), field, rules)
    check_shape(array.shape, spec, field)
    check_rows(array, field)
    check_finite(array, field, rules.nan_policy)
    return array


def prediction(array: Array, name: str, single: bool) -> Any:
    """An output as JSON values: its rows, or with ``single`` its first row itself."""
    if array.dtype.kind in TEXT_KINDS:
        values: Any = object_array(output_texts(array, name)).reshape(array.shape).tolist()
    else:
        values = native(array)
    if not single or array.ndim == 0:
        return values
    return values[0]
