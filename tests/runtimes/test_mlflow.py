"""The mlflow runtime on real MLflow models: a local folder and a real tracking server."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from modelseal import DeviceError, Seal, UsageError, pack
from modelseal.cli import run
from modelseal.golden import load_golden
from modelseal.runtimes import get_runtime
from modelseal.runtimes.mlflow import MlflowRuntime
from modelseal.types import OutputKind
from modelseal.verify import Verdict, verify
from tests.cli_process import run_modelseal as modelseal
from tests.fixtures.mlflow_server import mlflow_server

RNG = np.random.default_rng(7)
X = RNG.standard_normal((90, 4))
Y = np.argmax(X[:, :3], axis=1)
EXAMPLE_ROWS = 8


def classifier() -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(X, Y)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier saved by mlflow.sklearn with MLflow's own requirements inference (skops)."""
    path = tmp_path_factory.mktemp("mlflow") / "classifier"
    model = classifier()
    mlflow.sklearn.save_model(
        model,
        str(path),
        input_example=X[:EXAMPLE_ROWS],
        signature=infer_signature(X, model.predict(X)),
    )
    return path


@pytest.fixture(scope="module")
def seal(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Seal:
    return pack(
        model_dir, runtime="mlflow", name="classifier", version="1",
        output=tmp_path_factory.mktemp("seals") / "classifier.seal",
    )  # fmt: skip


def test_round_trip_verifies_in_a_fresh_process(seal: Seal) -> None:
    result = modelseal("verify", "--json", str(seal.root))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "consistent"
    assert report["seal"]["runtime"] == "mlflow"

    golden = load_golden(seal.golden_path)
    loaded = get_runtime("mlflow").load(seal.model_dir, "cpu")
    batch = {"input": golden.inputs["input"][2:6]}
    np.testing.assert_array_equal(
        loaded.predict(batch)["prediction"], golden.outputs["prediction"][2:6]
    )
    np.testing.assert_array_equal(golden.outputs["prediction"], classifier().predict(X[:8]))


def test_the_model_folder_is_sealed_whole(seal: Seal, model_dir: Path) -> None:
    sealed = seal.model_dir / "mlflow_model"
    assert (sealed / "MLmodel").read_bytes() == (model_dir / "MLmodel").read_bytes()
    assert (sealed / "model.skops").is_file()  # mlflow.sklearn saves skops by default now
    assert {f"model/mlflow_model/{name}" for name in ("MLmodel", "model.skops")} <= set(
        seal.manifest.files
    )


def test_the_input_example_is_the_golden_input(seal: Seal) -> None:
    golden = load_golden(seal.golden_path)
    np.testing.assert_array_equal(golden.inputs["input"], X[:EXAMPLE_ROWS])


def test_the_signature_comes_from_the_mlmodel(seal: Seal) -> None:
    (features,) = seal.signature.inputs
    (prediction,) = seal.signature.outputs
    assert (features.name, features.dtype, features.shape) == ("input", "float64", (-1, 4))
    assert (prediction.name, prediction.dtype, prediction.shape, prediction.kind) == (
        "prediction",
        "int64",
        (-1,),
        OutputKind.LABEL,
    )


def test_the_lock_is_what_the_model_needs_not_what_mlflow_saw_installed(
    seal: Seal, model_dir: Path
) -> None:
    pins = dict(line.split("==") for line in seal.lock_lines())
    for name in ("scikit-learn", "numpy", "scipy", "pandas", "skops"):
        assert pins[name] == metadata.version(name), name
    sealed_mlflow = "mlflow-skinny" if "mlflow-skinny" in pins else "mlflow"
    assert pins[sealed_mlflow] == metadata.version(sealed_mlflow)
    for stray in ("torch", "pytest", "ruff", "rich", "onnxruntime"):
        assert stray not in pins, stray
    # MLflow's own list is kept for reference, exactly as it wrote it.
    options = json.loads((seal.model_dir / "runtime.json").read_text())
    written = (model_dir / "requirements.txt").read_text().split()
    assert options["mlflow_requirements"] == written


def test_load_reports_its_timings_and_refuses_a_gpu(seal: Seal) -> None:
    loaded = MlflowRuntime().load(seal.model_dir, "cpu")
    assert set(loaded.load_timings) == {"import", "read"}
    with pytest.raises(DeviceError, match="CPU only"):
        MlflowRuntime().load(seal.model_dir, "cuda")


def test_golden_inputs_given_win_over_the_example(model_dir: Path, tmp_path: Path) -> None:
    given = X[40:52]
    sealed = pack(
        model_dir, runtime="mlflow", name="c", version="1", golden=given,
        output=tmp_path / "given.seal",
    )  # fmt: skip
    np.testing.assert_array_equal(load_golden(sealed.golden_path).inputs["input"], given)


def test_pack_on_the_command_line_needs_no_golden_file(model_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "cli.seal"
    code = run([
        "pack", str(model_dir), "--runtime", "mlflow", "--name", "c", "--version", "3",
        "-o", str(output),
    ])  # fmt: skip
    assert code == 0
    assert verify(output).verdict is Verdict.CONSISTENT


def test_without_golden_inputs_or_an_example_pack_says_what_to_give(tmp_path: Path) -> None:
    model = classifier()
    bare = tmp_path / "bare"
    mlflow.sklearn.save_model(
        model, str(bare), signature=infer_signature(X, model.predict(X)),
        pip_requirements=["scikit-learn"],
    )  # fmt: skip
    with pytest.raises(UsageError, match="carries no input example; give --golden"):
        pack(bare, runtime="mlflow", name="c", version="1", output=tmp_path / "a.seal")
    with pytest.raises(UsageError, match="runtime 'sklearn' needs golden inputs"):
        pack(model, runtime="sklearn", name="c", version="1", output=tmp_path / "b.seal")


# MLflow's own hints while it infers a DataFrame signature (int columns, pandas 3 range compare).
@pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer column:UserWarning")
@pytest.mark.filterwarnings("ignore:Operation with range is deprecated")
def test_a_dataframe_of_mixed_columns_becomes_one_input_per_column(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "age": RNG.integers(18, 80, 60),
        "income": RNG.standard_normal(60),
        "city": RNG.choice(["ams", "ber", "par"], 60),
    })  # fmt: skip
    labels = np.where(frame["income"] > 0, "high", "low")
    model = make_pipeline(
        ColumnTransformer([("city", OneHotEncoder(), ["city"])], remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, labels)
    path = tmp_path / "mixed"
    mlflow.sklearn.save_model(
        model, str(path), input_example=frame[:6],
        signature=infer_signature(frame, model.predict(frame)),
        pip_requirements=["scikit-learn", "skops"],
    )  # fmt: skip
    sealed = pack(path, runtime="mlflow", name="m", version="1", output=tmp_path / "m.seal")
    assert [(s.name, s.dtype, s.shape) for s in sealed.signature.inputs] == [
        ("age", "int64", (-1,)),
        ("income", "float64", (-1,)),
        ("city", "str", (-1,)),
    ]
    golden = load_golden(sealed.golden_path)
    assert golden.outputs["prediction"].tolist() == model.predict(frame[:6]).tolist()
    assert verify(sealed).verdict is Verdict.CONSISTENT


def test_a_tracking_uri_without_a_tracking_server_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(UsageError, match="set MLFLOW_TRACKING_URI"):
        pack("models:/classifier/1", runtime="mlflow", name="c", version="1",
             output=tmp_path / "x.seal")  # fmt: skip


# --- a real tracking server -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


@pytest.mark.slow
def test_pack_from_the_model_registry(
    tracking_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    model = classifier()
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            model, name="model", input_example=X[:EXAMPLE_ROWS],
            signature=infer_signature(X, model.predict(X)),
            registered_model_name="registry-classifier",
            pip_requirements=["scikit-learn", "skops"],
        )  # fmt: skip
    sealed = pack(
        "models:/registry-classifier/1", runtime="mlflow", name="registry-classifier",
        version="1", output=tmp_path / "registry.seal",
    )  # fmt: skip
    assert (sealed.model_dir / "mlflow_model" / "MLmodel").is_file()
    golden = load_golden(sealed.golden_path)
    np.testing.assert_array_equal(golden.inputs["input"], X[:EXAMPLE_ROWS])
    np.testing.assert_array_equal(golden.outputs["prediction"], model.predict(X[:EXAMPLE_ROWS]))
    assert verify(sealed).verdict is Verdict.CONSISTENT
    pins = dict(line.split("==") for line in sealed.lock_lines())
    assert pins["scikit-learn"] == metadata.version("scikit-learn")
