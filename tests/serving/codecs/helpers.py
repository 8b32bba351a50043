"""Request bodies and signatures for the codec tests, built as clients build them."""

from __future__ import annotations

import re
import struct
from typing import Any

import numpy as np
import orjson
import pytest

from modelseal.errors import InputError
from modelseal.types import Array, Signature, TensorSpec

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


SIG = signature(("input", "float32", (-1, 64)))
