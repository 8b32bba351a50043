"""Golden DataFrames from parquet and CSV files, and the dtypes a CSV needs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

from modelseal import UsageError
from modelseal.tabular.files import parse_dtypes, read_table
from modelseal.types import ColumnKind

CSV = "age,city,joined,member\n41,Oslo,2024-05-01 12:30:00,true\n7,,2023-01-02 00:00:00,false\n"


def test_dtypes_come_as_pairs_repeated_or_a_json_file(tmp_path: Path) -> None:
    (tmp_path / "dtypes.json").write_text(json.dumps({"joined": "datetime64[ns]"}))
    assert parse_dtypes(["age=int64, city=str", "member=bool", str(tmp_path / "dtypes.json")]) == {
        "age": "int64",
        "city": "str",
        "member": "bool",
        "joined": "datetime64[ns]",
    }
    with pytest.raises(UsageError, match="expected NAME=DTYPE"):
        parse_dtypes(["age:int64"])
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match="expected a JSON object"):
        parse_dtypes([str(tmp_path / "bad.json")])


def test_a_csv_is_read_with_exactly_the_dtypes_given(tmp_path: Path) -> None:
    (tmp_path / "golden.csv").write_text(CSV)
    dtypes = {"age": "Int64", "city": "str", "joined": "datetime64[ns]", "member": "bool"}
    table = read_table(tmp_path / "golden.csv", dtypes).spec
    assert [(c.name, c.kind, c.dtype, c.nullable) for c in table.columns] == [
        ("age", ColumnKind.NUMERIC, "Int64", False),
        ("city", ColumnKind.STRING, "str", True),
        ("joined", ColumnKind.DATETIME, "datetime64[ns]", False),
        ("member", ColumnKind.BOOL, "bool", False),
    ]


def test_the_models_own_dtypes_fill_in_and_given_ones_win(tmp_path: Path) -> None:
    (tmp_path / "golden.csv").write_text(CSV)
    recorded: dict[str, str | None] = {
        "age": "int64", "city": "object", "joined": "datetime64[ns]", "member": "bool",
    }  # fmt: skip
    table = read_table(tmp_path / "golden.csv", {"age": "float64"}, recorded).spec
    assert [c.dtype for c in table.columns] == ["float64", "object", "datetime64[ns]", "bool"]


def test_values_that_do_not_fit_the_dtypes_are_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "golden.csv").write_text(CSV)
    dtypes = {"age": "int64", "city": "int64", "joined": "datetime64[ns]", "member": "bool"}
    with pytest.raises(UsageError, match="do not fit the dtypes given"):
        read_table(tmp_path / "golden.csv", dtypes)


def test_a_csv_without_dtypes_says_which_columns_need_them(tmp_path: Path) -> None:
    (tmp_path / "golden.csv").write_text(CSV)
    with pytest.raises(UsageError) as refused:
        read_table(tmp_path / "golden.csv", {"age": "int64"}, {"age": None, "city": None})
    message = str(refused.value)
    assert "['city', 'joined', 'member']" in message
    assert "the model was trained on the columns ['age', 'city']" in message
    assert "--golden-dtypes 'age=DTYPE,city=DTYPE'" in message


def test_a_file_that_is_not_parquet_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "golden.parquet").write_text(CSV)
    with pytest.raises(UsageError, match=r"cannot be read as parquet .*DataFrame\.to_parquet"):
        read_table(tmp_path / "golden.parquet")


def test_parquet_keeps_the_dtypes(tmp_path: Path) -> None:
    frame = pd.DataFrame({"age": pd.array([1, None], dtype="Int64"), "city": ["a", "b"]})
    frame.to_parquet(tmp_path / "golden.parquet")
    table = read_table(tmp_path / "golden.parquet").spec
    assert [(c.dtype, c.nullable) for c in table.columns] == [("Int64", True), ("str", False)]
