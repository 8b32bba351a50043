"""An MLflow column-based signature -> the tabular signature of the sealed model.

MLflow records each input column's name, type (boolean, integer, long, float, double,
string, datetime) and whether it is required. The table takes those names and order, the
exact pandas dtype the golden DataFrame had (MLflow's types do not say ``str`` vs ``object``
or ``Int64`` vs ``int64``; the type's usual pandas dtype where no DataFrame was given), and
allows nulls in a column MLflow marks optional or the golden data has one in.
"""

from __future__ import annotations

from typing import Any

from modelseal.errors import InputError, UsageError
from modelseal.tabular.record import ordered_as_trained, table_of_arrays
from modelseal.types import ColumnKind, ColumnSpec, Example, Table, TableSpec

COLUMN_TYPES: dict[str, tuple[ColumnKind, str]] = {
    "boolean": (ColumnKind.BOOL, "bool"),
    "integer": (ColumnKind.NUMERIC, "int32"),
    "long": (ColumnKind.NUMERIC, "int64"),
    "float": (ColumnKind.NUMERIC, "float32"),
    "double": (ColumnKind.NUMERIC, "float64"),
    "string": (ColumnKind.STRING, "object"),
    "datetime": (ColumnKind.DATETIME, "datetime64[ns]"),
}
"""MLflow ``DataType`` name -> the column kind and the pandas dtype MLflow gives it."""


def is_named_columns(schema: Any) -> bool:
    """Whether an MLflow input schema is column-based with every column named."""
    return not schema.is_tensor_spec() and bool(schema.has_input_names())


def schema_table(schema: Any, example: Example | None) -> TableSpec:
    """The table of a named column-based schema, with the dtypes of the golden inputs."""
    names = [str(column.name) for column in schema.inputs]
    given = _given_table(example, names)
    return TableSpec(
        columns=tuple(_column(column, given) for column in schema.inputs),
    )


def schema_dtypes(schema: Any) -> dict[str, str | None]:
    """The pandas dtype MLflow gives each column of a named column-based schema."""
    return {
        str(column.name): COLUMN_TYPES.get(_type_name(column), (None, None))[1]
        for column in schema.inputs
    }


def _given_table(example: Example | None, names: list[str]) -> TableSpec | None:
    if example is None:
        return None
    if isinstance(example, Table):
        return ordered_as_trained(example.spec, names, "the golden DataFrame")
    where = "the golden inputs"
    return ordered_as_trained(table_of_arrays(example, names, where).spec, names, where)


def _column(column: Any, given: TableSpec | None) -> ColumnSpec:
    name = str(column.name)
    kind, dtype = _kind(column)
    optional = not getattr(column, "required", True)
    if given is None:
        return ColumnSpec(name=name, kind=kind, dtype=dtype, nullable=optional)
    seen = given.column(name)
    if seen.kind is not kind:
        raise InputError(
            f"golden column {name!r} holds {seen.kind.value} values ({seen.dtype}), but the "
            f"MLflow signature says {_type_name(column)}"
        )
    return seen.model_copy(update={"nullable": seen.nullable or optional})


def _kind(column: Any) -> tuple[ColumnKind, str]:
    found = COLUMN_TYPES.get(_type_name(column))
    if found is None:
        raise UsageError(
            f"MLflow input column {column.name!r} has type {column.type}; modelseal serves "
            f"columns of the types {', '.join(COLUMN_TYPES)}"
        )
    return found


def _type_name(column: Any) -> str:
    return str(getattr(column.type, "name", column.type))
