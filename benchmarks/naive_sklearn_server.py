"""The naive pattern for a scikit-learn model saved with skops, as the memory baseline: one
Starlette endpoint, the model loaded with ``skops.io.load`` trusting what the file holds.

Run: ``python benchmarks/naive_sklearn_server.py MODEL.skops PORT``.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import skops.io
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def build(model_path: str) -> Starlette:
    estimator = skops.io.load(model_path, trusted=skops.io.get_untrusted_types(file=model_path))

    async def predict(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        features = np.asarray([body["features"]], dtype=np.float64)
        return JSONResponse({"prediction": estimator.predict(features).tolist()})

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"ready": True})

    return Starlette(
        routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)]
    )


if __name__ == "__main__":
    uvicorn.run(build(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
