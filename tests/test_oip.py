"""Open Inference Protocol datatypes and numpy dtypes, both ways."""

from __future__ import annotations

import numpy as np
import pytest

from modelseal.oip import casts_to, datatype_of, dtype_of
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


@pytest.mark.parametrize(
    ("declared", "expected", "takes"),
    [
        ("FP64", np.float32, True),
        ("INT32", np.int64, True),
        ("UINT8", np.float32, True),
        ("FP32", np.int64, False),
        ("BOOL", np.int64, False),
        ("BYTES", np.str_, True),
        ("BYTES", np.float32, False),
        ("FP32", np.float32, True),
    ],
)
def test_casts_to_takes_wider_numbers_and_text_as_text(
    declared: str, expected: type[np.generic], takes: bool
) -> None:
    assert casts_to(dtype_of(declared), np.dtype(expected)) is takes
