"""The ASGI application: the route table's router inside the front (errors, metrics,
drain), and the lifespan that starts every model's start-up and finishes its drain.

    HttpFront( Router(ROUTES) )
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from re import Pattern

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from modelseal.errors import (
    MethodNotAllowedError,
    NotAcceptingError,
    UnknownModelError,
    UnknownRouteError,
)
from modelseal.serving.handlers import Serving
from modelseal.serving.metrics import RequestMetrics
from modelseal.serving.middleware import ROUTE_KEY, HttpFront, raw_error_response
from modelseal.serving.openapi import openapi_document
from modelseal.serving.repository import ModelRepository
from modelseal.serving.routes import ROUTES, Route


@dataclass(frozen=True)
class ServerApp:
    asgi: ASGIApp
    """The ASGI application."""
    refusal: FastRefusal
    """What connections answer themselves, without the application (see ``protocol``)."""


def create_app(models: ModelRepository) -> ServerApp:
    serving = Serving(
        models=models,
        requests=RequestMetrics([route.path for route in ROUTES]),
        openapi=cache(lambda: orjson.dumps(openapi_document(models.default.seal, ROUTES))),
    )
    http = HttpFront(Router(ROUTES, serving), serving.requests, lambda: models.draining)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(models, receive, send)
        elif scope["type"] == "http":
            await http(scope, receive, send)

    return ServerApp(app, FastRefusal(ROUTES, serving))


class Router:
    """The response of a request's route handler; no route is ``UnknownRouteError`` (404)
    and another method ``MethodNotAllowedError`` (405), both JSON like every other error.
    Paths without parameters are found by a dict lookup, before any pattern is tried."""

    def __init__(self, routes: Sequence[Route], serving: Serving) -> None:
        self._routes: list[tuple[Pattern[str], Route]] = [
            (compile_path(route.path)[0], route) for route in routes
        ]
        self._static: dict[tuple[str, str], Route] = {
            (route.method, route.path): route for route in routes if "{" not in route.path
        }
        self._shaped: dict[tuple[str, int, str], list[tuple[Pattern[str], Route]]] = {}
        for pattern, route in self._routes:
            if "{" in route.path:
                self._shaped.setdefault(_shape(route), []).append((pattern, route))
        self._serving = serving

    async def __call__(self, scope: Scope, receive: Receive) -> Response:
        method, path = scope["method"], scope["path"]
        route = self._static.get((method, path))
        if route is not None:
            scope[ROUTE_KEY] = route.path
            scope["path_params"] = {}
            return await route.handler(Request(scope, receive), self._serving)
        # A parameterised route is tried only by the routes of its method, segment count and
        # last segment (one pattern for an inference request, not the whole table).
        segments = path.split("/")
        for last in (segments[-1], "*"):
            for pattern, route in self._shaped.get((method, len(segments), last), ()):
                match = pattern.match(path)
                if match is not None:
                    scope[ROUTE_KEY] = route.path
                    scope["path_params"] = match.groupdict()
                    return await route.handler(Request(scope, receive), self._serving)
        return await self._fallback(scope, receive, method, path)

    async def _fallback(self, scope: Scope, receive: Receive, method: str, path: str) -> Response:
        """Every pattern, in order: HEAD on a GET route, 405 for another method, else 404."""
        allowed: list[Route] = []
        for pattern, route in self._routes:
            match = pattern.match(path)
            if match is None:
                continue
            if method == route.method or (method == "HEAD" and route.method == "GET"):
                scope[ROUTE_KEY] = route.path
                scope["path_params"] = match.groupdict()
                return await route.handler(Request(scope, receive), self._serving)
            allowed.append(route)
        if allowed:
            scope[ROUTE_KEY] = allowed[0].path
            methods = ", ".join(route.method for route in allowed)
            raise MethodNotAllowedError(
                f"{method} {path}: this server does not take this method on this path (it "
                f"takes {methods}); see /openapi.json"
            )
        raise UnknownRouteError(
            f"{method} {path}: this server has no route for this path; see /openapi.json"
        )


def _shape(route: Route) -> tuple[str, int, str]:
    """What a request must share with a parameterised route to match it: the method, the
    number of path segments and the last one (``*`` where that is a parameter)."""
    segments = route.path.split("/")
    last = segments[-1]
    return route.method, len(segments), "*" if last.startswith("{") else last


class FastRefusal:
    """What a connection answers at once, without the app, to an inference request its model
    would refuse anyway (not ready, or full): under a retry storm a refusal then costs a
    fraction of an answer, and answers keep their share of the CPU. Counted in the metrics
    like any request. None lets the app answer (and while draining it always does, as it
    closes connections)."""

    def __init__(self, routes: Sequence[Route], serving: Serving) -> None:
        self._inference = [
            (compile_path(route.path)[0], route) for route in routes if route.body is not None
        ]
        self._serving = serving

    def __call__(self, method: str, path: str) -> bytes | None:
        models = self._serving.models
        if method != "POST" or models.draining:
            return None
        for pattern, route in self._inference:
            match = pattern.match(path)
            if match is None:
                continue
            params = match.groupdict()
            try:
                model = models.model(params["name"], params.get("version")) if params else None
                refusal = (model or models.default).refusal()
            except UnknownModelError:
                return None
            except NotAcceptingError as not_yet:  # the seal is still being fetched
                refusal = not_yet
            if refusal is None:
                return None
            self._serving.requests.observe(route.path, method, 503, 0.0)
            return raw_error_response(refusal)
        return None


async def _lifespan(models: ModelRepository, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            models.begin_startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await models.finish_drain()
            await send({"type": "lifespan.shutdown.complete"})
            return
