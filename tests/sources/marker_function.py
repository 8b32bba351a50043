"""A model that leaves a mark when it is loaded: proves a refusal came before loading."""

import os
from pathlib import Path

import numpy as np

if marker := os.environ.get("MODELSEAL_TEST_LOAD_MARKER"):
    Path(marker).write_text("loaded\n")


def predict(inputs: dict[str, np.ndarray], weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"scaled": inputs["input"] * weights["scale"]}
