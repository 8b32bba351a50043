"""The OpenAPI 3.1 description of the server's routes, built from the seal's signature."""

from __future__ import annotations

from typing import Any

from modelseal._version import __version__
from modelseal.oip import datatype_of
from modelseal.seal.artifact import Seal

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}
ANY_OBJECT: dict[str, Any] = {"type": "object"}
INFER_INPUT = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string"},
        "parameters": ANY_OBJECT,
        "data": {"type": "array"},
    },
}
INFER_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": ANY_OBJECT,
        "inputs": {"type": "array", "items": INFER_INPUT},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "parameters": ANY_OBJECT},
            },
        },
    },
}
PREDICT_REQUEST = {
    "oneOf": [
        {"type": "object", "required": ["features"], "properties": {"features": {}}},
        {
            "type": "object",
            "required": ["instances"],
            "properties": {"instances": {"type": "array"}},
        },
        {"type": "object", "required": ["inputs"], "properties": {"inputs": ANY_OBJECT}},
    ]
}
_ERRORS = {
    "400": "the body is not JSON (or not an object)",
    "404": "no such model or version here",
    "413": "the body is larger than --max-body-bytes",
    "422": "the inputs do not match the signature (named field, expected vs got)",
    "503": "not ready, draining, or overloaded (Retry-After)",
}


def openapi_document(seal: Seal) -> dict[str, Any]:
    name_param = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "example": seal.name},
    }
    version_param = {
        "name": "version",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    model = [name_param]
    versioned = [name_param, version_param]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"modelseal: {seal.name} {seal.version}",
            "version": __version__,
            "description": f"Seal {seal.digest}. Inputs: {_signature_text(seal)}",
        },
        "paths": {
            "/v2": _get("server metadata"),
            "/v2/health/live": _get("liveness", errors=("503",)),
            "/v2/health/ready": _get("readiness", errors=("503",)),
            "/v2/models/{name}": _get("model metadata", model, ("404",)),
            "/v2/models/{name}/versions/{version}": _get("model metadata", versioned, ("404",)),
            "/v2/models/{name}/ready": _get("model readiness", model, ("404", "503")),
            "/v2/models/{name}/versions/{version}/ready": _get(
                "model readiness", versioned, ("404", "503")
            ),
            "/v2/models/{name}/infer": _post("inference (OIP v2)", INFER_REQUEST, model),
            "/v2/models/{name}/versions/{version}/infer": _post(
                "inference (OIP v2)", INFER_REQUEST, versioned
            ),
            "/predict": _post("prediction (simple API)", PREDICT_REQUEST, []),
            "/health": _get("readiness with details", errors=("503",)),
            "/health/live": _get("liveness", errors=("503",)),
            "/health/ready": _get("readiness", errors=("503",)),
            "/seal": _get("the seal's manifest and start-up verification report"),
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "text exposition format"}},
                }
            },
        },
    }


def _signature_text(seal: Seal) -> str:
    return ", ".join(
        f"{spec.name} {datatype_of(spec.dtype)} {list(spec.shape)}"
        for spec in seal.signature.inputs
    )


def _get(
    summary: str, parameters: list[dict[str, Any]] | None = None, errors: tuple[str, ...] = ()
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": _responses(errors)}
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def _post(summary: str, body: dict[str, Any], parameters: list[dict[str, Any]]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": _responses(tuple(_ERRORS)),
    }
    if parameters:
        operation["parameters"] = parameters
    return {"post": operation}


def _responses(errors: tuple[str, ...]) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": ANY_OBJECT}}}
    }
    for status in errors:
        responses[status] = {
            "description": _ERRORS[status],
            "content": {"application/json": {"schema": ERROR}},
        }
    return responses
