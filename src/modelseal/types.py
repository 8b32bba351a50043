"""The few aliases and structures shared by every layer: named arrays, signatures and
tabular columns."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

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


class ColumnKind(str, Enum):
    """What a tabular column holds, whatever pandas dtype carries it."""

    NUMERIC = "numeric"
    BOOL = "bool"
    STRING = "string"
    """Text, as ``object``, ``str``, ``string`` or ``category`` (of text) columns."""
    DATETIME = "datetime"


class ColumnSpec(BaseModel):
    """One column of a tabular input, as the golden DataFrame had it."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: ColumnKind
    dtype: str = Field(
        description="the exact pandas dtype, as pandas names it: int64, Int64, float64, bool, "
        "boolean, object, str, string, category, datetime64[ns], datetime64[us, UTC], ..."
    )
    nullable: bool = Field(description="whether the column may hold missing values")
    storage: Literal["python", "pyarrow"] | None = Field(
        default=None, description="where pandas keeps a str/string column's text"
    )
    categories: tuple[str, ...] | None = Field(
        default=None, description="the categories of a category column, in order"
    )
    ordered: bool = False
    """Whether a category column's categories are ordered."""
    missing_value: Literal["None", "NaN"] | None = Field(
        default=None,
        description="what an object column holds where a value is missing (encoders tell "
        "None from NaN); null for other dtypes, which have one marker each",
    )

    @property
    def wire_dtype(self) -> str:
        """The numpy dtype of the column as a request carries it: text for strings,
        categories and datetimes (ISO 8601), numbers and booleans as themselves."""
        if self.kind is ColumnKind.NUMERIC:
            return self.dtype.lower()  # Int64 -> int64, Float32 -> float32
        if self.kind is ColumnKind.BOOL:
            return "bool"
        return "str"


class TableSpec(BaseModel):
    """A tabular input: ordered columns, recorded from the golden DataFrame."""

    model_config = ConfigDict(frozen=True)

    columns: tuple[ColumnSpec, ...] = Field(min_length=1)

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]

    def column(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"no column named {name!r}; the table has: {', '.join(self.names)}")

    @property
    def arrow_backed(self) -> bool:
        """Whether pyarrow holds any column's values (pandas' pyarrow string storage)."""
        return any(column.storage == "pyarrow" for column in self.columns)

    def input_specs(self) -> tuple[TensorSpec, ...]:
        """One 1-D input per column, as requests carry them (``ColumnSpec.wire_dtype``)."""
        return tuple(
            TensorSpec(name=column.name, dtype=column.wire_dtype, shape=(FREE_DIM,))
            for column in self.columns
        )


@dataclass(frozen=True)
class Table:
    """Tabular inputs: one 1-D array per column (batch on axis 0) and what each column is.

    Text, categories and nullable extension columns are object arrays holding ``None``
    where a value is missing; datetimes are ``datetime64`` (UTC for zoned columns)."""

    spec: TableSpec
    columns: NamedArrays

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values())))


Example: TypeAlias = Array | NamedArrays | Table
"""Golden inputs as a runtime's ``save`` sees them: one array (a single-input model), arrays
by input name, or a table of columns (a model trained on a DataFrame)."""


class Signature(BaseModel):
    """The inputs a model takes and the outputs it returns, batch on axis 0.

    A tabular model also has ``table``: its inputs are then exactly one 1-D input per
    column, in the table's order (``TableSpec.input_specs``). Tensor signatures have no
    ``table`` and serialize without one, as before tables existed.
    """

    model_config = ConfigDict(frozen=True)

    inputs: tuple[TensorSpec, ...] = Field(min_length=1)
    outputs: tuple[TensorSpec, ...] = Field(min_length=1)
    table: TableSpec | None = None

    @classmethod
    def tabular(cls, table: TableSpec, outputs: tuple[TensorSpec, ...]) -> Signature:
        return cls(inputs=table.input_specs(), outputs=outputs, table=table)

    @model_validator(mode="after")
    def _inputs_are_the_columns(self) -> Signature:
        if self.table is not None and self.inputs != self.table.input_specs():
            raise ValueError(
                f"a tabular signature's inputs must be its columns {self.table.names} "
                f"(1-D, in order), got {self.input_names}"
            )
        return self

    @model_serializer(mode="wrap")
    def _without_absent_table(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Keeps the manifests of tensor models exactly as they were before tables existed.
        data: dict[str, Any] = handler(self)
        if self.table is None:
            data.pop("table", None)
        return data

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
