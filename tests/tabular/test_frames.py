"""Recording a DataFrame's table and rebuilding the DataFrame from its columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

from modelseal import InputError
from modelseal.tabular import frame_columns, table_of, to_frame
from modelseal.types import ColumnKind, ColumnSpec, Signature, TableSpec, TensorSpec


def every_kind() -> Any:
    """One column of each dtype a tabular model can be trained on, with and without nulls."""
    return pd.DataFrame({
        "count": np.array([3, 1, 4], dtype=np.int64),
        "small": np.array([1, 2, 3], dtype=np.int32),
        "maybe_count": pd.array([7, None, 9], dtype="Int64"),
        "ratio": [0.5, np.nan, 1.5],
        "flag": [True, False, True],
        "maybe_flag": pd.array([True, None, False], dtype="boolean"),
        "city": pd.Series(["Oslo", "Lima", None], dtype=object),
        "city_str": pd.Series(["Oslo", None, "Pune"], dtype="str"),
        "city_string": pd.array(["Oslo", "Lima", None], dtype="string"),
        "tier": pd.Categorical(["gold", "silver", "gold"], categories=["silver", "gold", "iron"]),
        "seen": pd.to_datetime(["2024-01-02 03:04:05", None, "2023-12-31 00:00:00"]),
        "seen_utc": pd.to_datetime(["2024-01-02T03:04:05Z", "2024-06-01T00:00:00Z", None]),
    })  # fmt: skip


def test_each_column_is_recorded_with_its_kind_exact_dtype_and_nulls() -> None:
    table = table_of(every_kind()).spec
    recorded = {c.name: (c.kind, c.dtype, c.nullable) for c in table.columns}
    assert recorded == {
        "count": (ColumnKind.NUMERIC, "int64", False),
        "small": (ColumnKind.NUMERIC, "int32", False),
        "maybe_count": (ColumnKind.NUMERIC, "Int64", True),
        "ratio": (ColumnKind.NUMERIC, "float64", True),
        "flag": (ColumnKind.BOOL, "bool", False),
        "maybe_flag": (ColumnKind.BOOL, "boolean", True),
        "city": (ColumnKind.STRING, "object", True),
        "city_str": (ColumnKind.STRING, "str", True),
        "city_string": (ColumnKind.STRING, "string", True),
        "tier": (ColumnKind.STRING, "category", False),
        "seen": (ColumnKind.DATETIME, str(every_kind()["seen"].dtype), True),
        "seen_utc": (ColumnKind.DATETIME, str(every_kind()["seen_utc"].dtype), True),
    }
    assert table.column("tier").categories == ("silver", "gold", "iron")
    assert table.column("city_str").storage in ("pyarrow", "python")
    assert "UTC" in table.column("seen_utc").dtype


def test_the_frame_is_rebuilt_exactly_from_its_columns() -> None:
    frame = every_kind()
    table = table_of(frame)
    rebuilt = to_frame(table.columns, table.spec)
    pd.testing.assert_frame_equal(rebuilt, frame.astype({"city": object}), check_exact=True)
    assert [str(d) for d in rebuilt.dtypes] == [c.dtype for c in table.spec.columns]


def test_the_frame_survives_parquet_and_back(tmp_path: Any) -> None:
    frame = every_kind()
    table = table_of(frame)
    frame.to_parquet(tmp_path / "golden.parquet", index=False)
    read = pd.read_parquet(tmp_path / "golden.parquet")
    rebuilt = to_frame(frame_columns(read), table.spec)
    pd.testing.assert_frame_equal(rebuilt, frame, check_exact=True)


def test_columns_as_json_sends_them_become_the_training_dtypes() -> None:
    table = table_of(every_kind()).spec
    columns = {
        "count": [5], "small": [6], "maybe_count": [None], "ratio": [None], "flag": [False],
        "maybe_flag": [None], "city": ["Rome"], "city_str": [None], "city_string": ["Kyiv"],
        "tier": ["iron"], "seen": ["2025-02-03"], "seen_utc": ["2025-02-03T05:05:06+01:00"],
    }  # fmt: skip
    frame = to_frame(columns, table)
    assert [str(d) for d in frame.dtypes] == [c.dtype for c in table.columns]
    assert frame.loc[0, "seen_utc"] == pd.Timestamp("2025-02-03T04:05:06Z")
    assert pd.isna(frame.loc[0, "maybe_count"]) and frame.loc[0, "tier"] == "iron"
    assert frame["city"].dtype == object and frame.loc[0, "city"] == "Rome"


@pytest.mark.parametrize(("marker", "recorded"), [(None, "None"), (np.nan, "NaN")])
def test_object_text_columns_keep_the_missing_marker_the_model_was_trained_with(
    marker: Any, recorded: str
) -> None:
    """scikit-learn's encoders learn None and NaN as different categories."""
    table = table_of(pd.DataFrame({"city": pd.Series(["a", marker], dtype=object)})).spec
    assert table.column("city").missing_value == recorded
    frame = to_frame({"city": np.array(["b", None], dtype=object)}, table)
    assert frame["city"].dtype == object
    rebuilt = frame.loc[1, "city"]
    assert rebuilt is None if marker is None else np.isnan(rebuilt)


