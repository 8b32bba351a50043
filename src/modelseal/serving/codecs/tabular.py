"""Requests for a tabular model: records, MLflow's scoring formats and one OIP v2 input per
column, all to the model's columns, checked against its table (``modelseal.tabular``).

``POST /predict`` and ``POST /invocations`` (MLflow's scoring route) take, for a tabular
model, one of::

    {"features": {"age": 41, "city": "Oslo"}}                   one record
    {"instances": [{"age": 41, "city": "Oslo"}, ...]}           records
    {"instances": [[41, "Oslo"], ...]}                          rows, in column order
    {"inputs": {"age": [41, 30], "city": ["Oslo", "Lima"]}}     columns (or records)
    {"dataframe_split": {"columns": [...], "data": [[...]], "index": [...]}}
    {"dataframe_records": [{"age": 41, "city": "Oslo"}, ...]}

so that a body built by MLflow's own helpers (``index`` included, as its client sends it) is
served unchanged; MLflow's ``params`` are refused, the model takes none. An Open Inference
Protocol v2 request sends one input per column, as MLServer's pandas codec does: shape
``[n]`` or ``[n, 1]``, a numeric datatype for numbers, ``BOOL`` for booleans, ``BYTES`` for
text and datetimes (ISO 8601), ``null`` for a missing value. A missing or unexpected column,
a value of the wrong kind, or a null where the column allows none is an ``InputError``
naming the column, the row and what was expected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelseal.errors import InputError
from modelseal.oip import datatype_of, dtype_of
from modelseal.serving.codecs.binary import BinaryReader, binary_data_size
from modelseal.tabular.conform import check_column_names, conform_columns
from modelseal.types import ColumnKind, ColumnSpec, NamedArrays, TableSpec

SINGLE_RECORD = "features"
_USAGE = (
    'for this tabular model the body must be one JSON object with one of "features" (one '
    'record), "instances" or "dataframe_records" (records), "inputs" (columns or records) or '
    '"dataframe_split" ({"columns": [...], "data": [[...], ...]})'
)
_SPLIT_KEYS = {"columns", "data", "index"}
_CONTENT_TYPES = {None, "str", "np", "pd"}
"""The ``content_type`` parameters MLServer's codecs put on an input, all read as values."""

Columns = dict[str, Any]
"""Column name -> the values sent for it, one per row."""


def decode_table_body(document: dict[str, Any], table: TableSpec) -> tuple[NamedArrays, bool]:
    """The columns of a ``/predict`` or ``/invocations`` body (a parsed JSON object) and
    whether it was one record (``features``), whose predictions are written as one row."""
    if document.get("params"):
        raise InputError("params: this model takes no parameters; send the inputs alone")
    forms = {key: value for key, value in document.items() if key != "params"}
    if len(forms) != 1:
        raise InputError(f"{_USAGE}; got keys: {', '.join(map(repr, document)) or 'none'}")
    ((key, value),) = forms.items()
    read = _FORMS.get(key)
    if read is None:
        raise InputError(f"{_USAGE}; got key {key!r}")
    columns = read(value, table, key)
    if not any(len(values) for values in columns.values() if isinstance(values, list)):
        raise InputError(f"{key}: holds no rows; send at least one")
    return conform_columns(columns, table, where=key), key == SINGLE_RECORD


def decode_table_inputs(
    items: object, table: TableSpec, reader: BinaryReader | None
) -> NamedArrays:
    """The columns of an OIP v2 request's ``inputs``: one tensor per column."""
    if not isinstance(items, list) or not items:
        raise InputError("inputs: must be a non-empty list of tensors, one per column")
    values: Columns = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InputError(f"inputs[{index}]: must be an object with name, datatype, shape")
        name: str = item["name"]
        field = f"inputs[{index}] ({name!r})"
        if name not in table.names:
            raise InputError(
                f"{field}: unexpected column {name!r}; the model takes the columns "
                f"{', '.join(map(repr, table.names))}"
            )
        if name in values:
            raise InputError(f"{field}: given twice")
        values[name] = _tensor_values(item, table.column(name), field, reader)
    check_column_names(values, table, "inputs")
    return conform_columns(values, table, where="inputs")


# --- bodies ----------------------------------------------------------------------------------


def _one_record(value: object, table: TableSpec, field: str) -> Columns:
    if not isinstance(value, dict):
        raise InputError(
            f'{field}: expected one record {{"column": value, ...}} with the columns '
            f"{', '.join(map(repr, table.names))}"
        )
    return _records([value], table, field)


