"""The front around the router: one error-to-status map, every answer counted, and the
drain's closing of connections only once a request's body has been read. Plain ASGI calls,
in-process."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import Response
from starlette.types import Message, Receive, Scope

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
from modelseal.serving.metrics import RequestMetrics
from modelseal.serving.middleware import ROUTE_KEY, HttpFront, body_read, error_response


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


def call(
    route: object, messages: list[Message], *, draining: bool = False
) -> tuple[list[Message], list[Message], RequestMetrics]:
    """Run the front around ``route`` on a request of ``messages``; what it sent, what is
    left unread, and the request metrics."""
    left = list(messages)
    sent: list[Message] = []
    metrics = RequestMetrics(["/predict"])

    async def receive() -> Message:
        return left.pop(0) if left else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    front = HttpFront(route, metrics, lambda: draining)  # type: ignore[arg-type]
    asyncio.run(front(dict(SCOPE), receive, send))
    return sent, left, metrics


async def answers_without_reading(scope: Scope, receive: Receive) -> Response:
    scope[ROUTE_KEY] = "/predict"
    return Response(b"{}", 503)


async def reads_its_body(scope: Scope, receive: Receive) -> Response:
    while (await receive()).get("more_body"):
        pass
    body_read(scope)
    return Response(b"{}", 200)


BODY: list[Message] = [
    {"type": "http.request", "body": b"a", "more_body": True},
    {"type": "http.request", "body": b"b", "more_body": False},
]


def test_while_draining_the_body_is_read_to_its_end_before_a_closing_response() -> None:
    sent, left, _ = call(answers_without_reading, BODY, draining=True)
    assert left == []
    assert (b"connection", b"close") in sent[0]["headers"]


def test_while_draining_a_body_already_read_is_not_read_again() -> None:
    # Reading past the end would wait for the client to go away.
    extra: Message = {"type": "http.request", "body": b"next", "more_body": False}
    sent, left, _ = call(reads_its_body, [*BODY, extra], draining=True)
    assert left == [extra]
    assert sent[0]["status"] == 200 and (b"connection", b"close") in sent[0]["headers"]


def test_outside_a_drain_responses_leave_the_connection_alone() -> None:
    sent, left, _ = call(answers_without_reading, BODY)
    assert len(left) == 2
    assert (b"connection", b"close") not in sent[0]["headers"]


def test_an_unexpected_exception_is_a_json_500() -> None:
    async def broken(scope: Scope, receive: Receive) -> Response:
        raise ZeroDivisionError("division by zero")

    sent, _, _ = call(broken, [])
    assert sent[0]["status"] == 500
    assert orjson.loads(sent[1]["body"]) == {
        "error": "internal error: ZeroDivisionError: division by zero"
    }


def test_every_answer_is_counted_by_route_method_and_status() -> None:
    _, _, metrics = call(answers_without_reading, BODY)
    _, _, unmatched = call(reads_its_body, BODY)
    assert counts(metrics) == {("/predict", "POST", "503"): 1.0}
    assert counts(unmatched) == {("other", "POST", "200"): 1.0}


def counts(metrics: RequestMetrics) -> dict[tuple[str, str, str], float]:
    return {
        (sample.labels["route"], sample.labels["method"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        if family.name == "modelseal_requests"
        for sample in family.samples
        if sample.name == "modelseal_requests_total"
    }
