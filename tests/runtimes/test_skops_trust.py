"""scikit-learn safety: skops refuses types it does not trust; outputs follow the methods."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from modelseal import RuntimeLoadError, pack
from modelseal.runtimes.sklearn import SklearnRuntime
from modelseal.verify import Verdict, verify

X = np.random.default_rng(5).standard_normal((60, 4))
Y3 = np.argmax(X[:, :3], axis=1)
CLIPPER = f"{__name__}.Clipper"


class Clipper(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A custom transformer: a type skops has never heard of, so it is untrusted."""

    def __init__(self, limit: float = 1.5) -> None:
        self.limit = limit

    def fit(self, x: np.ndarray, y: Any = None) -> Clipper:
        self.n_features_in_ = x.shape[1]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(np.clip(x, -self.limit, self.limit))


def clipped_classifier() -> Pipeline:
    return make_pipeline(StandardScaler(), Clipper(), LogisticRegression()).fit(X, Y3)


def test_an_untrusted_type_refuses_to_load_and_is_named(tmp_path: Path) -> None:
    SklearnRuntime(serialization="skops").save(clipped_classifier(), tmp_path / "m", X)
    with pytest.raises(RuntimeLoadError) as raised:
        SklearnRuntime().load(tmp_path / "m", "cpu")
    assert CLIPPER in str(raised.value)
    assert "trusted_types" in str(raised.value)


def test_pack_refuses_it_before_anything_is_sealed(tmp_path: Path) -> None:
    with pytest.raises(RuntimeLoadError, match=CLIPPER):
        pack(
            clipped_classifier(), runtime=SklearnRuntime(serialization="skops"), name="c",
            version="1", golden=X[:8], output=tmp_path / "c.seal",
        )  # fmt: skip
    assert not (tmp_path / "c.seal").exists()


def test_trusting_another_type_does_not_help(tmp_path: Path) -> None:
    runtime = SklearnRuntime(serialization="skops", trusted_types=["builtins.object"])
    runtime.save(clipped_classifier(), tmp_path / "m", X)
    with pytest.raises(RuntimeLoadError, match=CLIPPER):
        SklearnRuntime().load(tmp_path / "m", "cpu")


def test_naming_the_type_as_trusted_seals_that_trust(tmp_path: Path) -> None:
    model = clipped_classifier()
    runtime = SklearnRuntime(serialization="skops", trusted_types=[CLIPPER])
    seal = pack(
        model, runtime=runtime, name="c", version="1", golden=X[:8],
        output=tmp_path / "c.seal",
    )  # fmt: skip
    options = json.loads((seal.model_dir / "runtime.json").read_text())
    assert options["trusted_types"] == [CLIPPER]
    # A default runtime (what verify and the server use) reads the trust from the seal.
    loaded = SklearnRuntime().load(seal.model_dir, "cpu")
    np.testing.assert_array_equal(
        loaded.predict({"input": X})["probabilities"], model.predict_proba(X)
    )
    assert verify(seal).verdict is Verdict.CONSISTENT


def test_scikit_learns_own_types_are_trusted_and_sealed_as_such(tmp_path: Path) -> None:
    """skops 0.16 does not trust scikit-learn's own ``Tree``; sealing names it as trusted."""
    tree = "sklearn.tree._tree.Tree"
    model = DecisionTreeClassifier(random_state=0).fit(X, Y3)
    SklearnRuntime(serialization="skops").save(model, tmp_path / "m", X)
    import skops.io

    assert tree in skops.io.get_untrusted_types(file=tmp_path / "m" / "model.skops")
    options = json.loads((tmp_path / "m" / "runtime.json").read_text())
    assert options["trusted_types"] == [tree]
    loaded = SklearnRuntime().load(tmp_path / "m", "cpu")
    np.testing.assert_array_equal(loaded.predict({"input": X})["label"], model.predict(X))


# Outputs appear exactly when the estimator has the method (test_sklearn.py covers a binary
# LogisticRegression, SVC without probabilities and a regressor); multi-class scores are
# (rows, classes).
@pytest.mark.parametrize(
    ("estimator", "outputs"),
    [
        (GaussianNB(), {"label", "probabilities"}),
        (RidgeClassifier(), {"label", "scores"}),
        (LogisticRegression(), {"label", "probabilities", "scores"}),
        (make_pipeline(StandardScaler(), LinearSVC()), {"label", "scores"}),
        (make_pipeline(StandardScaler(), GaussianNB()), {"label", "probabilities"}),
    ],
    ids=["naive-bayes", "ridge", "multiclass-logistic", "pipeline-linear-svc", "pipeline-nb"],
)
def test_outputs_follow_the_methods_the_estimator_has(
    estimator: Any, outputs: set[str], tmp_path: Path
) -> None:
    estimator.fit(X, Y3)
    runtime = SklearnRuntime()
    signature = runtime.save(estimator, tmp_path / "m", X)
    assert set(signature.output_names) == outputs
    predicted = runtime.load(tmp_path / "m", "cpu").predict({"input": X[:10]})
    assert set(predicted) == outputs
    methods = {"label": "predict", "probabilities": "predict_proba", "scores": "decision_function"}
    for name in outputs:
        expected = getattr(estimator, methods[name])(X[:10])
        np.testing.assert_array_equal(predicted[name], expected)
        assert signature.output(name).shape[1:] == expected.shape[1:]
