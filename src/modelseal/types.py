"""The few aliases and structures shared by every layer: named arrays and signatures."""

from __future__ import annotations

from enum import Enum
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

Array: TypeAlias = npt.NDArray[np.generic]
NamedArrays: TypeAlias = dict[str, Array]
"""Tensors by name, batched on axis 0: what a model takes and what it returns."""

FREE_DIM = -1
"""A dimension of any size (the batch axis, or a variable-length axis)."""


class OutputKind(str, Enum):
    """What an output means; it chooses the default tolerance policy for the output."""

    LABEL = "label"
    PROBABILITIES = "probabilities"
    SCORES = "scores"
    REGRESSION = "regression"
    EMBEDDING = "embedding"
    OTHER = "other"


class TensorSpec(BaseModel):
    """One named input or output: its numpy dtype name and shape (-1 for a free dim)."""

    model_config = ConfigDict(frozen=True)

    name: str
    dtype: str
    shape: tuple[int, ...]
    kind: OutputKind | None = None

    @property
    def numpy_dtype(self) -> np.dtype[np.generic]:
        return np.dtype(self.dtype)


class Signature(BaseModel):
    """The inputs a model takes and the outputs it returns, batch on axis 0."""

    model_config = ConfigDict(frozen=True)

    inputs: tuple[TensorSpec, ...] = Field(min_length=1)
    outputs: tuple[TensorSpec, ...] = Field(min_length=1)

    def input(self, name: str) -> TensorSpec:
        return _by_name(self.inputs, name, "input")

    def output(self, name: str) -> TensorSpec:
        return _by_name(self.outputs, name, "output")

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [spec.name for spec in self.outputs]


def _by_name(specs: tuple[TensorSpec, ...], name: str, what: str) -> TensorSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    known = ", ".join(spec.name for spec in specs)
    raise KeyError(f"no {what} named {name!r}; the signature has: {known}")
