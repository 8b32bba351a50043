"""Values by column checked against a table: every refusal names the column and the fix."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelseal import InputError
from modelseal.tabular import conform_columns
from modelseal.types import ColumnKind, ColumnSpec, TableSpec

TABLE = TableSpec(
    columns=(
        ColumnSpec(name="age", kind=ColumnKind.NUMERIC, dtype="int64", nullable=False),
        ColumnSpec(name="income", kind=ColumnKind.NUMERIC, dtype="float64", nullable=True),
        ColumnSpec(name="visits", kind=ColumnKind.NUMERIC, dtype="Int64", nullable=True),
        ColumnSpec(name="city", kind=ColumnKind.STRING, dtype="str", nullable=False),
        ColumnSpec(
            name="tier",
            kind=ColumnKind.STRING,
            dtype="category",
            nullable=True,
            categories=("gold", "silver"),
        ),
        ColumnSpec(name="member", kind=ColumnKind.BOOL, dtype="bool", nullable=False),
        ColumnSpec(name="joined", kind=ColumnKind.DATETIME, dtype="datetime64[ns]", nullable=True),
    )
)


def good(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "age": [41, 30], "income": [52000.5, None], "visits": [3, None], "city": ["Oslo", "Lima"],
        "tier": ["gold", None], "member": [True, False], "joined": ["2024-05-01T12:30:00", None],
    }  # fmt: skip
    return values | changes


def test_good_values_become_typed_columns_in_table_order() -> None:
    columns = conform_columns(dict(reversed(good().items())), TABLE)
    assert list(columns) == TABLE.names
    assert columns["age"].dtype == np.int64 and columns["age"].tolist() == [41, 30]
    assert columns["income"].dtype == np.float64 and np.isnan(columns["income"][1])
    assert columns["visits"].dtype == object and columns["visits"].tolist() == [3, None]
    assert columns["city"].tolist() == ["Oslo", "Lima"]
    assert columns["member"].dtype == bool
    assert columns["joined"][0] == np.datetime64("2024-05-01T12:30:00")
    assert np.isnat(columns["joined"][1])


def test_arrays_are_taken_like_lists() -> None:
    values = good(age=np.array([41, 30]), income=np.array([1.0, np.nan]))
    values["city"] = np.array(["Oslo", "Lima"])
    columns = conform_columns(values, TABLE)
    assert columns["age"].tolist() == [41, 30] and columns["city"].tolist() == ["Oslo", "Lima"]


WITHOUT_CITY = {name: values for name, values in good().items() if name != "city"}
BAD_VALUES = [
    (WITHOUT_CITY, r"missing column 'city'; the model takes"),
    (good() | {"colour": ["red", "red"]}, r"unexpected column 'colour'"),
    (
        good(age=["forty-one", 30]),
        r"column 'age': expected numbers \(int64, no nulls\); row 0 is 'forty-one' \(text\)",
    ),
    (good(age=[41, None]), r"column 'age': row 1 is null, and the column allows none"),
    (good(age=[41.5, 30]), r"column 'age': expected numbers.*row 0 is 41.5"),
    (good(age=[True, 30]), r"column 'age': expected numbers.*row 0 is True \(bool\)"),
    (good(age=[2**70, 30]), r"column 'age': row 0 is \d+, out of range for int64"),
    (good(income=["a lot", 1.0]), r"column 'income': expected numbers \(float64, or null\)"),
    (good(city=["Oslo", None]), r"column 'city': row 1 is null"),
    (good(city=["Oslo", 7]), r"column 'city': expected text \(str, no nulls\); row 1 is 7"),
    (
        good(tier=["bronze", None]),
        r"column 'tier': row 0 is 'bronze' \(text\), not one of the column's categories "
        r"'gold', 'silver'",
    ),
    (good(member=["yes", True]), r"column 'member': expected booleans"),
    (good(joined=["yesterday", None]), r"column 'joined': expected datetimes \(ISO 8601"),
    (good(joined=["2024-05-01T12:30:00+02:00", None]), r"'joined': row 0 .* has a UTC offset"),
    (good(age=[[41], [30]]), r"column 'age': expected one value per row"),
    (good(age=[41]), r"the columns differ in length"),
    (good() | {"age": 41}, r"column 'age': expected a list of values"),
]


@pytest.mark.parametrize(("values", "message"), BAD_VALUES)
def test_each_bad_column_is_refused_naming_it(values: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        conform_columns(values, TABLE, where="inputs")
