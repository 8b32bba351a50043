"""Request bodies to named numpy arrays and back: Open Inference Protocol v2 and ``/predict``.

For a small model the HTTP/JSON path is the whole cost of a request, so this module parses
with orjson straight into numpy and writes numpy straight back out with orjson (no pydantic,
no per-element Python loops for numbers). Every problem with a request raises
:class:`~modelseal.errors.InputError` whose message names the field, what the signature
expects and what came.

Open Inference Protocol v2 (``POST /v2/models/{name}/infer``)::

    {"id": "7", "parameters": {"binary_data_output": false},
     "inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 3],
                 "data": [1, 2, 3, 4, 5, 6]}],
     "outputs": [{"name": "output", "parameters": {"binary_data": false}}]}

``data`` may be flat (row-major) or nested. With the binary tensor data extension the HTTP
header ``Inference-Header-Content-Length`` gives the length of the JSON part; an input with
``parameters.binary_data_size`` instead of ``data`` takes that many bytes of the rest of the
body, in input order: raw little-endian elements, or for ``BYTES`` each element as a 4-byte
little-endian length followed by its bytes.

Simple API (``POST /predict``), one of::

    {"features": ROW}                        one row: predictions hold one row per output
    {"instances": [ROW, ...]}                rows, for a model with exactly one input
    {"inputs": {"<input>": [ROW, ...]}}      rows by input name, for any model

A ROW is what the signature's shape without its batch axis describes: a number for shape
``[-1]``, a list for ``[-1, 64]``, nested lists beyond. For a model with several inputs,
``features`` takes ``{"<input>": ROW, ...}``. The response is::

    {"predictions": {"<output>": ROW_OR_ROWS, ...}, "model_version": "3",
     "seal_digest": "sha256:…", "device": "cpu"}

with each output's row itself after ``features`` and a list of rows otherwise.

JSON has no NaN: in a floating-point input, ``null`` and the ``NaN``/``Infinity`` literals
that Python's ``json`` writes are read as NaN/Inf and the NaN policy decides about them;
non-finite output values are written as ``null``. ``BYTES`` inputs reach a model whose
signature says ``object`` as sent (``str`` from JSON, ``bytes`` from binary), one that says
``str``/``bytes`` as that type, never cut to the signature's fixed width.
"""

from __future__ import annotations

import functools
import json
import math
import struct
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson

from modelseal.errors import InputError, MalformedRequestError
from modelseal.oip import DTYPES as _DTYPES
from modelseal.oip import TEXT_KINDS, datatype_of
from modelseal.types import FREE_DIM, Array, NamedArrays, Signature, TensorSpec

NanPolicy = Literal["reject", "allow"]
"""What to do with NaN or Inf in a floating-point input: reject the request, or pass it on."""

_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_LENGTH = struct.Struct("<I")

_NUMERIC_KINDS = "iuf"

# Which kinds of array np.asarray may infer from JSON values, for each kind of target dtype.
_JSON_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}
_NEEDS = {"b": "booleans", "i": "integers", "u": "integers", "f": "numbers"}
_INFERRED = {"b": "booleans", "i": "integers", "u": "integers", "U": "strings"}
_ACCEPTS: dict[str, Callable[[object], bool]] = {
    "b": lambda value: type(value) is bool,
    "i": lambda value: type(value) is int,
    "u": lambda value: type(value) is int,
    # JSON has no NaN: null stands for it (pandas and others write NaN as null).
    "f": lambda value: value is None or type(value) in (int, float),
}

_PREDICT_USAGE = (
    'the body must be one JSON object with exactly one of "features" (one row), '
    '"instances" (a list of rows) or "inputs" (rows by input name)'
)


