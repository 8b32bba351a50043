"""Run by the legacy tabular environment's Python (pandas 2, scikit-learn 1.3, no skops):
fits the acceptance pipeline there and seals it with its golden DataFrame.

argv[1]: output folder; the repository root must be on PYTHONPATH (for the dataset).
"""

from __future__ import annotations

import sys
from pathlib import Path

import modelseal
from tests.tabular.dataset import golden_frame, patient_frame, patient_pipeline

POLICY = "allclose:1e-06,1e-09"


def main(out: Path) -> None:
    features, labels = patient_frame()
    modelseal.pack(
        patient_pipeline(features, labels),
        runtime="sklearn",
        name="patients",
        version="legacy",
        golden=golden_frame(features),
        output=out / "patients.seal",
        tolerance=[POLICY],
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
