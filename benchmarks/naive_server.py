"""The naive pattern teams write by hand, as the baseline: one Starlette endpoint that parses
JSON with the standard library and runs the ONNX session per request, no batching.
(FIELD-NOTES measured the same pattern on FastAPI; Starlette is that minus FastAPI's own
overhead, so this baseline is the harder one to beat.)

Run: ``python benchmarks/naive_server.py MODEL.onnx PORT``.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def build(model_path: str) -> Starlette:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    async def predict(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        features = np.asarray([body["features"]], dtype=np.float32)
        (scores,) = session.run(None, {input_name: features})
        return JSONResponse({"prediction": scores[0].tolist()})

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"ready": True})

    return Starlette(
        routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)]
    )


if __name__ == "__main__":
    uvicorn.run(build(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
