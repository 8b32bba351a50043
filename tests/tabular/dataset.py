"""The acceptance pipeline: breast-cancer measurements plus derived text and bool columns,
one-hot encoded and scaled by a ColumnTransformer that selects columns by name.

Also run by the legacy environment's Python (pandas 2, scikit-learn 1.3) as a plain module,
so it imports nothing from modelseal or the tests package.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

TEXT_COLUMNS = ["size_band", "texture_band"]
GOLDEN_ROWS = slice(500, 548)


def patient_frame() -> tuple[Any, Any]:
    """Features (6 numeric, 2 text, 1 bool column) and the diagnosis labels (0/1)."""
    data = load_breast_cancer(as_frame=True)
    features = data.frame.drop(columns="target").iloc[:, :6].copy()
    features.columns = [name.replace(" ", "_") for name in features.columns]
    bands = pd.cut(features["mean_area"], [0, 400, 800, np.inf], labels=False)
    # Text columns as pandas makes them by default: object in pandas 2, str in pandas 3.
    features["size_band"] = np.array(["small", "medium", "large"])[bands]
    features["texture_band"] = np.where(features["mean_texture"] > 19, "rough", "smooth")
    features["smooth"] = features["mean_smoothness"] < 0.1
    return features, data.target.to_numpy()


def patient_pipeline(features: Any, labels: Any) -> Any:
    """The pipeline fitted on the first 500 rows: text one-hot, numbers (and bool) scaled."""
    numeric = [name for name in features.columns if name not in TEXT_COLUMNS]
    encode = ColumnTransformer([
        ("text", OneHotEncoder(handle_unknown="ignore"), TEXT_COLUMNS),
        ("numbers", StandardScaler(), numeric),
    ])  # fmt: skip
    model = make_pipeline(encode, LogisticRegression(max_iter=2000))
    return model.fit(features.iloc[:500], labels[:500])


def golden_frame(features: Any) -> Any:
    """Rows the pipeline never saw, columns shuffled (sealing puts them in training order)."""
    golden = features.iloc[GOLDEN_ROWS]
    return golden[list(reversed(golden.columns))].reset_index(drop=True)
