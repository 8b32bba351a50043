"""Columns <-> DataFrame: the frame a tabular model receives, rebuilt from its columns.

``to_frame`` is what every tabular runtime hands its model: the columns of the table, in its
order, each with its exact recorded pandas dtype, whatever pandas (2 or 3) runs here and
whatever form the columns came in (golden parquet, JSON values, OIP tensors).
``frame_columns`` is the way back, a frame's columns as the arrays that travel.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from modelseal.errors import InputError, RuntimeLoadError
from modelseal.types import Array, ColumnKind, ColumnSpec, NamedArrays, TableSpec

INSTALL_HINT = "pip install 'modelseal[tabular]'"


def to_frame(columns: Mapping[str, Any], table: TableSpec) -> Any:
    """The DataFrame of ``table``'s columns (in its order, with its exact dtypes), taking
    each from ``columns``: 1-D arrays or lists, ``None``/NaN where a value is missing."""
    pd = pandas()
    missing = [name for name in table.names if name not in columns]
    if missing:
        raise InputError(f"columns {missing} are missing; the model takes {table.names}")
    lengths = {name: len(columns[name]) for name in table.names}
    if len(set(lengths.values())) > 1:
        raise InputError(f"the columns differ in length: {lengths}")
    rows = next(iter(lengths.values()))
    return pd.DataFrame(
        {column.name: _series(columns[column.name], column, pd) for column in table.columns},
        index=pd.RangeIndex(rows),
    )


def frame_columns(frame: Any) -> NamedArrays:
    """A DataFrame's columns as the arrays that travel (see ``types.Table``)."""
    pd = pandas()
    return {str(name): _wire_array(frame[name], pd) for name in frame.columns}


def json_values(array: Array, column: ColumnSpec) -> list[Any]:
    """A column's values as JSON carries them: numbers, booleans, text (ISO 8601 for
    datetimes, UTC for zoned ones) and ``None`` where a value is missing."""
    if column.kind is ColumnKind.DATETIME:
        stamps = np.asarray(array, dtype="datetime64[ns]")
        return [None if np.isnat(stamp) else str(stamp) for stamp in stamps]
    return [None if _missing(value, pandas()) else value for value in np.asarray(array).tolist()]


def pandas_dtype(column: ColumnSpec) -> Any:
    """The pandas dtype recorded for ``column``, as this pandas spells it."""
    pd = pandas()
    if column.categories is not None:
        return pd.CategoricalDtype(list(column.categories), ordered=column.ordered)
    if column.dtype == "str":
        if pandas_major() < 3:
            # pandas 2 has no "str" dtype: its text columns were object columns.
            return np.dtype(object)
        return pd.StringDtype(storage=column.storage, na_value=np.nan)
    if column.dtype == "string":
        return pd.StringDtype(storage=column.storage)
    return pd.api.types.pandas_dtype(column.dtype)


def is_dataframe(value: object) -> bool:
    """True for a pandas DataFrame (without importing pandas: none exists if it is not)."""
    module = sys.modules.get("pandas")
    return module is not None and isinstance(value, module.DataFrame)


def pandas() -> Any:
    """The pandas module, imported on first use (pandas ships no type information)."""
    try:
        return importlib.import_module("pandas")
    except ImportError as exc:
        raise RuntimeLoadError(
            f"tabular models need pandas, which is not installed here ({INSTALL_HINT})"
        ) from exc


def pandas_major() -> int:
    return int(str(pandas().__version__).split(".", 1)[0])


def _series(values: Any, column: ColumnSpec, pd: Any) -> Any:
    try:
        dtype = pandas_dtype(column)
        if column.kind is ColumnKind.DATETIME:
            return _datetimes(values, dtype, pd)
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            return pd.Series(_numbers(values, dtype), dtype=dtype)
        objects = [None if _missing(value, pd) else value for value in _flat(values)]
        if isinstance(dtype, np.dtype):  # object text: missing as the model was trained
            marker = None if column.missing_value == "None" else np.nan
            return pd.Series([marker if v is None else v for v in objects], dtype=dtype)
        return pd.Series(objects, dtype=dtype)
    except ImportError as exc:
        raise RuntimeLoadError(
            f"column {column.name!r} ({column.dtype}, {column.storage} storage) needs a "
            f"package that is not installed here: {exc} ({INSTALL_HINT})"
        ) from exc
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(
            f"column {column.name!r}: its values cannot become {column.dtype} ({exc})"
        ) from exc


def _numbers(values: Any, dtype: np.dtype[Any]) -> Array:
    array = np.asarray(values)
    if array.dtype.kind == "O":
        if dtype.kind != "f" and any(value is None for value in array.flat):
            raise ValueError(f"a missing value, which {dtype} cannot hold")
        array = np.array([np.nan if value is None else value for value in array.flat])
    return array.astype(dtype, copy=False)


def _datetimes(values: Any, dtype: Any, pd: Any) -> Any:
    zone = getattr(dtype, "tz", None)
    stamps = pd.Series(list(_flat(values)), dtype=object)
    parsed = pd.to_datetime(stamps, utc=zone is not None, format="ISO8601")
    if zone is not None:
        return parsed.dt.tz_convert(zone).astype(dtype)
    return parsed.astype(dtype)


def _wire_array(series: Any, pd: Any) -> Array:
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biufM":
        return np.array(series.to_numpy(), copy=True)
    if isinstance(dtype, pd.DatetimeTZDtype):
        return np.array(series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(), copy=True)
    return np.array(
        [None if _missing(value, pd) else value for value in series.astype(object)], dtype=object
    )


def _flat(values: Any) -> Any:
    return values.reshape(-1) if isinstance(values, np.ndarray) else values


def _missing(value: object, pd: Any) -> bool:
    if value is None:
        return True
    return not isinstance(value, list | tuple | dict | np.ndarray) and bool(pd.isna(value))
