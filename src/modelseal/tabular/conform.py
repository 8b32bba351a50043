"""Values by column name -> the columns of a table, checked against it.

Whatever brought the values (a JSON list, an OIP tensor, a golden array), each column must be
there, hold values of its kind, and hold a missing value (``None``, NaN) only where the table
allows nulls; every problem is an ``InputError`` naming the column, the row and what was
expected. The arrays returned are the ones ``to_frame`` rebuilds the model's DataFrame from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from modelseal.errors import InputError
from modelseal.tabular.frames import pandas
from modelseal.types import Array, ColumnKind, ColumnSpec, Example, NamedArrays, Table, TableSpec

_KIND_WORDS = {
    ColumnKind.NUMERIC: "numbers",
    ColumnKind.BOOL: "booleans (true/false)",
    ColumnKind.STRING: "text",
    ColumnKind.DATETIME: "datetimes (ISO 8601 text such as 2024-05-01T12:30:00)",
}


def conform_columns(
    values: Mapping[str, Any], table: TableSpec, where: str = "inputs"
) -> NamedArrays:
    """``values`` (1-D sequences by column name) as the table's columns, in its order."""
    check_column_names(values, table, where)
    columns = {
        column.name: conform_column(values[column.name], column, f"{where}: column {column.name!r}")
        for column in table.columns
    }
    lengths = {name: len(array) for name, array in columns.items()}
    if len(set(lengths.values())) > 1:
        raise InputError(f"{where}: the columns differ in length: {lengths}")
    return columns


def table_inputs(example: Example, table: TableSpec) -> NamedArrays:
    """Golden inputs as a tabular model's columns: from a ``Table``, one 2-D array whose
    columns are the table's in order, or arrays by column name."""
    if isinstance(example, Table):
        columns = example.columns
    elif isinstance(example, np.ndarray):
        if example.ndim != 2 or example.shape[1] != len(table.columns):
            raise InputError(
                f"the golden inputs are one array of shape {list(example.shape)}; the model "
                f"takes {len(table.columns)} columns {table.names}: give a DataFrame"
            )
        columns = {name: example[:, index] for index, name in enumerate(table.names)}
    else:
        columns = example
    return conform_columns(columns, table, where="golden inputs")


def check_column_names(values: Mapping[str, Any], table: TableSpec, where: str) -> None:
    """Refuse a missing or an unexpected column, naming it and the columns the model takes."""
    missing = [name for name in table.names if name not in values]
    extra = [str(name) for name in values if name not in table.names]
    problems = []
    if missing:
        problems.append(f"missing column{'s' * (len(missing) > 1)} {_quoted(missing)}")
    if extra:
        problems.append(f"unexpected column{'s' * (len(extra) > 1)} {_quoted(extra)}")
    if problems:
        raise InputError(
            f"{where}: {' and '.join(problems)}; the model takes the columns {_quoted(table.names)}"
        )


def conform_column(values: Any, column: ColumnSpec, field: str) -> Array:
    """One column's values, checked and typed as the column travels."""
    items = _items(values, field)
    expected = _expected(column)
    if column.kind is ColumnKind.NUMERIC:
        return _numbers(items, column, field, expected)
    if column.kind is ColumnKind.DATETIME:
        return _datetimes(items, column, field, expected)
    present = [None if _missing(value) else value for value in items]
    _check_nulls(present, column, field, expected)
    for row, value in enumerate(present):
        if value is not None and not _is_kind(value, column.kind):
            raise InputError(f"{field}: expected {expected}; row {row} is {_shown(value)}")
    if column.categories is not None:
        _check_categories(present, column, field)
    if column.kind is ColumnKind.BOOL and None not in present:
        return np.array(present, dtype=bool)
    return np.array(present, dtype=object)


