"""What is around the router: errors become JSON responses with the right status (in
exactly one place, ``STATUS_OF``), every request is counted (404 and 405 too), and while the
server drains every response closes its connection."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import orjson
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

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
BODY_READ_KEY = "modelseal.body_read"
"""Set in the scope once the request's body has been read to its end."""
Router = Callable[[Scope, Receive], Awaitable[Response]]
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


class HttpFront:
    """Around the router, in one layer (each ASGI layer costs every request a coroutine and
    wrapped ``send``/``receive`` calls): a ``SealError`` becomes its JSON error response,
    anything else a logged JSON 500; every answered request is counted by route template
    (``other`` when none matched), method and status, with its latency; and while
    ``draining()`` every response says ``Connection: close`` and goes out only once the
    request's body has been read to its end (closing a socket with unread bytes resets it,
    and a reset can destroy the response before the client reads it). A client that went
    away gets nothing and is not counted.

    ``route(scope, receive)`` returns the whole response: nothing is sent before it has
    one, so an error can always still be answered."""

    def __init__(
        self, route: Router, metrics: RequestMetrics, draining: Callable[[], bool]
    ) -> None:
        self.route = route
        self.metrics = metrics
        self.draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            response = await self.route(scope, receive)
        except ClientDisconnect:
            return
        except SealError as exc:
            response = error_response(exc)
        except Exception as exc:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            response = json_error(f"internal error: {type(exc).__name__}: {exc}", 500)
        if self.draining():
            if not await _read_to_end(scope, receive):
                return
            response.headers["connection"] = "close"
        await response(scope, receive, send)
        elapsed = time.perf_counter() - started
        route = scope.get(ROUTE_KEY, OTHER_ROUTE)
        self.metrics.observe(route, scope["method"], response.status_code, elapsed)


def body_read(scope: Scope) -> None:
    """Mark the request's body as read to its end (``handlers.read_body`` does)."""
    scope[BODY_READ_KEY] = True


async def _read_to_end(scope: Scope, receive: Receive) -> bool:
    """Read what is left of the request's body; False when the client went away."""
    while not scope.get(BODY_READ_KEY):
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        scope[BODY_READ_KEY] = not message.get("more_body")
    return True
