"""Requests into one batch and its outputs back: which requests may share a batch, and how.

Requests share a batch when their inputs have the same names, dtypes and shapes apart from
the batch axis (axis 0); they are concatenated on it, predicted once, and each gets its own
rows of every output back.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from modelseal.errors import RuntimeLoadError
from modelseal.serving.codecs.values import batch_rows
from modelseal.types import NamedArrays

PredictFn = Callable[[NamedArrays], NamedArrays]
"""A model's batch predict: named inputs to named outputs, batch on axis 0."""

BatchKey = tuple[tuple[str, str, tuple[int, ...]], ...]
"""What requests must share to run in one batch: each input's name, dtype and row shape."""


def describe(inputs: NamedArrays) -> tuple[int, BatchKey]:
    """The request's row count and what a request must share with it to join its batch."""
    rows = batch_rows(inputs)
    # Strings of different widths concatenate fine; other dtypes must match exactly.
    key = tuple(
        (name, array.dtype.kind if array.dtype.kind in "OSU" else array.dtype.str, array.shape[1:])
        for name, array in sorted(inputs.items())
    )
    return rows, key


def predict_batch(predict: PredictFn, parts: list[NamedArrays]) -> list[NamedArrays]:
    """Run in the predict thread: concatenate, predict once, split back by row counts."""
    if len(parts) == 1:
        return [predict(parts[0])]
    merged = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    outputs = predict(merged)
    counts = [next(iter(part.values())).shape[0] for part in parts]
    return split(outputs, counts)


def split(outputs: NamedArrays, counts: list[int]) -> list[NamedArrays]:
    total = sum(counts)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            got = "a 0-d array" if array.ndim == 0 else f"{array.shape[0]} rows"
            raise RuntimeLoadError(
                f"the model returned {got} for output {name!r} from a batch of {total} rows; "
                "outputs must keep the batch axis (axis 0)"
            )
    bounds = np.cumsum(counts)[:-1]
    pieces = {name: np.split(array, bounds) for name, array in outputs.items()}
    return [{name: pieces[name][index] for name in outputs} for index in range(len(counts))]


def tiled(inputs: NamedArrays, rows: int) -> NamedArrays:
    """A batch of ``rows`` rows of ``inputs``, repeating them when it has fewer."""
    count = batch_rows(inputs)
    index = np.arange(rows) % count
    return {name: array[index] for name, array in inputs.items()}
