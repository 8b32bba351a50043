"""Run by the legacy environment's Python: trains models there and writes them to argv[1]."""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main(out: Path) -> None:
    digits = load_digits()
    features, labels = digits.data, digits.target
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=0.5))
    model.fit(features[:1500], labels[:1500])
    joblib.dump(model, out / "digits_logreg.joblib")
    np.save(out / "golden.npy", features[1500:1564])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