def _records(value: object, table: TableSpec, field: str) -> Columns:
    if not isinstance(value, list):
        raise InputError(f'{field}: expected a list of records [{{"column": value, ...}}, ...]')
    columns: Columns = {name: [] for name in table.names}
    for index, record in enumerate(value):
        if not isinstance(record, dict):
            raise InputError(
                f'{field}[{index}]: expected a record {{"column": value, ...}}, got '
                f"{type(record).__name__}"
            )
        check_column_names(record, table, f"{field}[{index}]")
        for name in table.names:
            columns[name].append(record[name])
    return columns


def _rows(value: object, table: TableSpec, field: str) -> Columns:
    """Records, or rows of values in the table's column order."""
    if isinstance(value, list) and value and all(isinstance(row, list) for row in value):
        return _positional(value, table.names, field)
    return _records(value, table, field)


def _columns_or_records(value: object, table: TableSpec, field: str) -> Columns:
    if isinstance(value, dict):
        return value
    return _rows(value, table, field)


def _split(value: object, table: TableSpec, field: str) -> Columns:
    usage = f'{field}: expected {{"columns": [...], "data": [[...], ...]}} ("index" is ignored)'
    if not isinstance(value, dict) or not {"columns", "data"} <= set(value) <= _SPLIT_KEYS:
        raise InputError(usage)
    names, data = value["columns"], value["data"]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise InputError(f"{field}.columns: expected a list of column names; {usage}")
    if len(set(names)) != len(names):
        raise InputError(f"{field}.columns: a column is named twice: {names}")
    check_column_names(dict.fromkeys(names), table, f"{field}.columns")
    if not isinstance(data, list) or not all(isinstance(row, list) for row in data):
        raise InputError(f"{field}.data: expected a list of rows (lists); {usage}")
    return _positional(data, names, f"{field}.data")


def _positional(rows: list[Any], names: list[str], field: str) -> Columns:
    for index, row in enumerate(rows):
        if len(row) != len(names):
            raise InputError(
                f"{field}[{index}]: has {len(row)} values; expected {len(names)}, one per "
                f"column in the order {', '.join(map(repr, names))}"
            )
    return {name: [row[position] for row in rows] for position, name in enumerate(names)}


_FORMS: dict[str, Callable[[object, TableSpec, str], Columns]] = {
    SINGLE_RECORD: _one_record,
    "instances": _rows,
    "dataframe_records": _records,
    "inputs": _columns_or_records,
    "dataframe_split": _split,
}


# --- OIP v2 tensors --------------------------------------------------------------------------


def _tensor_values(
    item: dict[str, Any], column: ColumnSpec, field: str, reader: BinaryReader | None
) -> list[Any]:
    datatype = _datatype(item.get("datatype"), column, field)
    rows = _rows_of_shape(item.get("shape"), field)
    parameters = item.get("parameters") or {}
    if not isinstance(parameters, dict) or parameters.get("content_type") not in _CONTENT_TYPES:
        raise InputError(
            f"{field}: parameters.content_type must be one of str, np, pd (or none), got "
            f"{parameters.get('content_type') if isinstance(parameters, dict) else parameters!r}"
        )
    size = binary_data_size(parameters, field)
    if size is not None:
        if reader is None or "data" in item:
            raise InputError(
                f"{field}: parameters.binary_data_size needs the Inference-Header-Content-Length "
                "header and no 'data'"
            )
        values = reader.tensor(size, dtype_of(datatype), (rows,), field).tolist()
    else:
        values = _flat_data(item.get("data"), field)
    if len(values) != rows:
        raise InputError(f"{field}: 'data' has {len(values)} values; shape says {rows} rows")
    return [_text(value, field) if isinstance(value, bytes) else value for value in values]


def _datatype(datatype: object, column: ColumnSpec, field: str) -> str:
    expected = datatype_of(column.wire_dtype)
    numeric = isinstance(datatype, str) and datatype.startswith(("INT", "UINT", "FP"))
    if datatype == expected or (column.kind is ColumnKind.NUMERIC and numeric):
        return str(datatype)
    raise InputError(
        f"{field}: datatype {datatype!r} does not fit the column, which holds "
        f"{column.kind.value} values ({column.dtype}): send {expected}"
    )


def _rows_of_shape(shape: object, field: str) -> int:
    if (
        isinstance(shape, list)
        and len(shape) in (1, 2)
        and all(type(dim) is int and dim >= 0 for dim in shape)
        and (len(shape) == 1 or shape[1] == 1)
    ):
        return int(shape[0])
    raise InputError(f"{field}: 'shape' must be [rows] or [rows, 1] for a column, got {shape!r}")


def _flat_data(data: object, field: str) -> list[Any]:
    if not isinstance(data, list):
        raise InputError(f"{field}: 'data' must be a list of values, one per row")
    if all(isinstance(value, list) and len(value) == 1 for value in data) and data:
        return [value[0] for value in data]  # nested as [rows, 1]
    return data


def _text(value: bytes, field: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{field}: a value is not UTF-8 text") from None
