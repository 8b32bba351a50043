"""The OpenAPI 3.1 description of the server, built from the route table and the seal."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelseal._version import __version__
from modelseal.oip import datatype_of
from modelseal.seal.artifact import Seal

if TYPE_CHECKING:
    from modelseal.serving.routes import Route

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
        {"type": "object", "required": ["inputs"], "properties": {"inputs": {}}},
        {
            "type": "object",
            "required": ["dataframe_split"],
            "properties": {
                "dataframe_split": {
                    "type": "object",
                    "required": ["columns", "data"],
                    "properties": {
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "data": {"type": "array", "items": {"type": "array"}},
                        "index": {"type": "array"},
                    },
                }
            },
        },
        {
            "type": "object",
            "required": ["dataframe_records"],
            "properties": {"dataframe_records": {"type": "array", "items": ANY_OBJECT}},
        },
    ]
}
INVOCATIONS_REQUEST = PREDICT_REQUEST
ERRORS = {
    400: "the body is not JSON (or not an object)",
    404: "no such model or version here",
    408: "the request did not arrive within --body-timeout (the connection is closed)",
    413: "the body is larger than --max-body-bytes",
    422: "the inputs do not match the signature (named field, expected vs got)",
    503: "not ready, draining, or overloaded (Retry-After)",
}
_PARAMETER = re.compile(r"\{(\w+)\}")


def openapi_document(seal: Seal, routes: Sequence[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, seal)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"modelseal: {seal.name} {seal.version}",
            "version": __version__,
            "description": f"Seal {seal.digest}. Inputs: {_signature_text(seal)}",
        },
        "paths": paths,
    }


def _operation(route: Route, seal: Seal) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {route.produces: {"schema": ANY_OBJECT}}}
    }
    for status in route.errors:
        responses[str(status)] = {
            "description": ERRORS[status],
            "content": {"application/json": {"schema": ERROR}},
        }
    operation: dict[str, Any] = {"summary": route.summary, "responses": responses}
    parameters = [_path_parameter(name, seal) for name in _PARAMETER.findall(route.path)]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": route.body}},
        }
    return operation


def _path_parameter(name: str, seal: Seal) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if name == "name":
        schema["example"] = seal.name
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _signature_text(seal: Seal) -> str:
    return ", ".join(
        f"{spec.name} {datatype_of(spec.dtype)} {list(spec.shape)}"
        for spec in seal.signature.inputs
    )