def test_an_object_column_marking_missing_values_two_ways_is_refused() -> None:
    frame = pd.DataFrame({"city": pd.Series(["a", None, np.nan], dtype=object)})
    with pytest.raises(InputError, match="both as None and as NaN"):
        table_of(frame)


def test_a_mismatched_column_is_an_input_error_naming_it() -> None:
    table = table_of(pd.DataFrame({"age": [41, 42]})).spec
    with pytest.raises(InputError, match=r"column 'age'.*int64"):
        to_frame({"age": ["forty-one"]}, table)
    with pytest.raises(InputError, match=r"\['age'\] are missing"):
        to_frame({}, table)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame(np.zeros((2, 2))), "column names must be text"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), r"columns \['a'\] appear more than once"),
        (pd.DataFrame({"a": pd.Series([], dtype=float)}), "has no rows"),
        (pd.DataFrame({"z": [1 + 2j]}), "column 'z' has dtype complex128"),
        (pd.DataFrame({"mixed": ["a", 1]}, dtype=object), "object column holding int values"),
        (pd.DataFrame({"k": pd.Categorical([1, 2])}), "categories of text"),
        (pd.DataFrame({"d": pd.to_timedelta([1], unit="s")}), "timedelta"),
        (pd.DataFrame({"a": pd.Series([1], dtype="int64[pyarrow]")}), r"astype\('int64'\)"),
    ],
)
def test_frames_that_cannot_be_a_table_are_refused_saying_why(frame: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        table_of(frame)


def test_a_tensor_signature_serializes_as_it_did_before_tables() -> None:
    spec = TensorSpec(name="input", dtype="float32", shape=(-1, 4))
    signature = Signature(inputs=(spec,), outputs=(spec,))
    assert set(signature.model_dump(mode="json")) == {"inputs", "outputs"}
    assert Signature.model_validate(signature.model_dump(mode="json")) == signature


def test_a_tabular_signature_round_trips_and_its_inputs_must_be_its_columns() -> None:
    table = TableSpec(
        columns=(
            ColumnSpec(name="age", kind=ColumnKind.NUMERIC, dtype="Int64", nullable=True),
            ColumnSpec(name="city", kind=ColumnKind.STRING, dtype="str", nullable=False),
        )
    )
    output = TensorSpec(name="label", dtype="int64", shape=(-1,))
    signature = Signature.tabular(table, (output,))
    assert [(s.name, s.dtype, s.shape) for s in signature.inputs] == [
        ("age", "int64", (-1,)),
        ("city", "str", (-1,)),
    ]
    assert Signature.model_validate(signature.model_dump(mode="json")) == signature
    with pytest.raises(ValueError, match="inputs must be its columns"):
        Signature(inputs=(output,), outputs=(output,), table=table)
