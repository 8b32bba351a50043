"""Helpers every runtime adapter shares: model files given by path, examples, specs, devices."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelseal.errors import UsageError
from modelseal.types import Array, Example, NamedArrays, OutputKind, Signature, Table, TensorSpec

SINGLE_INPUT_NAME = "input"
"""The name of a model's only input when the golden example is one unnamed array."""

RUNTIME_OF_SUFFIX = {
    ".onnx": "onnx",
    ".skops": "sklearn",
    ".joblib": "sklearn",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".pt": "torch",
    ".pth": "torch",
    ".pt2": "torch",
    ".py": "numpy",
}
"""Which built-in runtime reads a model file of each suffix, for hints in error messages."""


@dataclass(kw_only=True)
class LoadedModel:
    """What every built-in ``Loaded`` holds (the ``Loaded`` protocol's attributes); each
    runtime's subclass adds its model and ``predict``."""

    signature: Signature
    load_timings: dict[str, float]
    """Seconds spent in each load step (for example ``import``, ``read``, ``to_device``)."""
    device: str = "cpu"


def model_path(model: object) -> Path | None:
    """``model`` as a path when it is one (``str`` or ``os.PathLike``), else None."""
    if isinstance(model, str | os.PathLike):
        return Path(model)
    return None


def check_model_file(path: Path, suffixes: tuple[str, ...], expected: str, runtime: str) -> None:
    """Refuse a missing file or one whose suffix ``runtime`` does not read, naming the file,
    what was expected (``expected``, e.g. "an ONNX model (.onnx)") and the runtime that does
    read its suffix, if any."""
    if not path.is_file():
        what = "a folder, not a model file" if path.is_dir() else "no such model file"
        raise UsageError(f"{path}: {what}; the {runtime} runtime expected {expected}")
    if path.suffix.lower() in suffixes:
        return
    reader = RUNTIME_OF_SUFFIX.get(path.suffix.lower())
    hint = f" ({path.suffix} files are read by --runtime {reader})" if reader else ""
    raise UsageError(
        f"{path}: the {runtime} runtime expected {expected}, not a "
        f"{path.suffix or 'suffix-less'} file{hint}"
    )


def named_example(example: Example) -> NamedArrays:
    """A golden example by input name: one unnamed array is the input ``input``. A table
    (a DataFrame) is refused: only runtimes of models trained on DataFrames take one."""
    if isinstance(example, Table):
        raise UsageError(
            "the golden inputs are a DataFrame, but this runtime runs tensors: give them as "
            "arrays (.npy, or .npz by input name); DataFrames are for models trained on them "
            "(--runtime sklearn or mlflow)"
        )
    if isinstance(example, np.ndarray):
        return {SINGLE_INPUT_NAME: example}
    return dict(example)


def array_spec(name: str, array: Array, *, output: bool, dtype: str | None = None) -> TensorSpec:
    """The spec of an input or output seen in a run of the example: axis 0 is the free batch
    axis, the other dims are as seen. ``dtype`` overrides the array's (a schema's dtype)."""
    if array.ndim == 0:
        what = "output" if output else "input"
        raise UsageError(
            f"{what} {name!r} is a scalar; inputs and outputs need a batch axis (axis 0)"
        )
    dtype = dtype or dtype_name(array)
    kind = guess_output_kind(name, np.dtype(dtype)) if output else None
    return TensorSpec(name=name, dtype=dtype, shape=(-1, *array.shape[1:]), kind=kind)


def dtype_name(array: Array) -> str:
    """The dtype to record: text of any length is ``str`` (numpy names ``<U5`` "str160")."""
    return "str" if array.dtype.kind == "U" else array.dtype.name


def cuda_device_index(device: str) -> int:
    """The GPU index of ``cuda`` (0) or ``cuda:N`` (N)."""
    _, _, index = device.partition(":")
    return int(index) if index else 0


_KIND_WORDS = (
    ("prob", OutputKind.PROBABILITIES),
    ("label", OutputKind.LABEL),
    ("class", OutputKind.LABEL),
    ("score", OutputKind.SCORES),
    ("logit", OutputKind.SCORES),
    ("embed", OutputKind.EMBEDDING),
)


def guess_output_kind(name: str, dtype: np.dtype[Any]) -> OutputKind | None:
    """A kind from the output's name, for formats that do not say (ONNX, TorchScript)."""
    lowered = name.lower()
    for word, kind in _KIND_WORDS:
        if word in lowered:
            return kind
    return OutputKind.LABEL if dtype.kind in "biuSU" else None
