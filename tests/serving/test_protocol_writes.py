"""A response leaves in one write: the connection's request cycle (``protocol.OneWriteCycle``)
holds a response's head until its body comes whole, on a real socket pair and event loop."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl

from modelseal.serving.protocol import OneWriteCycle

BODY = b'{"predictions":{"scores":[0.5]}}'
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))],
}


class CountedWrites:
    """The real transport, counting the writes made to it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


async def exchange(
    messages: list[dict[str, Any]], *, keep_alive: bool
) -> tuple[list[bytes], bytes, int]:
    """Send ``messages`` through a cycle on one end of a socket pair: the writes made, the
    bytes the other end read, and how often the response was reported complete."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    counted = CountedWrites(transport)
    completed = []
    cycle = OneWriteCycle(
        scope={"type": "http", "method": "POST", "path": "/predict"},  # type: ignore[typeddict-item]
        transport=counted,  # type: ignore[arg-type]
        flow=FlowControl(transport),
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=[(b"server", b"modelseal")],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: completed.append(True),
    )
    for message in messages:
        await cycle.send(message)
    theirs.setblocking(False)
    received = b""
    while not received.endswith(BODY):
        chunk = await loop.sock_recv(theirs, 65536)
        if not chunk:
            break
        received += chunk
    transport.close()
    theirs.close()
    return counted.writes, received, len(completed)


@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "close"])
def test_a_whole_response_goes_out_in_one_write(keep_alive: bool) -> None:
    body = {"type": "http.response.body", "body": BODY, "more_body": False}
    writes, received, completed = asyncio.run(exchange([START, body], keep_alive=keep_alive))
    assert len(writes) == 1
    head, _, payload = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and payload == BODY
    assert b"server: modelseal" in head and b"content-length: %d" % len(BODY) in head
    assert (b"connection: close" in head) is not keep_alive
    assert completed == 1


def test_a_streamed_body_still_goes_out_chunk_by_chunk() -> None:
    half = len(BODY) // 2
    messages = [
        START,
        {"type": "http.response.body", "body": BODY[:half], "more_body": True},
        {"type": "http.response.body", "body": BODY[half:], "more_body": False},
    ]
    writes, received, completed = asyncio.run(exchange(messages, keep_alive=True))
    assert len(writes) == 3  # the head with the first chunk's arrival, then each chunk
    assert received.endswith(b"\r\n\r\n" + BODY) and completed == 1
