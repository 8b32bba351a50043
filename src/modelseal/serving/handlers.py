"""The route handlers: thin translations between HTTP and the models behind them.

Open Inference Protocol v2 routes name their model; ``/predict``, ``/health`` and ``/seal``
are about the server's default model. Errors are raised as ``SealError`` subclasses and
become JSON responses in one place (``middleware.HttpFront``). Inference routes admit a
request before reading its body, so a full server refuses it before spending work on it, and
big bodies are decoded (and big outputs encoded) off the event loop, so liveness and the
other requests do not wait behind them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from modelseal._version import __version__
from modelseal.errors import MalformedRequestError, RequestTooLargeError
from modelseal.oip import datatype_of
from modelseal.serving.codecs import (
    decode_infer_request,
    decode_invocations_request,
    decode_predict_request,
    encode_infer_response,
    encode_invocations_response,
    encode_predict_response,
)
from modelseal.serving.core import ModelServer
from modelseal.serving.metrics import CONTENT_TYPE, RequestMetrics
from modelseal.serving.middleware import body_read
from modelseal.serving.offload import off_loop
from modelseal.serving.repository import ModelRepository
from modelseal.types import NamedArrays, TensorSpec

JSON = "application/json"


@dataclass(frozen=True)
class Serving:
    """What the handlers of one server share."""

    models: ModelRepository
    requests: RequestMetrics
    openapi: Callable[[], bytes]
    """The OpenAPI document, rendered once from the route table and the default seal (503
    while that seal is still being fetched)."""


# --- Open Inference Protocol v2 ------------------------------------------------------------


async def server_metadata(_request: Request, _serving: Serving) -> Response:
    return _json(
        {"name": "modelseal", "version": __version__, "extensions": ["binary_tensor_data"]}
    )


async def server_live(_request: Request, serving: Serving) -> Response:
    ok, reason = serving.models.liveness()
    return _json({"live": ok, "reason": reason}, 200 if ok else 503)


async def server_ready(_request: Request, serving: Serving) -> Response:
    ok, reason = await serving.models.readiness()
    return _json({"ready": ok, "reason": reason}, 200 if ok else 503)


async def model_metadata(request: Request, serving: Serving) -> Response:
    model = _named_model(request, serving)
    signature = model.seal.signature
    return _json(
        {
            "name": model.seal.name,
            "versions": [model.seal.version],
            "platform": f"modelseal_{model.seal.runtime}",
            "inputs": [_tensor_metadata(spec) for spec in signature.inputs],
            "outputs": [_tensor_metadata(spec) for spec in signature.outputs],
        }
    )


async def model_ready(request: Request, serving: Serving) -> Response:
    model = _named_model(request, serving)
    ok, reason = await model.readiness()
    body = {"name": model.seal.name, "ready": ok, "reason": reason}
    return _json(body, 200 if ok else 503)


async def model_infer(request: Request, serving: Serving) -> Response:
    model = _named_model(request, serving)
    async with model.admitted():
        body = await read_body(request, model.config.max_body_bytes)
        header = _header_length(header_value(request, b"inference-header-content-length"))
        decoded = await off_loop(
            len(body), decode_infer_request, body, header, model.seal.signature,
            nan_policy=model.config.nan_policy,
        )  # fmt: skip
        outputs = await model.infer(decoded.inputs)
        selected = {name: outputs[name] for name in decoded.output_names}
        payload, json_length = await off_loop(
            _nbytes(selected), encode_infer_response, model.seal.name, model.seal.version,
            decoded.id, selected, decoded.binary_outputs,
        )  # fmt: skip
    if json_length is None:
        return Response(payload, media_type=JSON)
    return Response(
        payload,
        media_type="application/octet-stream",
        headers={"inference-header-content-length": str(json_length)},
    )


# --- the simple API and operations --------------------------------------------------------


async def predict(request: Request, serving: Serving) -> Response:
    model = serving.models.default
    async with model.admitted():
        body = await read_body(request, model.config.max_body_bytes)
        inputs, single = await off_loop(
            len(body), decode_predict_request, body, model.seal.signature,
            nan_policy=model.config.nan_policy,
        )  # fmt: skip
        outputs = await model.infer(inputs)
        payload = await off_loop(
            _nbytes(outputs), encode_predict_response, outputs, single, model.seal.version,
            model.seal.digest, model.device.device,
        )  # fmt: skip
    return Response(payload, media_type=JSON)


async def invocations(request: Request, serving: Serving) -> Response:
    """MLflow's scoring route (also SageMaker's container contract), on the default model."""
    model = serving.models.default
    async with model.admitted():
        body = await read_body(request, model.config.max_body_bytes)
        inputs = await off_loop(
            len(body), decode_invocations_request, body, model.seal.signature,
            nan_policy=model.config.nan_policy,
        )  # fmt: skip
        outputs = await model.infer(inputs)
        payload = await off_loop(_nbytes(outputs), encode_invocations_response, outputs)
    return Response(payload, media_type=JSON)


async def health(_request: Request, serving: Serving) -> Response:
    fetch = serving.models.default_fetch
    if fetch is not None and fetch.model is None:
        return _json(fetch.health_body(), 503)
    model = serving.models.default
    ok, reason = await serving.models.readiness()
    body = model.health.snapshot()
    if serving.models.peers is not None:
        body["workers"] = reason
    body.update(
        model=model.seal.name,
        version=model.seal.version,
        seal_digest=model.seal.digest,
        device=model.device.device,
        gpu=model.device.gpu.model_dump() if model.device.gpu else None,
        verdict=model.report.verdict.value if model.report else None,
        queue_depth=model.batcher.queue_depth if model.batcher else 0,
        pid=os.getpid(),
    )
    if fetch is not None:
        body["fetch"] = fetch.summary()
    return _json(body, 200 if ok else 503)


async def seal_document(_request: Request, serving: Serving) -> Response:
    model = serving.models.default
    report = model.report.model_dump(mode="json") if model.report else None
    return _json({"manifest": model.seal.manifest.model_dump(mode="json"), "verify": report})


async def metrics(_request: Request, serving: Serving) -> Response:
    body = b"".join([serving.requests.render(), *(m.render() for m in serving.models.metrics)])
    return Response(body, headers={"content-type": CONTENT_TYPE})


async def openapi(_request: Request, serving: Serving) -> Response:
    return Response(serving.openapi(), media_type=JSON)


# --- helpers --------------------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with ``RequestTooLargeError`` past ``limit`` bytes (before
    reading it when Content-Length says so). Slow senders are cut off by the connection's
    body timeout (``protocol``), not here."""
    declared = header_value(request, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(
            f"the request body is {declared} bytes; this server accepts at most {limit} "
            "(--max-body-bytes)"
        )
    chunks = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(f"the request body exceeds {limit} bytes (--max-body-bytes)")
        chunks.append(chunk)
        if not message.get("more_body", False):
            body_read(request.scope)
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def header_value(request: Request, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), read from the raw headers: cheaper
    than building Starlette's ``Headers`` for one or two lookups a request."""
    raw: list[tuple[bytes, bytes]] = request.scope["headers"]
    for key, value in raw:
        if key == name:
            return value.decode("latin-1")
    return None


def _named_model(request: Request, serving: Serving) -> ModelServer:
    params = request.path_params
    return serving.models.model(params["name"], params.get("version"))


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


def _tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": datatype_of(spec.dtype), "shape": spec.shape}


def _header_length(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise MalformedRequestError(
            f"Inference-Header-Content-Length must be a byte count, got {value!r}"
        )
    return int(value)


def _nbytes(arrays: NamedArrays) -> int:
    return sum(array.nbytes for array in arrays.values())
