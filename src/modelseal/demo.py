"""The bundled demo model: digits (shipped inside scikit-learn), trained deterministically."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modelseal.types import Array

DEMO_NAME = "digits"
DEMO_VERSION = "1.0.0"
GOLDEN_ROWS = 64


@dataclass(frozen=True)
class DemoModel:
    estimator: Any
    golden_inputs: Array
    holdout_accuracy: float


def train_demo_model() -> DemoModel:
    """A scaler + logistic regression on the 8x8 digits; the same bytes on every run."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    digits = load_digits()
    features = digits.data.astype(np.float64)
    labels = digits.target
    train, holdout = slice(0, 1500), slice(1500, None)
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=0.5))
    estimator.fit(features[train], labels[train])
    accuracy = float(np.mean(estimator.predict(features[holdout]) == labels[holdout]))
    return DemoModel(
        estimator=estimator,
        golden_inputs=features[holdout][:GOLDEN_ROWS],
        holdout_accuracy=accuracy,
    )
