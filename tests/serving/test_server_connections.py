"""Connections that never finish their request, over real sockets: slow-loris headers, a
stalled or trickling upload, a Content-Length larger than the body. Each is closed after
its timeout, with a 408 when the client began a request; the server keeps serving."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving.server import RunningServer, start_server

pytestmark = pytest.mark.slow
PATIENCE_SECONDS = 60.0
"""Far past the 1 s timeouts the server runs with: a server without them fails the test."""


@pytest.fixture(scope="module")
def server(
    demo_seal_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    running = start_server(
        demo_seal_path, tmp_path_factory.mktemp("logs"),
        "--header-timeout", "1", "--body-timeout", "1",
    )  # fmt: skip
    yield running
    assert running.stop() == 0, running.logs()


def connect(server: RunningServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE_SECONDS)


def read_until_closed(connection: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass  # a reset after the response: the client was still sending
    return b"".join(chunks)


def assert_timed_out(response: bytes, flag: str) -> None:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout"), response[:300]
    assert b"connection: close" in head
    assert flag.encode() in body


def test_headers_that_never_end_get_408_and_a_close(server: RunningServer) -> None:
    with connect(server) as loris:
        loris.sendall(b"POST /predict HTTP/1.1\r\nhost: test\r\nx-slow: ")
        assert_timed_out(read_until_closed(loris), "--header-timeout")


def test_a_connection_that_sends_nothing_is_closed_without_a_word(server: RunningServer) -> None:
    with connect(server) as silent:
        assert read_until_closed(silent) == b""


def test_a_body_shorter_than_its_content_length_gets_408_and_a_close(
    server: RunningServer,
) -> None:
    with connect(server) as liar:
        liar.sendall(
            b"POST /predict HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
            b"content-length: 1000\r\n\r\n" + b'{"features": [1'
        )
        assert_timed_out(read_until_closed(liar), "--body-timeout")


def test_a_trickling_upload_is_cut_off_at_the_body_timeout(server: RunningServer) -> None:
    with connect(server) as uploader:
        uploader.sendall(
            b"POST /predict HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
            b"content-length: 100000\r\n\r\n" + b'{"features": ['
        )
        stop = threading.Event()

        def trickle() -> None:
            while not stop.is_set():
                try:
                    uploader.send(b"0, ")
                except OSError:
                    return
                time.sleep(0.05)

        sender = threading.Thread(target=trickle)
        sender.start()
        try:
            response = read_until_closed(uploader)
        finally:
            stop.set()
            sender.join()
    assert_timed_out(response, "--body-timeout")


def test_the_server_keeps_serving_while_connections_hang(server: RunningServer) -> None:
    with connect(server) as hanging:
        hanging.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
        assert httpx.get(server.url + "/v2/health/live", timeout=30).status_code == 200
        assert httpx.post(server.url + "/predict", json={"features": [0.0] * 64}).is_success
        assert_timed_out(read_until_closed(hanging), "--header-timeout")
