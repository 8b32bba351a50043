"""Open Inference Protocol (v2) datatypes and numpy dtypes, shared by server and client."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

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