def _items(values: Any, field: str) -> list[Any]:
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise InputError(
                f"{field}: expected one value per row (a flat list), got shape {list(values.shape)}"
            )
        return values.tolist() if values.dtype.kind != "M" else list(values)
    if isinstance(values, list | tuple):
        for row, value in enumerate(values):
            if isinstance(value, list | tuple | dict):
                raise InputError(
                    f"{field}: expected one value per row (a flat list); row {row} is "
                    f"{type(value).__name__}"
                )
        return list(values)
    raise InputError(f"{field}: expected a list of values, one per row, got {_shown(values)}")


def _numbers(items: list[Any], column: ColumnSpec, field: str, expected: str) -> Array:
    dtype = np.dtype(column.wire_dtype)
    present: list[Any] = []
    for row, value in enumerate(items):
        if _missing(value):
            present.append(None)
            continue
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
            raise InputError(f"{field}: expected {expected}; row {row} is {_shown(value)}")
        if dtype.kind in "iu":
            value = _integer(value, dtype, field, row, expected)
        present.append(value)
    _check_nulls(present, column, field, expected)
    if None not in present:
        return np.array(present, dtype=dtype) if present else np.empty(0, dtype)
    if dtype.kind == "f":
        return np.array([math.nan if value is None else value for value in present], dtype=dtype)
    return np.array(present, dtype=object)  # a nullable integer column (Int64)


def _integer(value: Any, dtype: np.dtype[Any], field: str, row: int, expected: str) -> int:
    if isinstance(value, float | np.floating) and not float(value).is_integer():
        raise InputError(f"{field}: expected {expected}; row {row} is {_shown(value)}")
    number = int(value)
    limits = np.iinfo(dtype)
    if not limits.min <= number <= limits.max:
        raise InputError(f"{field}: row {row} is {number}, out of range for {dtype}")
    return number


def _datetimes(items: list[Any], column: ColumnSpec, field: str, expected: str) -> Array:
    pd = pandas()
    present = [None if _missing(value) else value for value in items]
    _check_nulls(present, column, field, expected)
    zoned = "," in column.dtype  # datetime64[ns, UTC]
    stamps = []
    for row, value in enumerate(present):
        if value is None:
            stamps.append(np.datetime64("NaT"))
            continue
        if not isinstance(value, str | np.datetime64) and not hasattr(value, "isoformat"):
            raise InputError(f"{field}: expected {expected}; row {row} is {_shown(value)}")
        try:
            stamp = pd.Timestamp(value)
        except (TypeError, ValueError):
            raise InputError(
                f"{field}: expected {expected}; row {row} is {_shown(value)}"
            ) from None
        if stamp.tzinfo is not None:
            if not zoned:
                raise InputError(
                    f"{field}: row {row} ({_shown(value)}) has a UTC offset; the column holds "
                    "local times without one"
                )
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        stamps.append(stamp.to_datetime64())
    return np.array(stamps, dtype="datetime64[ns]")


def _check_nulls(present: list[Any], column: ColumnSpec, field: str, expected: str) -> None:
    if column.nullable or None not in present:
        return
    row = present.index(None)
    raise InputError(
        f"{field}: row {row} is null, and the column allows none (the golden data had no "
        f"missing values in it); expected {expected}"
    )


def _check_categories(present: list[Any], column: ColumnSpec, field: str) -> None:
    allowed = set(column.categories or ())
    for row, value in enumerate(present):
        if value is not None and value not in allowed:
            raise InputError(
                f"{field}: row {row} is {_shown(value)}, not one of the column's categories "
                f"{_quoted(list(column.categories or ()))}"
            )


def _expected(column: ColumnSpec) -> str:
    words = _KIND_WORDS[column.kind]
    nulls = ", or null" if column.nullable else ", no nulls"
    return f"{words} ({column.dtype}{nulls})"


def _is_kind(value: object, kind: ColumnKind) -> bool:
    if kind is ColumnKind.BOOL:
        return isinstance(value, bool | np.bool_)
    return isinstance(value, str)


def _missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType") or (
        isinstance(value, np.datetime64) and bool(np.isnat(value))
    )


def _shown(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    if isinstance(value, str):
        return f"{text} (text)"
    return f"{text} ({type(value).__name__})"


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)
