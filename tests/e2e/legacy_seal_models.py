"""Run by the legacy environment's Python: trains scikit-learn models there and seals each.

argv[1]: output folder. Every seal gets one policy for all outputs, so the test can
recompute the verdict independently with numpy.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import modelseal

POLICY = "allclose:1e-06,1e-09"
MODELS = {
    "logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
    "knn": KNeighborsClassifier(),
    "tree": DecisionTreeClassifier(random_state=0),
    "forest": RandomForestClassifier(n_estimators=10, random_state=0),
    "boosting": GradientBoostingClassifier(n_estimators=3, random_state=0),
}


def main(out: Path) -> None:
    digits = load_digits()
    features, labels = digits.data, digits.target
    for name, model in MODELS.items():
        model.fit(features[:1500], labels[:1500])
        modelseal.pack(
            model,
            runtime="sklearn",
            name=name,
            version="legacy",
            golden=features[1500:1564],
            output=out / f"{name}.seal",
            tolerance=[POLICY],
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
