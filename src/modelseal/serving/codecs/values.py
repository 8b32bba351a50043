"""JSON documents and values to numpy arrays, and the checks every request codec shares.

Values go from orjson straight into numpy; only those numpy cannot take as they are (nulls,
floats for an integer type, huge integers, mixed kinds) are looked at one by one. Problems
raise :class:`~modelseal.errors.InputError` naming the field, what was expected and what came.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modelseal.errors import InputError, MalformedRequestError
from modelseal.oip import datatype_of
from modelseal.serving.config import NanPolicy
from modelseal.types import FREE_DIM, Array, NamedArrays, TensorSpec

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


@dataclass(frozen=True)
class ValueRules:
    """How the values of one request are read."""

    nan_policy: NanPolicy
    booleans_possible: bool
    """Whether the body holds a JSON boolean anywhere: only then are numbers scanned for one
    (numpy reads ``[1, true]`` as ``[1, 1]``)."""

    @classmethod
    def for_body(cls, body: bytes, nan_policy: NanPolicy) -> ValueRules:
        # rfind: half the time of ``in`` on a body of digits (CPython takes another search).
        return cls(nan_policy, body.rfind(b"true") >= 0 or body.rfind(b"false") >= 0)


def load_object(data: bytes | memoryview) -> dict[str, Any]:
    """The JSON object of a request body; ``MalformedRequestError`` when it is not one."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        document = _load_with_non_finite(bytes(data), exc)
    if not isinstance(document, dict):
        raise MalformedRequestError("the request body must be a JSON object")
    return document


def _load_with_non_finite(data: bytes, error: orjson.JSONDecodeError) -> Any:
    # Python's json.dumps (tritonclient, requests) writes NaN and Infinity, which orjson
    # refuses: the standard library reads them, so that the NaN policy decides about them.
    # Only failed parses holding such a literal pay for this; nesting that exhausts the
    # stack is a bad request too.
    invalid = MalformedRequestError(f"the request body is not valid JSON: {error}")
    if b"NaN" not in data and b"Infinity" not in data:
        raise invalid
    try:
        return json.loads(data)
    except RecursionError:
        raise MalformedRequestError(
            "the request body nests JSON arrays or objects too deeply to read; send rows as "
            "nested lists no deeper than the input's shape"
        ) from None
    except ValueError:
        raise invalid from None


def numbers_from_json(
    data: list[Any], dtype: np.dtype[Any], label: str, field: str, rules: ValueRules
) -> Array:
    """Numbers (or booleans) in a flat or nested JSON list, as an array of ``dtype``."""
    try:
        raw = np.asarray(data)
    except (ValueError, OverflowError):
        return _numbers_from_objects(data, dtype, label, field)
    kind = raw.dtype.kind
    if raw.size == 0 or kind in _JSON_KINDS[dtype.kind]:
        if kind != "b" and rules.booleans_possible and _holds_boolean(data):
            raise InputError(
                f"{field}: {label} needs {_NEEDS[dtype.kind]}; got true or false (a boolean "
                "is not a number: send 1 or 0)"
            )
        return cast(raw, dtype, label, field)
    if kind in _INFERRED:
        raise InputError(f"{field}: {label} needs {_NEEDS[dtype.kind]}; got {_INFERRED[kind]}")
    # Floats for an integer type, nulls, huge integers or a mix: look at each value.
    return _numbers_from_objects(data, dtype, label, field)


def _holds_boolean(data: list[Any]) -> bool:
    written = orjson.dumps(data)
    return b"true" in written or b"false" in written


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
    return cast(floats.reshape(objects.shape), dtype, label, field)


def strings_from_json(data: list[Any], field: str) -> Array:
    """Strings in a flat or nested JSON list, as an object array."""
    message = f"{field}: the values must be strings in a flat list or nested lists of equal length"
    try:
        array = np.array(data, dtype=object)
    except ValueError:
        raise InputError(message) from None
    # A ragged list leaves lists as elements of a 1-D object array: caught here too.
    if not all(isinstance(value, str) for value in array.flat):
        raise InputError(message)
    return array


