"""Open Inference Protocol v2 infer requests and responses (``POST /v2/models/{name}/infer``).

::

    {"id": "7", "parameters": {"binary_data_output": false},
     "inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 3],
                 "data": [1, 2, 3, 4, 5, 6]}],
     "outputs": [{"name": "output", "parameters": {"binary_data": false}}]}

``data`` may be flat (row-major) or nested; ``binary`` reads ``binary_data_size`` instead.
A tabular model takes one input per column (``tabular``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modelseal.errors import InputError
from modelseal.oip import TEXT_KINDS, casts_to, datatype_of, dtype_of
from modelseal.serving.codecs.binary import BinaryReader, binary_data_size, json_part, tensor_bytes
from modelseal.serving.codecs.outputs import parameters_of, requested_outputs
from modelseal.serving.codecs.tabular import decode_table_inputs
from modelseal.serving.codecs.values import (
    ValueRules,
    batch_rows,
    check_finite,
    check_rows,
    check_shape,
    label,
    load_object,
    native,
    numbers_from_json,
    output_texts,
    quoted,
    strings_from_json,
    to_spec_dtype,
)
from modelseal.serving.config import NanPolicy
from modelseal.types import Array, NamedArrays, Signature, TensorSpec


@dataclass(frozen=True)
class InferRequest:
    """One decoded ``POST .../infer`` request, validated against the model's signature."""

    id: str | None
    inputs: NamedArrays
    """Arrays named and typed as in the signature, batch on axis 0."""
    output_names: tuple[str, ...]
    """The outputs to return, in order: those the request named, else every signature output."""
    binary_outputs: frozenset[str]
    """The outputs to return as raw bytes (the binary tensor data extension)."""
    parameters: dict[str, Any]
    """The request-level ``parameters`` as sent (empty when none)."""


def decode_infer_request(
    body: bytes,
    header_length: int | None,
    signature: Signature,
    *,
    nan_policy: NanPolicy = "reject",
) -> InferRequest:
    """Decode and validate an Open Inference Protocol v2 infer request body.

    ``header_length`` is the ``Inference-Header-Content-Length`` header (None when absent).
    Every signature input must come, once, in a datatype that casts to the signature's
    (``oip.casts_to``), with its rank and fixed dims, integers in range, one batch size of at
    least one row, and finite floats unless ``nan_policy="allow"``. Arrays come back in the
    signature's dtypes; anything else raises ``InputError`` naming the field.
    """
    document = load_object(json_part(body, header_length))
    reader = None if header_length is None else BinaryReader(body, header_length)
    rules = ValueRules.for_body(body, nan_policy)
    if signature.table is None:
        inputs = _decode_inputs(document.get("inputs"), signature, reader, rules)
    else:
        inputs = decode_table_inputs(document.get("inputs"), signature.table, reader)
    if reader is not None:
        reader.finish()
    batch_rows(inputs)
    parameters = parameters_of(document.get("parameters"), "parameters")
    output_names, binary_outputs = requested_outputs(document.get("outputs"), parameters, signature)
    return InferRequest(
        id=_request_id(document.get("id")),
        inputs=inputs,
        output_names=output_names,
        binary_outputs=binary_outputs,
        parameters=parameters,
    )


def encode_infer_response(
    model_name: str,
    model_version: str | None,
    request_id: str | None,
    outputs: NamedArrays,
    binary: AbstractSet[str] | bool = False,
    parameters: Mapping[str, Any] | None = None,
) -> tuple[bytes, int | None]:
    """Encode an Open Inference Protocol v2 infer response.

    Writes every array of ``outputs`` in its order (select ``InferRequest.output_names``
    first). Outputs named in ``binary`` (all of them when ``binary`` is True) get
    ``"parameters": {"binary_data_size": N}`` and their bytes appended after the JSON.
    Returns the body and, when any output is binary, the length of the JSON part for the
    ``Inference-Header-Content-Length`` response header (None otherwise). Raises
    ``InputError`` when a ``BYTES`` output holding non-UTF-8 bytes is asked for as JSON.
    """
    tensors: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, array in outputs.items():
        tensor: dict[str, Any] = {
            "name": name,
            "datatype": datatype_of(array.dtype),
            "shape": list(array.shape),
        }
        if binary is True or (not isinstance(binary, bool) and name in binary):
            raw = tensor_bytes(array)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        elif array.dtype.kind in TEXT_KINDS:
            tensor["data"] = output_texts(array, name)
        else:
            tensor["data"] = native(array).reshape(-1)
        tensors.append(tensor)
    response: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        response["model_version"] = model_version
    if request_id is not None:
        response["id"] = request_id
    if parameters:
        response["parameters"] = dict(parameters)
    response["outputs"] = tensors
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return b"".join((header, *chunks)), len(header)


