"""Open Inference Protocol (v2) datatypes and numpy dtypes, shared by server and client."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from modelseal.errors import InputError
from modelseal.tabular.frames import json_values
from modelseal.types import NamedArrays, Signature

DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_DATATYPES: dict[tuple[str, int], str] = {
    (dtype.kind, dtype.itemsize): name for name, dtype in DTYPES.items() if name != "BYTES"
}
TEXT_KINDS = "OSU"
_NUMERIC_KINDS = "iuf"


def datatype_of(dtype: npt.DTypeLike) -> str:
    """The Open Inference Protocol datatype of a numpy dtype (``float32`` -> ``FP32``).

    Object, bytes and str arrays are ``BYTES``. Raises ``ValueError`` for a dtype the
    protocol has no datatype for (complex, datetime, float128, ...).
    """
    resolved = np.dtype(dtype)
    if resolved.kind in TEXT_KINDS:
        return "BYTES"
    name = _DATATYPES.get((resolved.kind, resolved.itemsize))
    if name is None:
        raise ValueError(f"numpy dtype {resolved} has no Open Inference Protocol datatype")
    return name


def dtype_of(datatype: str) -> np.dtype[Any]:
    """The numpy dtype of an Open Inference Protocol datatype (``FP32`` -> ``float32``).

    ``BYTES`` is ``object`` (elements are ``str`` or ``bytes``). Raises ``InputError`` for a
    datatype there is no numpy dtype for.
    """
    dtype = DTYPES.get(datatype)
    if dtype is None:
        raise InputError(f"datatype {datatype!r} is not supported; use one of {', '.join(DTYPES)}")
    return dtype


def json_tensors(inputs: NamedArrays, signature: Signature) -> list[dict[str, Any]]:
    """Named inputs as the ``inputs`` of a JSON infer request: a tabular model's as one
    tensor per column in the column's datatype, missing values as ``null``."""
    if signature.table is None:
        return [
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": datatype_of(array.dtype),
                "data": array.ravel().tolist(),
            }
            for name, array in inputs.items()
        ]
    return [
        {
            "name": name,
            "shape": [len(array)],
            "datatype": datatype_of(signature.table.column(name).wire_dtype),
            "data": json_values(array, signature.table.column(name)),
        }
        for name, array in inputs.items()
    ]


def casts_to(declared: np.dtype[Any], expected: np.dtype[Any]) -> bool:
    """Whether values sent as ``declared`` may be taken as ``expected``: text as any text
    type, numbers as numbers of the same kind or a wider one (integers as floats, never
    floats as integers)."""
    if declared.kind == "O":
        return expected.kind in TEXT_KINDS
    if declared == expected:
        return True
    return (
        declared.kind in _NUMERIC_KINDS
        and expected.kind in _NUMERIC_KINDS
        and bool(np.can_cast(declared, expected, "same_kind"))
    )
