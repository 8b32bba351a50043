"""The binary tensor data extension of the Open Inference Protocol (as Triton speaks it).

A body is a JSON part of ``Inference-Header-Content-Length`` bytes followed by the raw
tensors, in input (or output) order, each ``binary_data_size`` bytes long: little-endian
elements, or for ``BYTES`` each element as a 4-byte little-endian length and its bytes.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from modelseal.errors import InputError, MalformedRequestError
from modelseal.oip import TEXT_KINDS, datatype_of
from modelseal.serving.codecs.values import as_bytes, object_array
from modelseal.types import Array

_LENGTH = struct.Struct("<I")


def json_part(body: bytes, header_length: int | None) -> bytes | memoryview:
    """The JSON part of a body: all of it without the extension's header length."""
    if header_length is None:
        return body
    if not 0 < header_length <= len(body):
        raise MalformedRequestError(
            f"Inference-Header-Content-Length is {header_length} but the body has {len(body)} bytes"
        )
    return memoryview(body)[:header_length]


def binary_data_size(parameters: dict[str, Any], field: str) -> int | None:
    """An input's ``parameters.binary_data_size``: None when its data is JSON."""
    if "shared_memory_region" in parameters:
        raise InputError(f"{field}: the shared memory extension is not supported")
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise InputError(f"{field}: parameters.binary_data_size must be a non-negative integer")
    return size


class BinaryReader:
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
        """Refuse bytes left over after the last tensor."""
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


def tensor_bytes(array: Array) -> bytes:
    """An output's bytes as the extension writes them."""
    if array.dtype.kind not in TEXT_KINDS:
        return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    parts: list[bytes] = []
    for value in array.reshape(-1).tolist():
        data = as_bytes(value)
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


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
    return object_array(elements).reshape(shape)