def cast(array: Array, dtype: np.dtype[Any], label: str, field: str) -> Array:
    """``array`` as ``dtype``; integers must fit, narrower floats may overflow to Inf."""
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
    flat = np.asarray(values, dtype=object if isinstance(values, list) else None).reshape(-1)
    if flat.size == 0:
        return
    low, high = flat.min(), flat.max()
    limits = np.iinfo(dtype)
    if low < limits.min or high > limits.max:
        bad = int(low if low < limits.min else high)
        raise InputError(
            f"{field}: value {bad} is out of range for {label} [{limits.min}, {limits.max}]"
        )


def to_spec_dtype(array: Array, spec: TensorSpec, field: str) -> Array:
    """``array`` in the signature's dtype: text as ``str``/``bytes``, never cut to a width."""
    expected = spec.numpy_dtype
    if expected.kind == "O":
        return array
    if expected.kind == "U":
        return _text_array([as_text(value, field) for value in array.flat], np.str_, array)
    if expected.kind == "S":
        return _text_array([as_bytes(value) for value in array.flat], np.bytes_, array)
    return cast(array, expected, label(expected), field)


def _text_array(values: list[Any], kind: type[np.generic], like: Array) -> Array:
    # The array takes the width of its longest element, never the signature's fixed width,
    # so that no string is cut short.
    return np.array(values, dtype=kind).reshape(like.shape)


def check_shape(shape: tuple[int, ...], spec: TensorSpec, field: str) -> None:
    """The signature's rank and fixed dims; ``-1`` takes any size."""
    if len(shape) == len(spec.shape) and all(
        want in (FREE_DIM, got) for got, want in zip(shape, spec.shape, strict=True)
    ):
        return
    raise InputError(
        f"{field}: shape {list(shape)} does not match the signature {list(spec.shape)}"
    )


def check_rows(array: Array, field: str) -> None:
    if array.ndim and array.shape[0] == 0:
        raise InputError(f"{field}: the batch is empty (axis 0 has size 0); send at least one row")


def check_finite(array: Array, field: str, nan_policy: NanPolicy) -> None:
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


def batch_rows(arrays: NamedArrays) -> int:
    """The batch size (axis 0) the named inputs agree on; ``InputError`` when they do not,
    when there are none, or when one has no batch axis."""
    if not arrays:
        raise InputError("the request has no inputs")
    rows: dict[str, int] = {}
    for name, array in arrays.items():
        if array.ndim == 0:
            raise InputError(f"input {name!r} is a 0-d array; inputs need a batch axis (axis 0)")
        rows[name] = array.shape[0]
    if len(set(rows.values())) > 1:
        detail = ", ".join(f"{name!r} has {count}" for name, count in rows.items())
        raise InputError(f"inputs disagree on the batch size (axis 0): {detail}")
    return next(iter(rows.values()))


@functools.cache
def numpy_name(dtype: np.dtype[Any]) -> str:
    # Cached: str(dtype) runs Python code in numpy, and this is on every request's path.
    return str(dtype)


@functools.cache
def label(dtype: np.dtype[Any]) -> str:
    """The protocol datatype of ``dtype`` (``FP32``), or numpy's name when it has none."""
    try:
        return datatype_of(dtype)
    except ValueError:
        return str(dtype)


def quoted(names: Mapping[str, Any] | list[str]) -> str:
    return ", ".join(repr(name) for name in names) or "none"


def object_array(values: list[Any]) -> Array:
    # np.array(values, dtype=object) would turn equal-length sequences into a 2-D array.
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def as_text(value: object, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise InputError(f"{field}: holds bytes that are not UTF-8 text") from None
    return str(value)


def as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return (value if isinstance(value, str) else str(value)).encode()


def output_texts(array: Array, name: str) -> list[str]:
    """A text output's elements as ``str``, flat; refuses bytes that are not UTF-8."""
    field = f"output {name!r}"
    try:
        return [as_text(value, field) for value in array.reshape(-1).tolist()]
    except InputError as exc:
        raise InputError(f"{exc}; ask for it in binary (parameters.binary_data: true)") from None


def native(array: Array) -> Array:
    """What orjson serializes without a fallback: C-contiguous and native byte order."""
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array)
