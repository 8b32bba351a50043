"""The one route table: routing, the metrics' route labels and the OpenAPI document all come
from ``ROUTES``, so a route exists in all three or in none."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from modelseal.serving import handlers
from modelseal.serving.handlers import Serving
from modelseal.serving.openapi import INFER_REQUEST, INVOCATIONS_REQUEST, PREDICT_REQUEST

Handler = Callable[[Request, Serving], Awaitable[Response]]
READINESS = (503,)
NAMED = (404,)
INFERENCE = (400, 404, 408, 413, 422, 503)


@dataclass(frozen=True)
class Route:
    """One route: what it answers, what it does, and how it can fail."""

    method: str
    path: str
    """The template, with ``{name}``-style parameters (also the metrics' route label)."""
    handler: Handler
    summary: str
    errors: tuple[int, ...] = ()
    """The error statuses it may answer (beyond 405 for another method)."""
    body: dict[str, Any] | None = None
    """The JSON schema of its request body, when it takes one."""
    produces: str = "application/json"


ROUTES: tuple[Route, ...] = (
    Route("GET", "/v2", handlers.server_metadata, "server metadata"),
    Route("GET", "/v2/health/live", handlers.server_live, "liveness", READINESS),
    Route("GET", "/v2/health/ready", handlers.server_ready, "readiness", READINESS),
    Route("GET", "/v2/models/{name}", handlers.model_metadata, "model metadata", NAMED),
    Route(
        "GET", "/v2/models/{name}/versions/{version}", handlers.model_metadata,
        "model metadata", NAMED,
    ),
    Route(
        "GET", "/v2/models/{name}/ready", handlers.model_ready, "model readiness", (404, 503)
    ),
    Route(
        "GET", "/v2/models/{name}/versions/{version}/ready", handlers.model_ready,
        "model readiness", (404, 503),
    ),
    Route(
        "POST", "/v2/models/{name}/infer", handlers.model_infer, "inference (OIP v2)",
        INFERENCE, INFER_REQUEST,
    ),
    Route(
        "POST", "/v2/models/{name}/versions/{version}/infer", handlers.model_infer,
        "inference (OIP v2)", INFERENCE, INFER_REQUEST,
    ),
    Route(
        "POST", "/predict", handlers.predict, "prediction (simple API)",
        tuple(status for status in INFERENCE if status != 404), PREDICT_REQUEST,
    ),
    Route(
        "POST", "/invocations", handlers.invocations, "prediction (MLflow scoring protocol)",
        tuple(status for status in INFERENCE if status != 404), INVOCATIONS_REQUEST,
    ),
    Route("GET", "/ping", handlers.server_ready, "readiness (MLflow, SageMaker)", READINESS),
    Route("GET", "/health", handlers.health, "readiness with details", READINESS),
    Route("GET", "/health/live", handlers.server_live, "liveness", READINESS),
    Route("GET", "/health/ready", handlers.server_ready, "readiness", READINESS),
    Route(
        "GET", "/seal", handlers.seal_document,
        "the seal's manifest and start-up verification report",
    ),
    Route("GET", "/metrics", handlers.metrics, "Prometheus metrics", produces="text/plain"),
    Route("GET", "/openapi.json", handlers.openapi, "this document"),
)  # fmt: skip
