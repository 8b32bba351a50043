"""Run by the legacy environment's Python (numpy 1.26, scikit-learn 1.3): seals a forest.

argv[1]: output folder. scikit-learn 1.4 changed what a fitted tree stores per leaf (class
fractions instead of weighted counts), so this pickle's probabilities come out different
under a current scikit-learn: the drift bisect must trace back to it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

import modelseal

POLICY = "allclose:1e-09,1e-12"


def main(out: Path) -> None:
    digits = load_digits()
    forest = RandomForestClassifier(n_estimators=10, random_state=0)
    forest.fit(digits.data[:1500], digits.target[:1500])
    modelseal.pack(
        forest,
        runtime="sklearn",
        name="forest",
        version="legacy",
        golden=digits.data[1500:1532],
        output=out / "forest.seal",
        tolerance=[f"probabilities={POLICY}"],
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
