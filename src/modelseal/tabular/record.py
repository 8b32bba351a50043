"""A DataFrame -> the table it is: each column's name, kind, exact dtype and nullability."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from modelseal.errors import InputError
from modelseal.tabular.frames import frame_columns, pandas
from modelseal.types import Array, ColumnKind, ColumnSpec, NamedArrays, Table, TableSpec

SUPPORTED = "numeric, bool, text (object, str, string or category of text) and datetime"


def table_of(frame: Any, where: str = "the golden DataFrame") -> Table:
    """The table ``frame`` is, with its columns as they travel; nulls are allowed in exactly
    the columns that hold one in ``frame`` (the golden data is the record of what comes)."""
    pd = pandas()
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"{where}: expected a pandas DataFrame, got {type(frame).__name__}")
    if isinstance(frame.columns, pd.MultiIndex):
        raise InputError(f"{where}: has multi-level column names; flatten them to one level")
    names = list(frame.columns)
    unnamed = [name for name in names if not isinstance(name, str)]
    if unnamed:
        raise InputError(
            f"{where}: column names must be text, got {unnamed[:5]} (a frame made from an "
            "array without columns=?); name the columns as the model was trained on them"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(f"{where}: columns {repeated} appear more than once")
    if len(frame) == 0:
        raise InputError(f"{where}: has no rows; golden inputs need at least one")
    spec = TableSpec(columns=tuple(column_spec(name, frame[name], pd) for name in names))
    return Table(spec=spec, columns=frame_columns(frame))


def column_spec(name: str, series: Any, pd: Any) -> ColumnSpec:
    """What ``series`` is, as a column of a tabular input."""
    dtype = series.dtype
    nullable = bool(series.isna().any())
    types = pd.api.types
    if type(dtype).__name__ == "ArrowDtype":
        raise InputError(
            f"column {name!r} has the pyarrow-backed dtype {dtype} (read with "
            f"dtype_backend='pyarrow'?); convert it to a numpy or pandas dtype (e.g. "
            f".astype({str(dtype.numpy_dtype)!r}), or 'str' for text)"
        )
    if isinstance(dtype, pd.CategoricalDtype):
        return _category_spec(name, dtype, nullable)
    if isinstance(dtype, pd.StringDtype):
        return _string_spec(name, dtype, nullable)
    if types.is_bool_dtype(dtype):
        kind = ColumnKind.BOOL
    elif types.is_datetime64_any_dtype(dtype):
        kind = ColumnKind.DATETIME
    elif types.is_numeric_dtype(dtype) and not types.is_complex_dtype(dtype):
        kind = ColumnKind.NUMERIC
    elif isinstance(dtype, np.dtype) and dtype.kind == "O":
        _check_text(name, series)
        return ColumnSpec(
            name=name,
            kind=ColumnKind.STRING,
            dtype="object",
            nullable=nullable,
            missing_value=_missing_value(name, series) if nullable else None,
        )
    else:
        raise InputError(f"column {name!r} has dtype {dtype}; modelseal takes {SUPPORTED} columns")
    return ColumnSpec(name=name, kind=kind, dtype=str(dtype), nullable=nullable)


def _category_spec(name: str, dtype: Any, nullable: bool) -> ColumnSpec:
    categories = list(dtype.categories)
    if not all(isinstance(category, str) for category in categories):
        raise InputError(
            f"column {name!r} is a category column of {dtype.categories.dtype} values "
            f"({categories[:5]}); modelseal takes categories of text: convert the column "
            "with .astype(str), or to its numeric dtype"
        )
    return ColumnSpec(
        name=name,
        kind=ColumnKind.STRING,
        dtype="category",
        nullable=nullable,
        categories=tuple(categories),
        ordered=bool(dtype.ordered),
    )


def _string_spec(name: str, dtype: Any, nullable: bool) -> ColumnSpec:
    storage = str(dtype.storage)
    # pandas 2.1-2.2's "pyarrow_numpy" storage is what pandas 3 calls the str dtype.
    exact = "str" if storage == "pyarrow_numpy" or np.isnan(_na_float(dtype)) else "string"
    return ColumnSpec(
        name=name,
        kind=ColumnKind.STRING,
        dtype=exact,
        nullable=nullable,
        storage="python" if storage == "python" else "pyarrow",
    )


def _na_float(dtype: Any) -> float:
    """The dtype's missing-value marker as a float: NaN for str, 0 for string (pd.NA)."""
    marker = getattr(dtype, "na_value", None)
    return marker if isinstance(marker, float) else 0.0


def _missing_value(name: str, series: Any) -> Literal["None", "NaN"]:
    """How an object column marks its missing values: scikit-learn's encoders learn None
    and NaN as different categories, so the model must get the one it was trained with."""
    markers = {"None" if value is None else "NaN" for value in series[series.isna()]}
    if len(markers) > 1:
        raise InputError(
            f"column {name!r} marks missing values both as None and as NaN, which encoders "
            "learn as different categories; make them one (e.g. .fillna(np.nan)) as the model "
            "was trained"
        )
    return "None" if markers == {"None"} else "NaN"


def _check_text(name: str, series: Any) -> None:
    others = sorted(
        {type(value).__name__ for value in series.dropna() if not isinstance(value, str)}
    )
    if others:
        raise InputError(
            f"column {name!r} is an object column holding {', '.join(others)} values, not only "
            f"text; give it a dtype (e.g. .astype('boolean') or .astype(float)): modelseal "
            f"takes {SUPPORTED} columns"
        )


def table_of_arrays(columns: NamedArrays | Array, names: list[str], where: str) -> Table:
    """The table of arrays given for a model trained on the columns ``names``: arrays by
    column name (1-D), or one 2-D array whose columns are ``names`` in order."""
    pd = pandas()
    if isinstance(columns, np.ndarray):
        if columns.ndim != 2 or columns.shape[1] != len(names):
            raise InputError(
                f"{where}: one array of shape {list(columns.shape)}, but the model was trained "
                f"on {len(names)} columns {names}; give a DataFrame with those columns"
            )
        return table_of(pd.DataFrame(columns, columns=names), where)
    flat = [name for name, array in columns.items() if np.ndim(array) != 1]
    if flat:
        raise InputError(f"{where}: arrays {flat} are not 1-D; give one 1-D array per column")
    return table_of(pd.DataFrame(dict(columns)), where)


def ordered_as_trained(table: TableSpec, names: list[str], where: str) -> TableSpec:
    """``table`` with its columns in the order the model was trained on (``names``),
    refusing a column the model does not take or one it needs that is not there."""
    missing = [name for name in names if name not in table.names]
    extra = [name for name in table.names if name not in names]
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"lacks the columns {missing} the model was trained on")
        if extra:
            problems.append(f"has the columns {extra} the model was not trained on (drop them)")
        raise InputError(f"{where} {' and '.join(problems)}; the model takes {names}")
    return TableSpec(columns=tuple(table.column(name) for name in names))
