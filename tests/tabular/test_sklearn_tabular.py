"""scikit-learn models fitted on DataFrames: which golden inputs they take, and how sealed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest
import skops.io
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelseal import InputError, open_seal, pack
from modelseal.golden import load_golden
from modelseal.golden.compare import compare_output
from modelseal.runtimes.sklearn import SklearnRuntime
from modelseal.types import ColumnKind
from modelseal.verify import Verdict, seal_policies, verify

RNG = np.random.default_rng(3)
NUMBERS = pd.DataFrame({"height": RNG.normal(170, 10, 80), "weight": RNG.normal(70, 8, 80)})
TARGET = NUMBERS["height"] * 0.3 + NUMBERS["weight"] * 0.1


def test_a_numeric_array_for_a_model_fitted_on_a_dataframe_becomes_its_columns(
    tmp_path: Path,
) -> None:
    model = Ridge().fit(NUMBERS, TARGET)
    sealed = pack(
        model, runtime="sklearn", name="r", version="1", golden=NUMBERS.to_numpy()[:10],
        output=tmp_path / "r.seal",
    )  # fmt: skip
    table = sealed.signature.table
    assert table is not None and table.names == ["height", "weight"]
    # No "X does not have valid feature names" (pytest turns it into an error).
    assert verify(sealed).verdict is Verdict.CONSISTENT
    golden = load_golden(sealed.golden_path)
    np.testing.assert_array_equal(golden.inputs["weight"], NUMBERS["weight"].to_numpy()[:10])


def test_arrays_by_column_name_are_taken_for_a_model_fitted_on_a_dataframe(
    tmp_path: Path,
) -> None:
    model = Ridge().fit(NUMBERS, TARGET)
    columns = {name: NUMBERS[name].to_numpy()[:6] for name in ("weight", "height")}
    sealed = pack(model, runtime="sklearn", name="r", version="2", golden=columns,
                  output=tmp_path / "r.seal")  # fmt: skip
    assert sealed.signature.table is not None
    assert sealed.signature.table.names == ["height", "weight"]


def test_a_dataframe_for_a_model_fitted_on_an_array_is_refused(tmp_path: Path) -> None:
    model = Ridge().fit(NUMBERS.to_numpy(), TARGET)
    with pytest.raises(InputError, match="fitted on an array .* so it takes arrays"):
        pack(model, runtime="sklearn", name="r", version="3", golden=NUMBERS[:5],
             output=tmp_path / "r.seal")  # fmt: skip
    assert not (tmp_path / "r.seal").exists()


@pytest.mark.parametrize(
    ("golden", "message"),
    [
        (NUMBERS[["height"]], r"lacks the columns \['weight'\] the model was trained on"),
        (NUMBERS.assign(age=1), r"has the columns \['age'\] the model was not trained on"),
    ],
)
def test_golden_columns_must_be_the_training_columns(
    golden: Any, message: str, tmp_path: Path
) -> None:
    model = Ridge().fit(NUMBERS, TARGET)
    with pytest.raises(InputError, match=message):
        pack(model, runtime="sklearn", name="r", version="4", golden=golden[:5],
             output=tmp_path / "r.seal")  # fmt: skip


def test_a_pipeline_selecting_columns_by_dtype_seals_with_skops_and_loads(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "age": RNG.integers(18, 90, 60),
        "income": np.where(RNG.random(60) < 0.1, np.nan, RNG.normal(5e4, 1e4, 60)),
        "city": pd.Series(RNG.choice(["Oslo", "Lima", "Pune"], 60), dtype=object),
    })  # fmt: skip
    labels = (frame["age"] > 50).to_numpy()
    text = make_column_selector(dtype_include=object)
    numbers = make_column_selector(dtype_include=np.number)
    model = make_pipeline(
        ColumnTransformer([
            ("text", OneHotEncoder(handle_unknown="ignore"), text),
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), numbers),
        ]),
        LogisticRegression(),
    ).fit(frame, labels)  # fmt: skip
    skops.io.dump(model, tmp_path / "model.skops")
    untrusted = skops.io.get_untrusted_types(file=tmp_path / "model.skops")
    assert {"builtins.object", "numpy.number"} <= set(untrusted)
    sealed = pack(
        tmp_path / "model.skops", runtime=SklearnRuntime(serialization="skops"),
        name="selector", version="1", golden=frame[:12], output=tmp_path / "s.seal",
    )  # fmt: skip
    table = sealed.signature.table
    assert table is not None
    assert (table.column("income").kind, table.column("income").nullable) == (
        ColumnKind.NUMERIC,
        bool(frame["income"][:12].isna().any()),
    )
    # The selector picks text by dtype: the model must get "city" as object, as trained.
    assert table.column("city").dtype == "object"
    trusted = json.loads((sealed.model_dir / "runtime.json").read_text())["trusted_types"]
    assert {"builtins.object", "numpy.number"} <= set(trusted)  # digest-checked trust
    assert verify(sealed).verdict is Verdict.CONSISTENT


def test_a_tabular_seal_locks_pandas_and_pyarrow(tmp_path: Path) -> None:
    model = Ridge().fit(NUMBERS, TARGET)
    sealed = pack(model, runtime="sklearn", name="r", version="5", golden=NUMBERS[:4],
                  output=tmp_path / "r.seal")  # fmt: skip
    pins = dict(line.split("==") for line in sealed.lock_lines())
    assert pins["pandas"] == pd.__version__
    assert "pyarrow" in pins


def test_a_tensor_seal_is_as_before(demo_seal_path: Path) -> None:
    manifest = open_seal(demo_seal_path).manifest
    assert "table" not in manifest.model_dump(mode="json")["signature"]
    assert "golden-inputs.parquet" not in manifest.files
    assert "pandas" not in dict(line.split("==") for line in open_seal(demo_seal_path).lock_lines())


def test_golden_outputs_are_the_models_on_the_frame_as_given(tmp_path: Path) -> None:
    """None in an object column is a category of its own to OneHotEncoder (NaN is another):
    the sealed outputs must be what the model gives on the user's frame, not on a copy."""
    frame = pd.DataFrame({
        "city": pd.Series(["Oslo", None, "Lima", "Oslo", None, "Lima"] * 5, dtype=object),
        "spend": RNG.normal(size=30),
    })  # fmt: skip
    labels = np.array([0, 1, 1, 0, 1, 0] * 5)
    model = make_pipeline(
        ColumnTransformer([("city", OneHotEncoder(), ["city"])], remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, labels)  # fmt: skip
    sealed = pack(model, runtime="sklearn", name="c", version="1", golden=frame[:6],
                  output=tmp_path / "c.seal")  # fmt: skip
    assert sealed.signature.table is not None
    assert sealed.signature.table.column("city").missing_value == "None"
    outputs = load_golden(sealed.golden_path).outputs
    np.testing.assert_array_equal(outputs["label"], model.predict(frame[:6]))
    policy = seal_policies(sealed)["probabilities"]
    expected = model.predict_proba(frame[:6])
    assert compare_output("probabilities", outputs["probabilities"], expected, policy).passed
