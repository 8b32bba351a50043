"""scikit-learn models through skops (default) and joblib."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.svm import SVC

from modelseal import DeviceError, UsageError, pack
from modelseal.runtimes.sklearn import SklearnRuntime
from modelseal.types import OutputKind

X = np.random.default_rng(0).standard_normal((40, 3))
Y_CLASS = np.array(["cat", "dog", "eel", "fox"])[np.arange(40) % 4]


def test_classifier_outputs_follow_its_methods(tmp_path: Path) -> None:
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    signature = SklearnRuntime().save(model, tmp_path / "m", X)
    kinds = {spec.name: (spec.kind, spec.shape) for spec in signature.outputs}
    assert kinds == {
        "label": (OutputKind.LABEL, (-1,)),
        "probabilities": (OutputKind.PROBABILITIES, (-1, 2)),
        "scores": (OutputKind.SCORES, (-1,)),
    }


def test_svc_without_probability_has_no_probabilities_output(tmp_path: Path) -> None:
    model = SVC().fit(X, (X[:, 0] > 0).astype(int))
    signature = SklearnRuntime().save(model, tmp_path / "m", X)
    assert signature.output_names == ["label", "scores"]


def test_string_labels_round_trip(tmp_path: Path) -> None:
    model = LogisticRegression().fit(X, Y_CLASS)
    runtime = SklearnRuntime()
    runtime.save(model, tmp_path / "m", X)
    loaded = runtime.load(tmp_path / "m", "cpu")
    outputs = loaded.predict({"input": X[:5]})
    assert outputs["label"].dtype.kind == "U"
    assert outputs["label"].tolist() == model.predict(X[:5]).tolist()


@pytest.mark.parametrize("serialization", ["skops", "joblib"])
def test_regressor_round_trip(serialization: str, tmp_path: Path) -> None:
    model = LinearRegression().fit(X, X @ np.array([1.0, -2.0, 0.5]))
    runtime = SklearnRuntime(serialization=serialization)  # type: ignore[arg-type]
    signature = runtime.save(model, tmp_path / "m", X)
    assert [spec.name for spec in signature.outputs] == ["prediction"]
    loaded = runtime.load(tmp_path / "m", "cpu")
    np.testing.assert_array_equal(loaded.predict({"input": X})["prediction"], model.predict(X))
    assert ("skops" in runtime.requirements(tmp_path / "m")) == (serialization == "skops")


def test_sklearn_refuses_a_gpu(tmp_path: Path) -> None:
    runtime = SklearnRuntime()
    runtime.save(LinearRegression().fit(X, X[:, 0]), tmp_path / "m", X)
    with pytest.raises(DeviceError, match="CPU only"):
        runtime.load(tmp_path / "m", "cuda")


@pytest.mark.parametrize(
    ("file_name", "content", "fact"),
    [
        ("model.onnx", b"\x08\x07", "not a .onnx file (.onnx files are read by --runtime onnx)"),
        (
            "model.joblib",
            b"not a pickle",
            "model.joblib: cannot be read as a joblib or pickle file",
        ),
        ("model.skops", b"not a zip", "model.skops: not a zip archive, so not a skops file"),
    ],
)
def test_a_file_that_is_no_scikit_learn_model_is_refused_naming_it(
    tmp_path: Path, file_name: str, content: bytes, fact: str
) -> None:
    source = tmp_path / file_name
    source.write_bytes(content)
    with pytest.raises(UsageError, match=re.escape(fact)):
        pack(source, runtime="sklearn", name="m", version="1", golden=X, output=tmp_path / "m.seal")
    assert not (tmp_path / "m.seal").exists()