def dtype_of(datatype: str) -> np.dtype[Any]:
    """The numpy dtype of an Open Inference Protocol datatype (``FP32`` -> ``float32``).

    ``BYTES`` is ``object`` (elements are ``str`` or ``bytes``). Raises ``InputError`` for a
    datatype this server does not support.
    """
    dtype = _DTYPES.get(datatype)
    if dtype is None:
        raise InputError(f"datatype {datatype!r} is not supported; use one of {', '.join(_DTYPES)}")
    return dtype


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

    ``header_length`` is the ``Inference-Header-Content-Length`` HTTP header (None when
    absent): the body's first ``header_length`` bytes are JSON and the rest is binary
    tensor data. Each input must be named in the signature, every signature input must come,
    the datatype must be the signature's or a numeric one that casts to it within its kind
    (``FP64`` for ``FP32``, ``INT32`` for ``INT64``, integers for floats; never floats for
    integers), the shape must match the signature's rank and fixed dims, integers must fit the
    signature's type, all inputs must have the same batch size (axis 0, at least one row),
    and with ``nan_policy="reject"`` floats must be finite. Arrays come back in the
    signature's dtype. Raises ``InputError`` naming the field otherwise.
    """
    document = _load_object(_json_part(body, header_length))
    reader = None if header_length is None else _BinaryReader(body, header_length)
    inputs = _decode_inputs(document.get("inputs"), signature, reader, nan_policy)
    if reader is not None:
        reader.finish()
    _check_batch_sizes(inputs)
    parameters = _parameters(document.get("parameters"), "parameters")
    output_names, binary_outputs = _requested_outputs(
        document.get("outputs"), parameters, signature
    )
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
            raw = _tensor_bytes(array)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = _flat_json_values(array, name)
        tensors.append(tensor)
    response: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        response["model_version"] = model_version
    if request_id is not None:
        response["id"] = request_id
    if parameters:
        response["parameters"] = dict(parameters)
    response["outputs"] = tensors
    header = orjson.dumps(response, option=_DUMP_OPTIONS)
    if not chunks:
        return header, None
    return b"".join((header, *chunks)), len(header)


def decode_predict_request(
    body: bytes,
    signature: Signature,
    *,
    nan_policy: NanPolicy = "reject",
) -> tuple[NamedArrays, bool]:
    """Decode and validate a ``POST /predict`` body (see the module docstring for its forms).

    Returns the inputs (batch on axis 0, in the signature's dtypes) and ``single``: True for
    ``{"features": ...}``, which is a batch of one whose predictions are written as a row
    rather than a list of rows. Validation is that of :func:`decode_infer_request`, values
    taken against the signature's dtype. Raises ``InputError`` naming the field otherwise.
    """
    document = _load_object(body)
    if len(document) != 1:
        raise InputError(f"{_PREDICT_USAGE}; got keys: {_quoted(document)}")
    ((key, value),) = document.items()
    if key == "features":
        fields = _features_fields(value, signature)
    elif key == "instances":
        fields = _instances_fields(value, signature)
    elif key == "inputs":
        fields = _inputs_fields(value, signature)
    else:
        raise InputError(f"{_PREDICT_USAGE}; got key {key!r}")
    inputs = {
        name: _rows_array(rows, signature.input(name), field, nan_policy)
        for name, (field, rows) in fields.items()
    }
    _check_batch_sizes(inputs)
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
    predictions = {name: _prediction(array, name, single) for name, array in outputs.items()}
    response = {
        "predictions": predictions,
        "model_version": model_version,
        "seal_digest": seal_digest,
        "device": device,
    }
    return orjson.dumps(response, option=_DUMP_OPTIONS)


def error_body(message: str) -> bytes:
    """The JSON body of every error response: ``{"error": message}``."""
    return orjson.dumps({"error": message})


# --- parsing -----------------------------------------------------------------------------


def _json_part(body: bytes, header_length: int | None) -> bytes | memoryview:
    if header_length is None:
        return body
    if not 0 < header_length <= len(body):
        raise MalformedRequestError(
            f"Inference-Header-Content-Length is {header_length} but the body has {len(body)} bytes"
        )
    return memoryview(body)[:header_length]


def _load_object(data: bytes | memoryview) -> dict[str, Any]:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        document = _load_with_non_finite(data, exc)
    if not isinstance(document, dict):
        raise MalformedRequestError("the request body must be a JSON object")
    return document


def _load_with_non_finite(data: bytes | memoryview, error: orjson.JSONDecodeError) -> Any:
    # Python's json.dumps (tritonclient, requests) writes NaN and Infinity, which are not
    # JSON and which orjson refuses; the standard library reads them, so the NaN policy,
    # not a parse error, decides about them. Only failed parses pay for this.
    try:
        return json.loads(bytes(data))
    except ValueError:
        raise MalformedRequestError(f"the request body is not valid JSON: {error}") from None


def _request_id(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InputError("id: must be a string")


def _parameters(value: object, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{field}: must be a JSON object")
    return value


def _flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{field}: must be true or false")
    return value


# --- OIP inputs --------------------------------------------------------------------------


def _decode_inputs(
    items: object,
    signature: Signature,
    reader: _BinaryReader | None,
    nan_policy: NanPolicy,
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
                f"{field}: no input named {name!r}; the signature has: {_quoted(specs)}"
            )
        if name in arrays:
            raise InputError(f"{field}: given twice")
        arrays[name] = _decode_tensor(item, spec, field, reader, nan_policy)
    missing = [name for name in specs if name not in arrays]
    if missing:
        raise InputError(f"inputs: missing {_quoted(missing)}; the signature has: {_quoted(specs)}")
    return arrays


def _decode_tensor(
    item: dict[str, Any],
    spec: TensorSpec,
    field: str,
    reader: _BinaryReader | None,
    nan_policy: NanPolicy,
) -> Array:
    datatype = item.get("datatype")
    declared = _declared_dtype(datatype, spec, field)
    shape = _shape(item.get("shape"), field)
    _check_shape(shape, spec, field)
    size = _binary_data_size(item, field)
    if size is None:
        if "data" not in item:
            raise InputError(f"{field}: 'data' is missing")
        array = _array_from_json(item["data"], declared, str(datatype), shape, field)
    elif "data" in item:
        raise InputError(f"{field}: has both 'data' and parameters.binary_data_size")
    elif reader is None:
        raise InputError(
            f"{field}: parameters.binary_data_size is set but the request has no "
            "Inference-Header-Content-Length header"
        )
    else:
        array = reader.tensor(size, declared, shape, field)
    array = _to_spec_dtype(array, spec, field)
    _check_rows(array, field)
    _check_finite(array, field, nan_policy)
    return array


def _declared_dtype(datatype: object, spec: TensorSpec, field: str) -> np.dtype[Any]:
    if not isinstance(datatype, str):
        raise InputError(f"{field}: 'datatype' must be a string such as FP32")
    try:
        declared = dtype_of(datatype)
    except InputError as exc:
        raise InputError(f"{field}: {exc}") from None
    expected = spec.numpy_dtype
    if not _accepts(declared, expected):
        raise InputError(
            f"{field}: datatype does not match the signature: expected {_label(expected)}, "
            f"got {datatype}"
        )
    return declared


def _accepts(declared: np.dtype[Any], expected: np.dtype[Any]) -> bool:
    if declared.kind == "O":
        return expected.kind in TEXT_KINDS
    if declared == expected:
        return True
    return (
        declared.kind in _NUMERIC_KINDS
        and expected.kind in _NUMERIC_KINDS
        and bool(np.can_cast(declared, expected, "same_kind"))
    )


def _shape(value: object, field: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(dim) is int and dim >= 0 for dim in value):
        raise InputError(f"{field}: 'shape' must be a list of non-negative integers")
    return tuple(value)


def _binary_data_size(item: dict[str, Any], field: str) -> int | None:
    parameters = _parameters(item.get("parameters"), f"{field} parameters")
    if "shared_memory_region" in parameters:
        raise InputError(f"{field}: the shared memory extension is not supported")
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise InputError(f"{field}: parameters.binary_data_size must be a non-negative integer")
    return size


class _BinaryReader:
    """The binary tensor data after the JSON part of a body, taken in input order."""

    def __init__(self, body: bytes, start: int) -> None:
        self._view = memoryview(body)
        self._position = start

    def tensor(self, size: int, dtype: np.dtype[Any], shape: tuple[int, ...], field: str) -> Array:
        chunk = self._take(size, field)
        if dtype.kind == "O":
            return _bytes_tensor(chunk, shape, field)
        return _fixed_tensor(chunk, dtype, shape, field)

    def finish(self) -> None:
        left = len(self._view) - self._position
        if left:
            raise InputError(
                f"the body has {left} bytes after the last binary tensor; the inputs' "
                "binary_data_size values must add up to the body after the JSON part"
            )

    def _take(self, size: int, field: str) -> memoryview:
        end = self._position + size
        if end > len(self._view):
            left = len(self._view) - self._position
            raise InputError(
                f"{field}: binary_data_size is {size} but only {left} bytes of binary data "
                "are left in the body"
            )
        chunk = self._view[self._position : end]
        self._position = end
        return chunk


def _fixed_tensor(
    chunk: memoryview, dtype: np.dtype[Any], shape: tuple[int, ...], field: str
) -> Array:
    count = math.prod(shape)
    needed = count * dtype.itemsize
    if len(chunk) != needed:
        raise InputError(
            f"{field}: binary_data_size is {len(chunk)} bytes; shape {list(shape)} of "
            f"{datatype_of(dtype)} needs {needed}"
        )
    # astype copies: the array is then aligned, writable (a model may work in place) and
    # does not keep the whole request body alive.
    little_endian = np.frombuffer(chunk, dtype=dtype.newbyteorder("<"))
    return little_endian.astype(dtype).reshape(shape)


def _bytes_tensor(chunk: memoryview, shape: tuple[int, ...], field: str) -> Array:
    elements: list[bytes] = []
    position, end = 0, len(chunk)
    while position < end:
        if position + _LENGTH.size > end:
            raise InputError(f"{field}: BYTES element {len(elements)} has a cut-off length prefix")
        (length,) = _LENGTH.unpack_from(chunk, position)
        position += _LENGTH.size
        if position + length > end:
            raise InputError(
                f"{field}: BYTES element {len(elements)} claims {length} bytes but "
                f"{end - position} are left"
            )
        elements.append(bytes(chunk[position : position + length]))
        position += length
    count = math.prod(shape)
    if len(elements) != count:
        raise InputError(
            f"{field}: the binary data holds {len(elements)} BYTES elements; shape "
            f"{list(shape)} needs {count}"
        )
    return _object_array(elements).reshape(shape)


def _requested_outputs(
    outputs: object, parameters: dict[str, Any], signature: Signature
) -> tuple[tuple[str, ...], frozenset[str]]:
    all_binary = _flag(parameters.get("binary_data_output", False), "parameters.binary_data_output")
    if outputs is None or outputs == []:
        names = tuple(signature.output_names)
        return names, frozenset(names) if all_binary else frozenset()
    if not isinstance(outputs, list):
        raise InputError('outputs: must be a list of {"name": ...} objects')
    known = signature.output_names
    chosen: list[str] = []
    binary: set[str] = set()
    for index, item in enumerate(outputs):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InputError(f"outputs[{index}]: must be an object with a string 'name'")
        name: str = item["name"]
        field = f"outputs[{index}] ({name!r})"
        if name not in known:
            raise InputError(
                f"{field}: no output named {name!r}; the signature has: {_quoted(known)}"
            )
        if name in chosen:
            raise InputError(f"{field}: asked for twice")
        output_parameters = _parameters(item.get("parameters"), f"{field} parameters")
        if output_parameters.get("classification"):
            raise InputError(f"{field}: the classification extension is not supported")
        wants_binary = output_parameters.get("binary_data", all_binary)
        if _flag(wants_binary, f"{field} parameters.binary_data"):
            binary.add(name)
        chosen.append(name)
    return tuple(chosen), frozenset(binary)


# --- /predict inputs ---------------------------------------------------------------------

_Fields = dict[str, tuple[str, object]]
"""Input name -> (the field to name in errors, the JSON rows for that input)."""


def _features_fields(value: object, signature: Signature) -> _Fields:
    names = signature.input_names
    if len(names) == 1:
        return {names[0]: (f"features ({names[0]!r})", [value])}
    if not isinstance(value, dict):
        raise InputError(
            f"features: the model has inputs {_quoted(names)}; send "
            '{"features": {"<input>": row, ...}}'
        )
    _check_input_names(value, signature, "features")
    return {name: (f"features[{name!r}]", [row]) for name, row in value.items()}


def _instances_fields(value: object, signature: Signature) -> _Fields:
    names = signature.input_names
    if len(names) != 1:
        raise InputError(
            f"instances: the model has inputs {_quoted(names)}; send "
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
                f"{field}: no input named {name!r}; the signature has: {_quoted(names)}"
            )
    missing = [name for name in names if name not in value]
    if missing:
        raise InputError(
            f"{field}: missing {_quoted(missing)}; the signature has: {_quoted(names)}"
        )


def _rows_array(rows: object, spec: TensorSpec, field: str, nan_policy: NanPolicy) -> Array:
    if not isinstance(rows, list):
        raise InputError(f"{field}: must be a list of rows")
    expected = spec.numpy_dtype
    if expected.kind in TEXT_KINDS:
        array = _to_spec_dtype(_strings_from_json(rows, field), spec, field)
    else:
        array = _numbers_from_json(rows, expected, _numpy_name(expected), field)
    _check_shape(array.shape, spec, field)
    _check_rows(array, field)
    _check_finite(array, field, nan_policy)
    return array


# --- values and checks shared by both APIs -----------------------------------------------


def _array_from_json(
    data: object, dtype: np.dtype[Any], label: str, shape: tuple[int, ...], field: str
) -> Array:
    if not isinstance(data, list):
        raise InputError(f"{field}: 'data' must be a list")
    if dtype.kind == "O":
        array = _strings_from_json(data, field)
    else:
        array = _numbers_from_json(data, dtype, label, field)
    count = math.prod(shape)
    if array.size != count:
        raise InputError(
            f"{field}: 'data' has {array.size} elements; shape {list(shape)} needs {count}"
        )
    return array.reshape(shape)


def _numbers_from_json(data: list[Any], dtype: np.dtype[Any], label: str, field: str) -> Array:
    try:
        raw = np.asarray(data)
    except (ValueError, OverflowError):
        return _numbers_from_objects(data, dtype, label, field)
    kind = raw.dtype.kind
    if raw.size == 0 or kind in _JSON_KINDS[dtype.kind]:
        return _cast(raw, dtype, label, field)
    if kind in _INFERRED:
        raise InputError(f"{field}: {label} needs {_NEEDS[dtype.kind]}; got {_INFERRED[kind]}")
    # Floats for an integer type, nulls, huge integers or a mix: look at each value.
    return _numbers_from_objects(data, dtype, label, field)


def _numbers_from_objects(data: list[Any], dtype: np.dtype[Any], label: str, field: str) -> Array:
    """The slow, exact path for values np.asarray cannot take as they are."""
    needs = _NEEDS[dtype.kind]
    ragged = f"{field}: {label} needs {needs} in a flat list or in nested lists of equal length"
    try:
        objects = np.array(data, dtype=object)
    except ValueError:
        raise InputError(ragged) from None
    values = objects.reshape(-1).tolist()
    accepts = _ACCEPTS[dtype.kind]
    for value in values:
        if isinstance(value, list):
            raise InputError(ragged)
        if not accepts(value):
            raise InputError(f"{field}: {label} needs {needs}; got {orjson.dumps(value).decode()}")
    if dtype.kind in "iu":
        _check_integer_range(values, dtype, label, field)
        return np.array(values, dtype=dtype).reshape(objects.shape)
    try:
        floats = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    except OverflowError:
        raise InputError(f"{field}: a value is out of range for {label}") from None
    return _cast(floats.reshape(objects.shape), dtype, label, field)


def _strings_from_json(data: list[Any], field: str) -> Array:
    message = f"{field}: the values must be strings in a flat list or nested lists of equal length"
    try:
        array = np.array(data, dtype=object)
    except ValueError:
        raise InputError(message) from None
    # A ragged list leaves lists as elements of a 1-D object array: caught here too.
    if not all(isinstance(value, str) for value in array.flat):
        raise InputError(message)
    return array


def _cast(array: Array, dtype: np.dtype[Any], label: str, field: str) -> Array:
    if array.dtype == dtype:
        return array
    if dtype.kind in "iu" and not np.can_cast(array.dtype, dtype, "safe"):
        _check_integer_range(array, dtype, label, field)
    if dtype.kind != "f" or dtype.itemsize >= array.dtype.itemsize:
        return array.astype(dtype)
    # A narrower float may overflow to inf: the NaN/Inf policy decides about that, not numpy.
    with np.errstate(over="ignore"):
        return array.astype(dtype)


def _check_integer_range(
    values: Array | list[int], dtype: np.dtype[Any], label: str, field: str
) -> None:
    if isinstance(values, list):
        if not values:
            return
        low, high = min(values), max(values)
    else:
        if values.size == 0:
            return
        low, high = int(values.min()), int(values.max())
    limits = np.iinfo(dtype)
    if low < limits.min or high > limits.max:
        bad = low if low < limits.min else high
        raise InputError(
            f"{field}: value {bad} is out of range for {label} [{limits.min}, {limits.max}]"
        )


def _to_spec_dtype(array: Array, spec: TensorSpec, field: str) -> Array:
    expected = spec.numpy_dtype
    if expected.kind == "O":
        return array
    if expected.kind == "U":
        return _text_array([_as_text(value, field) for value in array.flat], np.str_, array)
    if expected.kind == "S":
        return _text_array([_as_bytes(value) for value in array.flat], np.bytes_, array)
    return _cast(array, expected, _label(expected), field)


def _text_array(values: list[Any], kind: type[np.generic], like: Array) -> Array:
    # The array takes the width of its longest element, never the signature's fixed width,
    # so that no string is cut short.
    return np.array(values, dtype=kind).reshape(like.shape)


def _check_shape(shape: tuple[int, ...], spec: TensorSpec, field: str) -> None:
    if len(shape) == len(spec.shape) and all(
        want in (FREE_DIM, got) for got, want in zip(shape, spec.shape, strict=True)
    ):
        return
    raise InputError(
        f"{field}: shape {list(shape)} does not match the signature {list(spec.shape)}"
    )


def _check_rows(array: Array, field: str) -> None:
    if array.ndim and array.shape[0] == 0:
        raise InputError(f"{field}: the batch is empty (axis 0 has size 0); send at least one row")


def _check_finite(array: Array, field: str, nan_policy: NanPolicy) -> None:
    if nan_policy == "allow" or array.dtype.kind not in "fc":
        return
    finite = np.isfinite(array)
    if finite.all():
        return
    if array.ndim == 0:
        raise InputError(f"{field}: the value is NaN, Inf or null; send finite values")
    row = int(np.argmin(finite.reshape(array.shape[0], -1).all(axis=1)))
    raise InputError(
        f"{field}: row {row} holds NaN, Inf or null; this server rejects non-finite inputs "
        "(send finite values)"
    )


def _check_batch_sizes(arrays: NamedArrays) -> None:
    rows = {name: array.shape[0] for name, array in arrays.items() if array.ndim}
    if len(set(rows.values())) > 1:
        detail = ", ".join(f"{name!r} has {count}" for name, count in rows.items())
        raise InputError(f"inputs disagree on the batch size (axis 0): {detail}")


@functools.cache
def _numpy_name(dtype: np.dtype[Any]) -> str:
    # Cached: str(dtype) runs Python code in numpy, and this is on every request's path.
    return str(dtype)


@functools.cache
def _label(dtype: np.dtype[Any]) -> str:
    try:
        return datatype_of(dtype)
    except ValueError:
        return str(dtype)


def _quoted(names: Mapping[str, Any] | list[str]) -> str:
    return ", ".join(repr(name) for name in names) or "none"


def _object_array(values: list[Any]) -> Array:
    # np.array(values, dtype=object) would turn equal-length sequences into a 2-D array.
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _as_text(value: object, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise InputError(f"{field}: holds bytes that are not UTF-8 text") from None
    return str(value)


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return (value if isinstance(value, str) else str(value)).encode()


# --- outputs -----------------------------------------------------------------------------


def _flat_json_values(array: Array, name: str) -> Array | list[str]:
    if array.dtype.kind in TEXT_KINDS:
        return _output_texts(array, name)
    return _native(array).reshape(-1)


def _prediction(array: Array, name: str, single: bool) -> Any:
    if array.dtype.kind in TEXT_KINDS:
        values: Any = _object_array(_output_texts(array, name)).reshape(array.shape).tolist()
    else:
        values = _native(array)
    if not single or array.ndim == 0:
        return values
    return values[0]


def _output_texts(array: Array, name: str) -> list[str]:
    field = f"output {name!r}"
    try:
        return [_as_text(value, field) for value in array.reshape(-1).tolist()]
    except InputError as exc:
        raise InputError(f"{exc}; ask for it in binary (parameters.binary_data: true)") from None


def _native(array: Array) -> Array:
    # What orjson serializes without a fallback: C-contiguous and native byte order.
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array)


def _tensor_bytes(array: Array) -> bytes:
    if array.dtype.kind not in TEXT_KINDS:
        return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    parts: list[bytes] = []
    for value in array.reshape(-1).tolist():
        data = _as_bytes(value)
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)
