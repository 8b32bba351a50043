"""Golden inputs as a caller gives them -> the inputs of the model, checked and typed.

Arrays (one for a single-input model, or by input name) are checked against the signature
and cast to its dtypes; a DataFrame (given, or read from .parquet / .csv) is a ``Table``
whose columns are checked against the model's table (``modelseal.tabular``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from modelseal.errors import InputError, UsageError
from modelseal.tabular import is_dataframe, table_inputs, table_of
from modelseal.tabular.files import TABLE_SUFFIXES, read_table
from modelseal.types import Array, Example, NamedArrays, Signature, Table

GoldenInputs: TypeAlias = "Array | Mapping[str, Any] | Sequence[Any] | str | os.PathLike[str]"
"""One array (or nested list) for a single-input model, arrays by input name, a pandas
DataFrame for a tabular model, or a path (.npy, .npz, .parquet, .csv)."""
GOLDEN_SUFFIXES = (".npy", ".npz", *TABLE_SUFFIXES)
TrainedColumns: TypeAlias = Callable[[], "dict[str, str | None] | None"]
"""The columns the model takes, each with the dtype its format records (None where none)."""


def read_golden_inputs(
    source: GoldenInputs, dtypes: Mapping[str, str], trained_columns: TrainedColumns
) -> Example:
    """Golden inputs as given: one array, arrays by name, or a table (from a file too).

    ``dtypes``: pandas dtypes of a CSV file's columns; ``trained_columns``: asked only for a
    CSV file, the columns the model takes with the dtypes its format records.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.suffix in TABLE_SUFFIXES and path.is_file():
            columns = trained_columns() if path.suffix == ".csv" else None
            return read_table(path, dtypes, columns)
        return _read_golden_file(path)
    if is_dataframe(source):
        return table_of(source)
    if isinstance(source, Mapping):
        return {str(name): _golden_array(array, str(name)) for name, array in source.items()}
    return _golden_array(source, None)


def _golden_array(values: object, name: str | None) -> Array:
    what = f"golden input {name!r}" if name else "the golden inputs"
    try:
        array: Array = np.asarray(values)
    except ValueError as exc:
        raise InputError(f"{what} cannot be one array: {exc} (rows of unequal length?)") from exc
    if array.dtype.kind == "O":
        raise InputError(
            f"{what} holds Python objects ({type(values).__name__} of mixed types?); expected "
            "numbers, booleans or text in rows of equal length"
        )
    return array


def golden_inputs(example: Example, signature: Signature) -> NamedArrays:
    """The golden inputs as the model's inputs: a tabular model's columns, checked against
    its table, or tensors by name, checked and cast to the signature."""
    if signature.table is not None:
        return table_inputs(example, signature.table)
    if isinstance(example, Table):
        raise InputError(
            "the golden inputs are a DataFrame, but the model was not trained on one (it "
            f"takes {signature.input_names}); give them as arrays"
        )
    return conform_inputs(name_inputs(example, signature), signature)


def name_inputs(example: Array | NamedArrays, signature: Signature) -> NamedArrays:
    """Golden inputs by input name: a lone array is the model's single input."""
    if isinstance(example, np.ndarray):
        return {_single_input_name(signature): example}
    return example


def conform_inputs(inputs: NamedArrays, signature: Signature) -> NamedArrays:
    """Check names, ranks and fixed dims against the signature and cast to its dtypes."""
    expected = set(signature.input_names)
    if set(inputs) != expected:
        raise InputError(
            f"golden inputs are named {sorted(inputs)}, the model takes {sorted(expected)}"
        )
    conformed: NamedArrays = {}
    rows = {len(array) for array in inputs.values() if array.ndim > 0}
    if len(rows) != 1:
        raise InputError(f"golden inputs must share one batch size on axis 0, got {rows}")
    for spec in signature.inputs:
        array = inputs[spec.name]
        if array.ndim != len(spec.shape) or any(
            want not in (-1, got) for want, got in zip(spec.shape, array.shape, strict=True)
        ):
            raise InputError(
                f"golden input {spec.name!r}: shape {list(array.shape)} does not match the "
                f"signature {list(spec.shape)} (-1 is any size)"
            )
        if not np.can_cast(array.dtype, spec.numpy_dtype, casting="same_kind"):
            raise InputError(
                f"golden input {spec.name!r}: dtype {array.dtype} cannot become {spec.dtype}"
            )
        conformed[spec.name] = np.ascontiguousarray(array, dtype=spec.numpy_dtype)
    return conformed


def _read_golden_file(path: Path) -> Example:
    if not path.is_file():
        raise UsageError(
            f"{path}: no such golden inputs file (expected .npy, .npz, .parquet or .csv)"
        )
    if path.suffix not in GOLDEN_SUFFIXES:
        raise UsageError(
            f"{path}: golden inputs must be a .npy (one input), .npz (named), or .parquet / "
            ".csv (a DataFrame) file"
        )
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    except (ValueError, OSError) as exc:
        raise UsageError(
            f"{path}: cannot be read as {path.suffix} golden inputs ({exc}); expected an "
            "array saved by np.save (.npy) or arrays by input name saved by np.savez (.npz)"
        ) from exc


def _single_input_name(signature: Signature) -> str:
    if len(signature.inputs) != 1:
        raise UsageError(
            f"the golden inputs are one array but the model takes {signature.input_names}; "
            "give an .npz (or a mapping) naming each input"
        )
    return signature.inputs[0].name
