"""Golden data of a tabular model: inputs as parquet beside golden.npz, outputs in it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

from modelseal import SealFormatError
from modelseal.golden import Golden, load_golden, save_golden
from modelseal.golden.store import TABLE_FILE
from modelseal.tabular import table_of

FRAME = pd.DataFrame({
    "age": pd.array([41, None, 7], dtype="Int64"),
    "city": pd.Series(["Oslo", None, "Lima"], dtype=object),
    "member": [True, False, True],
})  # fmt: skip
OUTPUTS = {"label": np.array([1, 0, 1])}


def test_tabular_inputs_go_to_parquet_and_come_back_as_columns(tmp_path: Path) -> None:
    table = table_of(FRAME)
    save_golden(tmp_path / "golden.npz", Golden(table.columns, OUTPUTS), table.spec)
    with np.load(tmp_path / "golden.npz") as archive:
        assert archive.files == ["outputs/label"]
    stored = pd.read_parquet(tmp_path / TABLE_FILE)
    assert str(stored["age"].dtype) == "Int64"
    golden = load_golden(tmp_path / "golden.npz")
    assert golden.rows == 3
    assert golden.inputs["age"].tolist() == [41, None, 7]
    assert golden.inputs["city"].tolist() == ["Oslo", None, "Lima"]
    assert golden.inputs["member"].tolist() == [True, False, True]
    np.testing.assert_array_equal(golden.outputs["label"], OUTPUTS["label"])


def test_tensor_golden_data_is_one_npz_as_before(tmp_path: Path) -> None:
    save_golden(tmp_path / "golden.npz", Golden({"input": np.ones((2, 3))}, OUTPUTS))
    assert not (tmp_path / TABLE_FILE).exists()
    with np.load(tmp_path / "golden.npz") as archive:
        assert sorted(archive.files) == ["inputs/input", "outputs/label"]


def test_tabular_outputs_without_their_inputs_are_refused(tmp_path: Path) -> None:
    table = table_of(FRAME)
    save_golden(tmp_path / "golden.npz", Golden(table.columns, OUTPUTS), table.spec)
    (tmp_path / TABLE_FILE).unlink()
    with pytest.raises(SealFormatError, match=r"golden-inputs\.parquet beside it"):
        load_golden(tmp_path / "golden.npz")


def test_an_unreadable_golden_parquet_is_a_format_error(tmp_path: Path) -> None:
    table = table_of(FRAME)
    save_golden(tmp_path / "golden.npz", Golden(table.columns, OUTPUTS), table.spec)
    (tmp_path / TABLE_FILE).write_bytes(b"not parquet")
    with pytest.raises(SealFormatError, match="golden inputs cannot be read"):
        load_golden(tmp_path / "golden.npz")
