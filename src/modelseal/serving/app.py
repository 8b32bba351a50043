"""The HTTP surface: thin routes for the Open Inference Protocol v2 and the simple API.

Every route translates HTTP to and from ``ModelServer`` and nothing else; errors become
JSON ``{"error": ...}`` with the right status in exactly one place (``STATUS_OF``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelseal._version import __version__
from modelseal.errors import (
    InputError,
    MalformedRequestError,
    NotAcceptingError,
    OverloadedError,
    RequestTooLargeError,
    SealError,
    UnknownModelError,
)
from modelseal.oip import datatype_of
from modelseal.serving import codecs
from modelseal.serving.core import ModelServer
from modelseal.serving.health import State
from modelseal.serving.logs import get_logger
from modelseal.serving.openapi import openapi_document

log = get_logger("http")
JSON = "application/json"
RETRY_AFTER_SECONDS = "1"
# Most specific first: the first class in an error's MRO found here decides its status.
STATUS_OF: dict[type[SealError], int] = {
    MalformedRequestError: 400,
    InputError: 422,
    UnknownModelError: 404,
    RequestTooLargeError: 413,
    OverloadedError: 503,
    NotAcceptingError: 503,
}
Handler = Callable[[Request, ModelServer], Awaitable[Response]]


def create_app(server: ModelServer) -> Starlette:
    routes = [
        Route(path, _endpoint(path, handler, server), methods=[method])
        for method, path, handler in _ROUTE_TABLE
    ]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        server.begin_startup()
        yield
        await server.finish_drain()

    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _no_such_route, 405: _no_such_route},
    )


async def _no_such_route(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    verb = "has no route" if status == 404 else "does not take this method on"
    message = (
        f"{request.method} {request.url.path}: this server {verb} this path; see /openapi.json"
    )
    return _json({"error": message}, status)


def _endpoint(
    route: str, handler: Handler, server: ModelServer
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        server.last_request_at = time.monotonic()
        try:
            response = await handler(request, server)
        except SealError as exc:
            response = error_response(exc, server)
        except Exception as exc:
            log.exception("unhandled error on %s", route)
            response = _json({"error": f"internal error: {type(exc).__name__}: {exc}"}, 500)
        if server.health.state is State.DRAINING:
            # Clients drop keep-alive connections while we drain, so none is left idle
            # (and reset) when the process finally exits.
            response.headers["connection"] = "close"
        server.metrics.observe_request(
            route, request.method, response.status_code, time.perf_counter() - started
        )
        return response

    return endpoint


def error_response(error: SealError, server: ModelServer) -> Response:
    status = next((STATUS_OF[k] for k in type(error).__mro__ if k in STATUS_OF), 500)
    if status == 500:
        log.error("request failed: %s: %s", type(error).__name__, error)
    response = Response(orjson.dumps({"error": str(error)}), status_code=status, media_type=JSON)
    if status == 503:
        response.headers["retry-after"] = RETRY_AFTER_SECONDS
    return response


# --- Open Inference Protocol v2 ------------------------------------------------------------


async def server_metadata(_request: Request, _server: ModelServer) -> Response:
    return _json(
        {"name": "modelseal", "version": __version__, "extensions": ["binary_tensor_data"]}
    )


async def server_live(_request: Request, server: ModelServer) -> Response:
    ok, reason = server.liveness()
    return _json({"live": ok, "reason": reason}, 200 if ok else 503)


async def server_ready(_request: Request, server: ModelServer) -> Response:
    ok, reason = await server.readiness()
    return _json({"ready": ok, "reason": reason}, 200 if ok else 503)


async def model_metadata(request: Request, server: ModelServer) -> Response:
    _check_model(request, server)
    signature = server.seal.signature
    return _json(
        {
            "name": server.seal.name,
            "versions": [server.seal.version],
            "platform": f"modelseal_{server.seal.runtime}",
            "inputs": [_tensor_metadata(spec) for spec in signature.inputs],
            "outputs": [_tensor_metadata(spec) for spec in signature.outputs],
        }
    )


async def model_ready(request: Request, server: ModelServer) -> Response:
    _check_model(request, server)
    ok, reason = await server.readiness()
    body = {"name": server.seal.name, "ready": ok, "reason": reason}
    return _json(body, 200 if ok else 503)


async def model_infer(request: Request, server: ModelServer) -> Response:
    _check_model(request, server)
    body = await _read_body(request, server.config.max_body_bytes)
    header = request.headers.get("inference-header-content-length")
    decoded = codecs.decode_infer_request(
        body, _header_length(header), server.seal.signature, nan_policy=server.config.nan_policy
    )
    outputs = await server.infer(decoded.inputs)
    selected = {name: outputs[name] for name in decoded.output_names}
    payload, json_length = codecs.encode_infer_response(
        server.seal.name,
        server.seal.version,
        decoded.id,
        selected,
        decoded.binary_outputs,
    )
    if json_length is None:
        return Response(payload, media_type=JSON)
    return Response(
        payload,
        media_type="application/octet-stream",
        headers={"inference-header-content-length": str(json_length)},
    )


# --- the simple API and operations --------------------------------------------------------


async def predict(request: Request, server: ModelServer) -> Response:
    body = await _read_body(request, server.config.max_body_bytes)
    inputs, single = codecs.decode_predict_request(
        body, server.seal.signature, nan_policy=server.config.nan_policy
    )
    outputs = await server.infer(inputs)
    payload = codecs.encode_predict_response(
        outputs, single, server.seal.version, server.seal.digest, server.device.device
    )
    return Response(payload, media_type=JSON)


async def health(_request: Request, server: ModelServer) -> Response:
    ok, _reason = await server.readiness()
    return _json(server.health_body(), 200 if ok else 503)


async def seal_document(_request: Request, server: ModelServer) -> Response:
    report = server.report.model_dump(mode="json") if server.report else None
    return _json({"manifest": server.seal.manifest.model_dump(mode="json"), "verify": report})


async def metrics(_request: Request, server: ModelServer) -> Response:
    body, content_type = server.metrics.render()
    return Response(body, headers={"content-type": content_type})


async def openapi(_request: Request, server: ModelServer) -> Response:
    return _json(openapi_document(server.seal))


_ROUTE_TABLE: list[tuple[str, str, Handler]] = [
    ("GET", "/v2", server_metadata),
    ("GET", "/v2/health/live", server_live),
    ("GET", "/v2/health/ready", server_ready),
    ("GET", "/v2/models/{name}", model_metadata),
    ("GET", "/v2/models/{name}/versions/{version}", model_metadata),
    ("GET", "/v2/models/{name}/ready", model_ready),
    ("GET", "/v2/models/{name}/versions/{version}/ready", model_ready),
    ("POST", "/v2/models/{name}/infer", model_infer),
    ("POST", "/v2/models/{name}/versions/{version}/infer", model_infer),
    ("POST", "/predict", predict),
    ("GET", "/health", health),
    ("GET", "/health/live", server_live),
    ("GET", "/health/ready", server_ready),
    ("GET", "/seal", seal_document),
    ("GET", "/metrics", metrics),
    ("GET", "/openapi.json", openapi),
]


# --- helpers --------------------------------------------------------------------------------


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


def _check_model(request: Request, server: ModelServer) -> None:
    name = request.path_params["name"]
    if name != server.seal.name:
        raise UnknownModelError(
            f"model {name!r} is not served here; this server serves {server.seal.name!r}"
        )
    version = request.path_params.get("version")
    if version is not None and version != server.seal.version:
        raise UnknownModelError(
            f"model {name!r} has no version {version!r}; this server serves version "
            f"{server.seal.version!r}"
        )


def _tensor_metadata(spec: Any) -> dict[str, Any]:
    return {"name": spec.name, "datatype": datatype_of(spec.dtype), "shape": spec.shape}


def _header_length(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise MalformedRequestError(
            f"Inference-Header-Content-Length must be a byte count, got {value!r}"
        )
    return int(value)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(
            f"the request body is {declared} bytes; this server accepts at most {limit} "
            "(--max-body-bytes)"
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(f"the request body exceeds {limit} bytes (--max-body-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)
