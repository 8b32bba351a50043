"""Open Inference Protocol datatypes and numpy dtypes, both ways."""

from __future__ import annotations

import numpy as np
import pytest

from modelseal.oip import datatype_of, dtype_of
from tests.serving.codecs.helpers import NUMERIC, raises_input_error


@pytest.mark.parametrize("datatype", [*NUMERIC, "BYTES"])
def test_datatype_and_dtype_round_trip(datatype: str) -> None:
    assert datatype_of(dtype_of(datatype)) == datatype


def test_text_dtypes_are_bytes_and_unknown_ones_are_refused() -> None:
    assert datatype_of("<U5") == datatype_of("S3") == datatype_of(object) == "BYTES"
    assert dtype_of("FP32") == np.float32
    with pytest.raises(ValueError, match="complex128"):
        datatype_of(np.complex128)
    with raises_input_error("datatype 'BF16' is not supported"):
        dtype_of("BF16")
