"""MLflow models with column-based signatures become tabular seals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.sklearn
import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest
from mlflow.models import infer_signature
from mlflow.models.signature import ModelSignature
from mlflow.types import ColSpec, Schema
from sklearn.linear_model import Ridge

from modelseal import InputError, pack
from modelseal.golden import load_golden
from modelseal.types import ColumnKind
from modelseal.verify import Verdict, verify

# MLflow's own input-example handling, on pandas 3 (not modelseal's).
pytestmark = pytest.mark.filterwarnings("ignore:Operation with range is deprecated")


@pytest.fixture(scope="module")
def mlflow_pipeline(tmp_path_factory: pytest.TempPathFactory, pipeline: Any, golden: Any) -> Path:
    """The acceptance pipeline saved by mlflow.sklearn with the golden frame as its example."""
    path = tmp_path_factory.mktemp("mlflow") / "patients"
    mlflow.sklearn.save_model(
        pipeline, str(path), input_example=golden[:8],
        signature=infer_signature(golden, pipeline.predict(golden)),
        pip_requirements=["scikit-learn", "skops"],
    )  # fmt: skip
    return path


def test_the_column_signature_becomes_the_table_with_the_examples_dtypes(
    mlflow_pipeline: Path, golden: Any, tmp_path: Path
) -> None:
    sealed = pack(mlflow_pipeline, runtime="mlflow", name="m", version="1",
                  output=tmp_path / "m.seal")  # fmt: skip
    table = sealed.signature.table
    assert table is not None
    assert table.names == list(golden.columns)  # the MLflow signature's order
    assert [c.dtype for c in table.columns] == [str(d) for d in golden.dtypes]
    assert table.column("smooth").kind is ColumnKind.BOOL
    assert table.column("size_band").kind is ColumnKind.STRING
    assert load_golden(sealed.golden_path).rows == 8
    assert verify(sealed).verdict is Verdict.CONSISTENT


def test_a_csv_golden_is_read_with_the_mlflow_signatures_types(
    mlflow_pipeline: Path, golden: Any, tmp_path: Path
) -> None:
    golden.to_csv(tmp_path / "golden.csv", index=False)
    sealed = pack(
        mlflow_pipeline, runtime="mlflow", name="m", version="2",
        golden=tmp_path / "golden.csv", output=tmp_path / "csv.seal",
    )  # fmt: skip
    table = sealed.signature.table
    assert table is not None
    assert table.column("mean_area").dtype == "float64"
    assert table.column("smooth").dtype == "bool"
    assert table.column("size_band").dtype == "object"  # MLflow's pandas type for string
    assert load_golden(sealed.golden_path).rows == len(golden)
    assert verify(sealed).verdict is Verdict.CONSISTENT


def test_an_optional_mlflow_column_allows_nulls(tmp_path: Path) -> None:
    frame = pd.DataFrame({"height": [170.0, 180.0, 165.0], "weight": [70.0, 80.0, 60.0]})
    model = Ridge().fit(frame, [1.0, 2.0, 0.5])
    schema = Schema([ColSpec("double", "height"), ColSpec("double", "weight", required=False)])
    outputs = infer_signature(frame, model.predict(frame)).outputs
    path = tmp_path / "ridge"
    mlflow.sklearn.save_model(
        model, str(path), input_example=frame,
        signature=ModelSignature(inputs=schema, outputs=outputs),
        pip_requirements=["scikit-learn", "skops"],
    )  # fmt: skip
    sealed = pack(path, runtime="mlflow", name="r", version="1", output=tmp_path / "r.seal")
    table = sealed.signature.table
    assert table is not None  # named columns of one type: a table now, not one 2-D input
    assert [(c.name, c.nullable) for c in table.columns] == [("height", False), ("weight", True)]
    assert verify(sealed).verdict is Verdict.CONSISTENT


def test_golden_text_where_mlflow_says_numbers_is_refused(
    mlflow_pipeline: Path, golden: Any, tmp_path: Path
) -> None:
    wrong = golden.assign(mean_area=np.where(golden["mean_area"] > 600, "big", "small"))
    with pytest.raises(InputError, match=r"golden column 'mean_area' holds string values"):
        pack(mlflow_pipeline, runtime="mlflow", name="m", version="3", golden=wrong,
             output=tmp_path / "x.seal")  # fmt: skip
