"""The floor of any Python HTTP server here: a plain Starlette endpoint that reads the body
and answers a constant, on uvicorn with httptools and uvloop, as modelseal serves.

Run: ``python benchmarks/serving/noop_server.py PORT``.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ANSWER = b'{"predictions":{"scores":[0.0]}}'


async def noop(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json")


async def ready(_request: Request) -> Response:
    return Response(b'{"ready":true}', media_type="application/json")


app = Starlette(
    routes=[
        Route("/predict", noop, methods=["POST"]),
        Route("/v2/models/{name}/infer", noop, methods=["POST"]),
        Route("/v2/health/ready", ready),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
