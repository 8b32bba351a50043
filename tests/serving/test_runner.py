"""The drain's last step in-process, with real sockets: closing the listener takes every
connection still queued in its backlog first, so none of them is reset."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import uvicorn

from modelseal import open_seal
from modelseal.serving.app import create_app
from modelseal.serving.config import ServeConfig
from modelseal.serving.core import ModelServer
from modelseal.serving.device import DeviceChoice
from modelseal.serving.protocol import ConnectionLimits, protocol_with
from modelseal.serving.repository import ModelRepository
from modelseal.serving.runner import DrainingServer
from tests.serving.server import free_port

QUEUED = 5


def test_connections_in_the_backlog_are_taken_before_the_listener_closes(
    demo_seal_path: Path,
) -> None:
    config = ServeConfig(port=free_port())
    models = ModelRepository(
        [ModelServer(open_seal(demo_seal_path), config, DeviceChoice("cpu", None))]
    )
    app = create_app(models)
    limits = ConnectionLimits(10.0, 10.0, 100, app.refusal)
    server = DrainingServer(
        uvicorn.Config(
            app.asgi, port=config.port, http=protocol_with(limits), lifespan="on",
            log_config=None,
        ),
        models,
    )  # fmt: skip

    async def main() -> list[bytes]:
        serving = asyncio.ensure_future(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        # Connected, but the event loop never ran to accept them: they wait in the backlog.
        queued = [socket.create_connection(("127.0.0.1", config.port)) for _ in range(QUEUED)]
        await server._stop_listening()
        assert _refused(config.port), "the listener still accepts"
        answers = [await _live(connection) for connection in queued]
        server.should_exit = True
        await asyncio.wait_for(serving, 60)
        return answers

    answers = asyncio.run(main())
    assert all(answer.startswith(b"HTTP/1.1 200 OK") for answer in answers), answers


async def _live(connection: socket.socket) -> bytes:
    reader, writer = await asyncio.open_connection(sock=connection)
    writer.write(b"GET /v2/health/live HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 60)
    writer.close()
    return answer


def _refused(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False
