"""A float32 MLP that computes each row on its own, as a per-request service does.

Every row goes through the same BLAS calls whatever the batch, so its outputs are bitwise
the same at any batch size and an exact tolerance holds, until a BLAS setting changes them.
"""

import numpy as np


def predict(inputs: dict[str, np.ndarray], weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    rows = [_forward(row[np.newaxis, :], weights) for row in inputs["input"]]
    return {"scores": np.concatenate(rows)}


def _forward(hidden: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    layers = sorted(weights)
    for index, name in enumerate(layers):
        hidden = hidden @ weights[name]
        if index < len(layers) - 1:
            hidden = np.maximum(hidden, np.float32(0))
    return hidden
