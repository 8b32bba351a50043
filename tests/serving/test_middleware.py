"""The middleware around the router: one error-to-status map, and the drain's closing of
connections only once a request's body has been read. Plain ASGI calls, in-process."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

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
from modelseal.serving.middleware import CloseWhileDraining, ErrorMapping, error_response


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (MalformedRequestError("x"), 400),
        (InputError("x"), 422),
        (UnknownModelError("x"), 404),
        (UnknownRouteError("x"), 404),
        (MethodNotAllowedError("x"), 405),
        (RequestTooLargeError("x"), 413),
        (OverloadedError("x"), 503),
        (NotAcceptingError("x"), 503),
        (SealError("x"), 500),
    ],
)
def test_each_error_has_its_status_and_a_json_body(error: SealError, status: int) -> None:
    response = error_response(error)
    assert response.status_code == status
    assert orjson.loads(response.body) == {"error": "x"}
    assert response.headers.get("retry-after") == ("1" if status == 503 else None)


SCOPE: Scope = {"type": "http", "method": "POST", "path": "/predict", "headers": []}


def call(app: object, messages: list[Message]) -> tuple[list[Message], list[Message]]:
    """Run an ASGI app on a request of ``messages``; what it sent, and what is left unread."""
    left = list(messages)
    sent: list[Message] = []

    async def receive() -> Message:
        return left.pop(0) if left else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(dict(SCOPE), receive, send))  # type: ignore[operator]
    return sent, left


async def answers_without_reading(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


BODY: list[Message] = [
    {"type": "http.request", "body": b"a", "more_body": True},
    {"type": "http.request", "body": b"b", "more_body": False},
]


def test_while_draining_the_body_is_read_to_its_end_before_a_closing_response() -> None:
    sent, left = call(CloseWhileDraining(answers_without_reading, lambda: True), BODY)
    assert left == []
    assert (b"connection", b"close") in sent[0]["headers"]


def test_outside_a_drain_responses_leave_the_connection_alone() -> None:
    sent, left = call(CloseWhileDraining(answers_without_reading, lambda: False), BODY)
    assert len(left) == 2 and sent[0]["headers"] == []


def test_an_unexpected_exception_is_a_json_500() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise ZeroDivisionError("division by zero")

    sent, _ = call(ErrorMapping(broken), [])
    assert sent[0]["status"] == 500
    assert orjson.loads(sent[1]["body"]) == {
        "error": "internal error: ZeroDivisionError: division by zero"
    }
