"""The HTTP connection: uvicorn's httptools protocol with read timeouts, a connection limit,
and a shutdown that answers every request a connection was opened for.

- Header timeout: a request's headers must arrive within ``header_timeout_s`` of its first
  byte (of connecting, for a new connection); a body within ``body_timeout_s`` of its
  headers. Otherwise the connection is closed, after a 408 when the client is owed one (it
  began a request and no response has started). Slow-loris clients, stalled uploads and a
  Content-Length larger than the body sent hold a connection no longer than that.
- Connection limit: a connection opened while ``max_connections`` are open gets a cheap
  503 with ``Retry-After`` to its request (no routing, no model) and is closed.
- Fast refusal: a request its model would refuse anyway (``refusal``, from the app) is
  answered at once from here, with no task and no app, and the connection is then not read
  for the ``Retry-After`` it was told: a client that retries at once waits anyway. Under a
  retry storm refusals stay a small part of the CPU, and the requests served keep the rest.
- Shutdown (the listener is already closed): a request in progress finishes and its
  connection closes after the response; a connection that has not yet sent its first request
  is kept until it does (answered, then closed) or its header timeout; an idle keep-alive
  connection closes at once, as it would after its keep-alive timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from modelseal.errors import OverloadedError
from modelseal.serving.logs import get_logger
from modelseal.serving.middleware import RETRY_AFTER_SECONDS, error_response

log = get_logger("http")
Refusal = Callable[[str, str], "bytes | None"]
"""``(method, path)`` -> the whole response to send at once instead of running the app."""


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    refusal: Refusal


def protocol_with(limits: ConnectionLimits) -> type[GuardedHttpProtocol]:
    """The protocol class uvicorn builds each connection with, under ``limits``."""
    return type("ModelsealHttpProtocol", (GuardedHttpProtocol,), {"limits": limits})


class GuardedHttpProtocol(HttpToolsProtocol):
    limits: ClassVar[ConnectionLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None
        self._cool_down: asyncio.TimerHandle | None = None
        self._request_begun = False
        """Bytes of a request have come whose headers are not complete yet."""
        self._body_pending = False
        """A request's headers have come and the end of its body has not."""
        self._timer_part = ""
        """What the read timer waits for: headers or body ("" when none runs)."""
        self._requests = 0
        self._over_capacity = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._over_capacity = True
            self.app = self._answer_over_capacity
        self._expect("headers", self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        if self._cool_down is not None:
            self._cool_down.cancel()
        super().connection_lost(exc)

    # --- parser callbacks -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Timers are armed for what is still missing once the bytes that came are parsed: a
        # request that arrives whole (the usual case) costs no timer at all.
        if self._body_pending:
            if self._timer_part != "body":
                self._expect("body", self.limits.body_timeout_s)
        elif self._request_begun and self._read_timer is None:
            self._expect("headers", self.limits.header_timeout_s)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True

    def on_headers_complete(self) -> None:
        self._stop_timer()
        self._request_begun = False
        self._body_pending = True
        self._requests += 1
        if not self._refused_at_once():
            super().on_headers_complete()
            if type(self.cycle) is RequestResponseCycle:
                self.cycle.__class__ = OneWriteCycle

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._body_pending = False
        self._stop_timer()
        if isinstance(self.cycle, _Answered):
            self.on_response_complete()  # the body is read: the connection may go idle
            self.flow.pause_reading()
            self._cool_down = self.loop.call_later(RETRY_AFTER_SECONDS, self._resume)

    def _resume(self) -> None:
        self._cool_down = None
        self.flow.resume_reading()

    def _refused_at_once(self) -> bool:
        if self._over_capacity:
            return False  # its answer closes the connection
        if self.cycle is not None and not self.cycle.response_complete:
            return False  # behind a pipelined request: answers must keep their order
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        answer = self.limits.refusal(self.parser.get_method().decode("ascii"), path)
        if answer is None:
            return False
        self.transport.write(answer)
        self.cycle = _Answered()  # type: ignore[assignment]
        return True

    # --- shutdown ---------------------------------------------------------------------------

    def shutdown(self) -> None:
        in_progress = self.cycle is not None and not self.cycle.response_complete
        if in_progress:
            self.cycle.keep_alive = False
        elif self._requests and not self._request_begun:
            self.transport.close()
        # Otherwise the client opened this connection for a request that has not come yet:
        # it is answered (the app closes the connection while draining) or timed out.

    # --- timeouts ---------------------------------------------------------------------------

    def _expect(self, part: str, seconds: float) -> None:
        self._stop_timer()
        self._read_timer = self.loop.call_later(seconds, self._timed_out, part, seconds)
        self._timer_part = part

    def _stop_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
            self._timer_part = ""

    def _timed_out(self, part: str, seconds: float) -> None:
        self._read_timer = None
        self._timer_part = ""
        if self.transport.is_closing():
            return
        cycle = self.cycle if part == "body" else None
        owed = not cycle.response_started if cycle is not None else self._request_begun
        log.info(
            "closing a connection whose request %s did not arrive within %g s",
            part,
            seconds,
            extra={"client": self.client, "answered": "408" if owed else "nothing"},
        )
        if owed:
            flag = "--header-timeout" if part == "headers" else "--body-timeout"
            self.transport.write(_timeout_response(part, seconds, flag))
        if cycle is not None:
            # The app's next receive() sees the client gone and its response goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    async def _answer_over_capacity(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        while message["type"] == "http.request" and message.get("more_body"):
            message = await receive()  # read to its end: closing on unread bytes resets
        response = error_response(
            OverloadedError(
                f"this server already has {len(self.connections) - 1} open connections "
                f"(--max-connections {self.limits.max_connections}); retry shortly"
            )
        )
        response.headers["connection"] = "close"
        await response(scope, receive, send)


class OneWriteCycle(RequestResponseCycle):
    """uvicorn's request cycle, but a response's head waits for its body when that comes
    whole, and both go out in one write: one ``send(2)`` and one TCP segment per response
    instead of two, for the server and for the client. Everything else is uvicorn's."""

    held: Any = None
    """The ``http.response.start`` message not written yet."""

    async def send(self, message: Any) -> None:
        if self.held is None:
            if message["type"] == "http.response.start" and not self.response_started:
                self.held = message
                return
            await super().send(message)
            return
        if message["type"] == "http.response.start":
            # Nothing was written: uvicorn's own 500 for an app that failed after starting
            # its response replaces that response whole.
            self.held = message
            return
        start, self.held = self.held, None
        if message["type"] != "http.response.body" or message.get("more_body", False):
            await super().send(start)
            await super().send(message)
            return
        transport = self.transport
        joined = _JoinedWrites(transport)
        self.transport = joined  # type: ignore[assignment]
        try:
            await super().send(start)
            await super().send(message)
        finally:
            self.transport = transport
            joined.flush()


class _JoinedWrites:
    """A transport that keeps what is written until ``flush`` (or ``close``) writes it all at
    once; the rest is the real transport's."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def flush(self) -> None:
        if self.parts:
            data = b"".join(self.parts)
            self.parts = []
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _Answered:
    """The cycle of a request this connection answered itself: complete from the start, so
    uvicorn drops the body that follows."""

    response_started = True
    response_complete = True
    keep_alive = True

    def __init__(self) -> None:
        self.message_event = asyncio.Event()


def _timeout_response(part: str, seconds: float, flag: str) -> bytes:
    body = orjson.dumps(
        {"error": f"the request {part} did not arrive within {seconds:g} s ({flag}); send it "
         "in one go, or raise the timeout"}
    )  # fmt: skip
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body