def _decode_inputs(
    items: object, signature: Signature, reader: BinaryReader | None, rules: ValueRules
) -> NamedArrays:
    if not isinstance(items, list) or not items:
        raise InputError("inputs: must be a non-empty list of tensors")
    specs = {spec.name: spec for spec in signature.inputs}
    arrays: NamedArrays = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(f"inputs[{index}]: must be an object with name, datatype, shape")
        name = item.get("name")
        if not isinstance(name, str):
            raise InputError(f"inputs[{index}]: 'name' must be a string")
        field = f"inputs[{index}] ({name!r})"
        spec = specs.get(name)
        if spec is None:
            raise InputError(
                f"{field}: no input named {name!r}; the signature has: {quoted(specs)}"
            )
        if name in arrays:
            raise InputError(f"{field}: given twice")
        arrays[name] = _decode_tensor(item, spec, field, reader, rules)
    missing = [name for name in specs if name not in arrays]
    if missing:
        raise InputError(f"inputs: missing {quoted(missing)}; the signature has: {quoted(specs)}")
    return arrays


def _decode_tensor(
    item: dict[str, Any],
    spec: TensorSpec,
    field: str,
    reader: BinaryReader | None,
    rules: ValueRules,
) -> Array:
    datatype = item.get("datatype")
    declared = _declared_dtype(datatype, spec, field)
    shape = _shape(item.get("shape"), field)
    check_shape(shape, spec, field)
    size = binary_data_size(parameters_of(item.get("parameters"), f"{field} parameters"), field)
    if size is None:
        if "data" not in item:
            raise InputError(f"{field}: 'data' is missing")
        array = _array_from_json(item["data"], declared, str(datatype), shape, field, rules)
    elif "data" in item:
        raise InputError(f"{field}: has both 'data' and parameters.binary_data_size")
    elif reader is None:
        raise InputError(
            f"{field}: parameters.binary_data_size is set but the request has no "
            "Inference-Header-Content-Length header"
        )
    else:
        array = reader.tensor(size, declared, shape, field)
    array = to_spec_dtype(array, spec, field)
    check_rows(array, field)
    check_finite(array, field, rules.nan_policy)
    return array


def _array_from_json(
    data: object,
    dtype: np.dtype[Any],
    datatype: str,
    shape: tuple[int, ...],
    field: str,
    rules: ValueRules,
) -> Array:
    if not isinstance(data, list):
        raise InputError(f"{field}: 'data' must be a list")
    if dtype.kind == "O":
        array = strings_from_json(data, field)
    else:
        array = numbers_from_json(data, dtype, datatype, field, rules)
    count = math.prod(shape)
    if array.size != count:
        raise InputError(
            f"{field}: 'data' has {array.size} elements; shape {list(shape)} needs {count}"
        )
    return array.reshape(shape)


def _declared_dtype(datatype: object, spec: TensorSpec, field: str) -> np.dtype[Any]:
    if not isinstance(datatype, str):
        raise InputError(f"{field}: 'datatype' must be a string such as FP32")
    try:
        declared = dtype_of(datatype)
    except InputError as exc:
        raise InputError(f"{field}: {exc}") from None
    expected = spec.numpy_dtype
    if not casts_to(declared, expected):
        raise InputError(
            f"{field}: datatype does not match the signature: expected {label(expected)}, "
            f"got {datatype}"
        )
    return declared


def _shape(value: object, field: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(dim) is int and dim >= 0 for dim in value):
        raise InputError(f"{field}: 'shape' must be a list of non-negative integers")
    return tuple(value)


def _request_id(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InputError("id: must be a string")
