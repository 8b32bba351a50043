"""ASGI middleware around the router: errors become JSON responses with the right status (in
exactly one place, ``STATUS_OF``), every request is counted (404 and 405 too), and while the
server drains every response closes its connection."""

from __future__ import annotations

import time
from collections.abc import Callable
from http import HTTPStatus

import orjson
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelseal.errors import (
    InputError,
    MalformedRequestError,
    MethodNotAllowedError,
    NotAcceptingError,
    OverloadedError,
    RequestTooLargeError,
    SealError,
    UnknownModelError,
    UnknownRouteError,
)
from modelseal.serving.logs import get_logger
from modelseal.serving.metrics import OTHER_ROUTE, RequestMetrics

log = get_logger("http")
ROUTE_KEY = "modelseal.route"
"""Where the router leaves the matched route's template in the scope, for the metrics."""
RETRY_AFTER_SECONDS = 1
# Most specific first: the first class in an error's MRO found here decides its status.
STATUS_OF: dict[type[SealError], int] = {
    MalformedRequestError: 400,
    InputError: 422,
    UnknownModelError: 404,
    UnknownRouteError: 404,
    MethodNotAllowedError: 405,
    RequestTooLargeError: 413,
    OverloadedError: 503,
    NotAcceptingError: 503,
}


def error_response(error: SealError) -> Response:
    """``{"error": "..."}`` with the error's status, and ``Retry-After`` on a 503."""
    status = next((STATUS_OF[k] for k in type(error).__mro__ if k in STATUS_OF), 500)
    if status == 500:
        log.error("request failed: %s: %s", type(error).__name__, error)
    response = json_error(str(error), status)
    if status == 503:
        response.headers["retry-after"] = str(RETRY_AFTER_SECONDS)
    return response


def raw_error_response(error: SealError) -> bytes:
    """``error_response`` as the bytes of a whole HTTP/1.1 response, for the connection to
    write itself (``protocol``), keeping the connection open."""
    response = error_response(error)
    phrase = HTTPStatus(response.status_code).phrase
    head = [f"HTTP/1.1 {response.status_code} {phrase}"]
    head += [f"{name}: {value}" for name, value in response.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + bytes(response.body)


def json_error(message: str, status: int) -> Response:
    return Response(orjson.dumps({"error": message}), status, media_type="application/json")


class ErrorMapping:
    """A ``SealError`` from the app becomes its JSON error response; anything else a logged
    JSON 500. A client that went away gets nothing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except ClientDisconnect:
            return
        except SealError as exc:
            if started:
                raise
            await error_response(exc)(scope, receive, send)
        except Exception as exc:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                raise
            await json_error(f"internal error: {type(exc).__name__}: {exc}", 500)(
                scope, receive, send
            )


class RequestCounting:
    """Counts every answered request by route template (``other`` when none matched), method
    and status, with its latency. One the app never answered (its client went away, or the
    connection timed out, which ``protocol`` logs) is not counted."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status: int | None = None

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            if status is not None:
                route = scope.get(ROUTE_KEY, OTHER_ROUTE)
                elapsed = time.perf_counter() - started
                self.metrics.observe(route, scope["method"], status, elapsed)


class CloseWhileDraining:
    """While ``draining()``, every response says ``Connection: close``, so that no idle
    keep-alive connection is left for the shutdown to close under a client, and goes out only
    once the request's body has been read to its end: closing a socket with unread bytes
    resets it, and a reset can destroy the response before the client reads it."""

    def __init__(self, app: ASGIApp, draining: Callable[[], bool]) -> None:
        self.app = app
        self.draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body_read = False

        async def tracked_receive() -> Message:
            nonlocal body_read
            message = await receive()
            body_read = message["type"] == "http.disconnect" or not message.get("more_body")
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and self.draining():
                while not body_read:
                    await tracked_receive()
                headers = [*message.get("headers", []), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, tracked_receive, closing_send)
