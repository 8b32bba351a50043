"""A real ColumnTransformer pipeline trained on a DataFrame: sealed, verified, replayed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

from modelseal import IntegrityError, UsageError, open_seal, pack
from modelseal.golden import load_golden
from modelseal.golden.compare import compare_output
from modelseal.runtimes import get_runtime
from modelseal.types import ColumnKind
from modelseal.verify import Verdict, seal_policies, verify
from tests.cli_process import run_modelseal as modelseal

TRAINING_ORDER = [
    "mean_radius", "mean_texture", "mean_perimeter", "mean_area", "mean_smoothness",
    "mean_compactness", "size_band", "texture_band", "smooth",
]  # fmt: skip
FEATURE_NAME_WARNINGS_FAIL = {
    "PYTHONWARNINGS": "error:X does not have valid feature names:UserWarning,"
    "error:X has feature names:UserWarning"
}


def test_the_signature_is_the_training_columns_in_training_order(tabular_seal_path: Path) -> None:
    table = open_seal(tabular_seal_path).signature.table
    assert table is not None
    assert table.names == TRAINING_ORDER  # the golden frame's columns came reversed
    kinds = {column.name: (column.kind, column.dtype, column.nullable) for column in table.columns}
    assert kinds["mean_area"] == (ColumnKind.NUMERIC, "float64", False)
    assert kinds["size_band"] == (ColumnKind.STRING, "str", False)  # pandas 3's default
    assert kinds["smooth"] == (ColumnKind.BOOL, "bool", False)
    inputs = open_seal(tabular_seal_path).signature.inputs
    assert [(spec.name, spec.dtype, spec.shape) for spec in inputs][6:] == [
        ("size_band", "str", (-1,)),
        ("texture_band", "str", (-1,)),
        ("smooth", "bool", (-1,)),
    ]


def test_the_golden_inputs_are_a_parquet_file_of_the_frame(
    tabular_seal_path: Path, golden: Any
) -> None:
    seal = open_seal(tabular_seal_path)
    assert "golden-inputs.parquet" in seal.manifest.files
    stored = pd.read_parquet(tabular_seal_path / "golden-inputs.parquet")
    assert list(stored.columns) == TRAINING_ORDER
    pd.testing.assert_frame_equal(stored, golden[TRAINING_ORDER], check_dtype=True)
    with np.load(tabular_seal_path / "golden.npz") as archive:
        assert sorted(archive.files) == [
            "outputs/label", "outputs/probabilities", "outputs/scores",
        ]  # fmt: skip


def test_the_golden_outputs_are_the_pipelines_on_the_frame(
    tabular_seal_path: Path, pipeline: Any, golden: Any
) -> None:
    outputs = load_golden(tabular_seal_path / "golden.npz").outputs
    policies = seal_policies(open_seal(tabular_seal_path))
    np.testing.assert_array_equal(outputs["label"], pipeline.predict(golden))
    for name, computed in (
        ("probabilities", pipeline.predict_proba(golden)),
        ("scores", pipeline.decision_function(golden)),
    ):
        assert compare_output(name, outputs[name], computed, policies[name]).passed, name


def test_it_verifies_consistent_replaying_dataframes(tabular_seal_path: Path) -> None:
    report = verify(tabular_seal_path)
    assert report.verdict is Verdict.CONSISTENT, report.failure
    assert {replay.batch_size for replay in report.golden} == {1, 48}
    assert report.load_warnings == []


def test_it_verifies_in_a_fresh_process_where_a_feature_name_warning_would_fail(
    tabular_seal_path: Path,
) -> None:
    result = modelseal(
        "verify", "--json", str(tabular_seal_path), extra_env=FEATURE_NAME_WARNINGS_FAIL
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "consistent"
    assert report["golden_rows"] == 48


def test_the_model_receives_a_dataframe_with_the_training_dtypes(tabular_seal_path: Path) -> None:
    seal = open_seal(tabular_seal_path)
    loaded = get_runtime("sklearn").load(seal.model_dir, "cpu")
    estimator = loaded.estimator  # type: ignore[attr-defined]
    seen: list[Any] = []
    first_step = estimator.steps[0][1]
    original = first_step.transform

    def spy(frame: Any) -> Any:
        seen.append(frame)
        return original(frame)

    first_step.transform = spy
    golden = load_golden(seal.golden_path)
    loaded.predict(golden.input_rows(0, 5))
    assert len(seen) == 3  # once per output: label, probabilities, scores
    table = seal.signature.table
    assert table is not None
    for frame in seen:
        assert isinstance(frame, pd.DataFrame)
        assert list(frame.columns) == TRAINING_ORDER
        assert [str(dtype) for dtype in frame.dtypes] == [column.dtype for column in table.columns]


def test_a_changed_golden_parquet_is_refused(tabular_seal_path: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tabular_seal_path, tmp_path / "copy.seal")
    frame = pd.read_parquet(copy / "golden-inputs.parquet")
    frame.loc[0, "mean_area"] += 1.0
    frame.to_parquet(copy / "golden-inputs.parquet", index=False)
    with pytest.raises(IntegrityError, match=r"golden-inputs\.parquet"):
        open_seal(copy)


def test_pack_on_the_command_line_from_parquet(
    pipeline: Any, golden: Any, tmp_path: Path, tabular_seal_path: Path
) -> None:
    import joblib

    joblib.dump(pipeline, tmp_path / "model.joblib")
    golden.to_parquet(tmp_path / "golden.parquet")
    result = modelseal(
        "pack", str(tmp_path / "model.joblib"), "--runtime", "sklearn", "--name", "p",
        "--version", "2", "--golden", str(tmp_path / "golden.parquet"),
        "-o", str(tmp_path / "cli.seal"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    sealed = open_seal(tmp_path / "cli.seal")
    assert sealed.signature.table == open_seal(tabular_seal_path).signature.table
    assert verify(sealed).verdict is Verdict.CONSISTENT


def test_a_csv_is_read_with_the_dtypes_given(pipeline: Any, golden: Any, tmp_path: Path) -> None:
    golden.to_csv(tmp_path / "golden.csv", index=False)
    dtypes = dict.fromkeys(TRAINING_ORDER[:6], "float64")
    dtypes |= {"size_band": "str", "texture_band": "str", "smooth": "bool"}
    given = ",".join(f"{name}={dtype}" for name, dtype in dtypes.items())
    sealed = pack(
        pipeline, runtime="sklearn", name="p", version="3", golden=tmp_path / "golden.csv",
        golden_dtypes=dict(item.split("=") for item in given.split(",")),
        output=tmp_path / "csv.seal",
    )  # fmt: skip
    table = sealed.signature.table
    assert table is not None
    assert [(c.name, c.dtype) for c in table.columns] == [(n, dtypes[n]) for n in TRAINING_ORDER]
    assert verify(sealed).verdict is Verdict.CONSISTENT


def test_a_csv_without_dtypes_is_refused_naming_the_columns(
    pipeline: Any, golden: Any, tmp_path: Path
) -> None:
    golden.to_csv(tmp_path / "golden.csv", index=False)
    with pytest.raises(UsageError) as refused:
        pack(
            pipeline, runtime="sklearn", name="p", version="4", golden=tmp_path / "golden.csv",
            output=tmp_path / "x.seal",
        )  # fmt: skip
    message = str(refused.value)
    assert "records no dtypes" in message
    assert "--golden-dtypes 'mean_radius=DTYPE," in message  # in training order
    assert "size_band" in message and ".to_parquet" in message
    assert not (tmp_path / "x.seal").exists()


def test_the_cli_refuses_a_csv_without_dtypes_with_exit_2(
    pipeline: Any, golden: Any, tmp_path: Path
) -> None:
    import joblib

    joblib.dump(pipeline, tmp_path / "model.joblib")
    golden.to_csv(tmp_path / "golden.csv", index=False)
    args = [
        "pack", str(tmp_path / "model.joblib"), "--runtime", "sklearn", "--name", "p",
        "--version", "5", "--golden", str(tmp_path / "golden.csv"), "-o", str(tmp_path / "c.seal"),
    ]  # fmt: skip
    refused = modelseal(*args)
    assert refused.returncode == 2
    assert "--golden-dtypes" in refused.stderr and "Traceback" not in refused.stderr
    spec = ",".join(f"{name}=float64" for name in TRAINING_ORDER[:6])
    accepted = modelseal(*args, "--golden-dtypes", spec, "--golden-dtypes", "size_band=str",
                         "--golden-dtypes", "texture_band=str,smooth=bool")  # fmt: skip
    assert accepted.returncode == 0, accepted.stderr
