"""Which sealed models unpickle when loaded: each runtime says so from the files alone."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelseal.runtimes.numpy_function import NumpyFunction, NumpyFunctionRuntime
from modelseal.runtimes.onnx import OnnxRuntime
from modelseal.runtimes.sklearn import SklearnRuntime
from modelseal.verify import pickle_on_load
from tests.conftest import mlp_weights, onnx_mlp

FIXTURES = Path(__file__).parents[1] / "fixtures"
X = np.random.default_rng(3).standard_normal((40, 4))
Y = (X[:, 0] > 0).astype(int)


def classifier() -> LogisticRegression:
    return LogisticRegression().fit(X, Y)


def test_sklearn_says_joblib_unpickles_and_skops_does_not(tmp_path: Path) -> None:
    SklearnRuntime(serialization="joblib").save(classifier(), tmp_path / "joblib", X)
    SklearnRuntime(serialization="skops").save(classifier(), tmp_path / "skops", X)
    assert SklearnRuntime().pickle_on_load(tmp_path / "joblib") == (
        "joblib/model.joblib is a joblib pickle: the seal's runtime.json says "
        "serialization 'joblib'"
    )
    assert SklearnRuntime().pickle_on_load(tmp_path / "skops") is None


def test_onnx_and_numpy_weights_load_without_pickle(tmp_path: Path) -> None:
    features = np.zeros((4, 16), dtype=np.float32)
    OnnxRuntime().save(onnx_mlp(mlp_weights(0)), tmp_path / "onnx", features)
    function = NumpyFunction(source=FIXTURES / "mlp_function.py", weights={
        f"layer{i}": w for i, w in enumerate(mlp_weights(2, (16, 64, 8)))
    })  # fmt: skip
    NumpyFunctionRuntime().save(function, tmp_path / "numpy", features)
    assert OnnxRuntime().pickle_on_load(tmp_path / "onnx") is None
    assert NumpyFunctionRuntime().pickle_on_load(tmp_path / "numpy") is None


@pytest.mark.parametrize("model_format", ["torchscript", "export"])
def test_torch_says_both_formats_unpickle(model_format: str, tmp_path: Path) -> None:
    from modelseal.runtimes.torch import MODEL_FILES, TorchRuntime
    from tests.fixtures.torch_models import TinyMLP, exported, golden_features, scripted

    features = golden_features()
    model = scripted(TinyMLP()) if model_format == "torchscript" else exported(TinyMLP(), features)
    TorchRuntime().save(model, tmp_path, features)
    model_file = tmp_path / MODEL_FILES[model_format]
    # The pickled data torch reads back: TorchScript's own data.pkl; in a .pt2, the sample
    # inputs are a torch.save archive (and torch.load falls back to weights_only=False).
    assert zipfile.is_zipfile(model_file)
    assert b"data.pkl" in model_file.read_bytes()
    loader = "torch.jit.load" if model_format == "torchscript" else "torch.export.load"
    reason = TorchRuntime().pickle_on_load(tmp_path)
    assert reason is not None
    assert f"{tmp_path.name}/{model_file.name} holds pickled data that {loader}" in reason


def mlflow_model(folder: Path, **options: Any) -> Path:
    import mlflow.sklearn

    mlflow.sklearn.save_model(classifier(), str(folder / "mlflow_model"), **options)
    return folder


@pytest.mark.filterwarnings("ignore:Failed to infer signature from type hint")
@pytest.mark.filterwarnings("ignore:.*Type hint used in the model's predict function")
def test_mlflow_says_only_skops_and_onnx_flavors_load_without_pickle(tmp_path: Path) -> None:
    import mlflow.onnx
    import mlflow.pyfunc
    import onnx

    from modelseal.runtimes.mlflow import MlflowRuntime

    runtime = MlflowRuntime()
    skops = mlflow_model(tmp_path / "skops")
    assert runtime.pickle_on_load(skops) is None

    pickled = mlflow_model(tmp_path / "cloudpickle", serialization_format="cloudpickle")
    reason = runtime.pickle_on_load(pickled)
    assert (
        reason
        == "cloudpickle/mlflow_model/MLmodel: a scikit-learn model serialised with cloudpickle"
    )

    custom = tmp_path / "custom"
    mlflow.pyfunc.save_model(str(custom / "mlflow_model"), python_model=constant_model())
    assert "loader_module mlflow.pyfunc.model loads through pickle" in (
        runtime.pickle_on_load(custom) or ""
    )

    code = tmp_path / "code"
    helper = tmp_path / "helper.py"
    helper.write_text("X = 1\n")
    mlflow_model(code, code_paths=[str(helper)])
    assert "brings Python code of its own" in (runtime.pickle_on_load(code) or "")

    graph = tmp_path / "onnx"
    mlflow.onnx.save_model(
        onnx.load_from_string(onnx_mlp(mlp_weights(0))), str(graph / "mlflow_model")
    )
    assert runtime.pickle_on_load(graph) is None

    (tmp_path / "broken" / "mlflow_model").mkdir(parents=True)
    assert "treated as loading pickle" in (runtime.pickle_on_load(tmp_path / "broken") or "")


def constant_model() -> Any:
    import mlflow.pyfunc

    base: Any = mlflow.pyfunc.PythonModel

    class Constant(base):  # type: ignore[misc]
        """A python_function model, which MLflow pickles with cloudpickle."""

        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return np.zeros(len(model_input))

    return Constant()


class ThirdPartyRuntime:
    """A plug-in runtime from before ``pickle_on_load`` existed."""

    name: ClassVar[str] = "elsewhere"
    supports_cuda: ClassVar[bool] = False


def test_a_runtime_that_does_not_say_is_taken_to_unpickle(tmp_path: Path) -> None:
    reason = pickle_on_load(ThirdPartyRuntime(), tmp_path)  # type: ignore[arg-type]
    assert reason is not None
    assert "runtime 'elsewhere' does not declare whether loading its models unpickles" in reason
