"""``modelseal serve``: pre-flight checks, then uvicorn with a graceful drain on SIGTERM.

Pre-flight (before the port is bound): resolve the source, check every digest, admit the
seal under the trust policy (signatures, the pickle gate), choose the device. A corrupt or
untrusted seal or a missing GPU exits non-zero at once, naming what is wrong.

Drain: the first SIGTERM flips readiness to 503 and keeps serving for ``drain_seconds``
(so load balancers and Kubernetes endpoints catch up), with ``Connection: close`` on every
response so no idle keep-alive connection is left to reset. Then new requests get 503, the
queue is finished, and once no request has come for a quarter second (at most 5 s more)
the process exits 0. SIGINT (Ctrl-C) skips the window; a second signal exits at once.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from types import FrameType

import uvicorn

from modelseal.errors import DeviceError
from modelseal.seal.artifact import Seal, open_seal
from modelseal.seal.trust import TrustPolicy
from modelseal.serving.app import create_app
from modelseal.serving.config import ServeConfig
from modelseal.serving.core import ModelServer
from modelseal.serving.device import DeviceChoice, choose_device
from modelseal.serving.logs import configure_logging, get_logger
from modelseal.sources import resolve_source
from modelseal.verify import admit

log = get_logger("runner")
GRACEFUL_SHUTDOWN_SECONDS = 30
QUIET_SECONDS = 0.25
LINGER_LIMIT_SECONDS = 5.0


def preflight(
    source: str, config: ServeConfig, trust: TrustPolicy | None = None
) -> tuple[Seal, DeviceChoice]:
    """Everything that must fail before the server binds its port."""
    seal = open_seal(resolve_source(source))
    admit(seal, trust or TrustPolicy())
    device = choose_device(config.device, seal.runtime, config.require_gpu)
    if config.half and not device.device.startswith("cuda"):
        raise DeviceError(
            f"--half runs the model in half precision on a GPU, but it would load on "
            f"{device.device}; drop --half or serve on a GPU"
        )
    gpu = device.gpu
    log.info(
        "seal verified and device chosen",
        extra={
            "seal_digest": seal.digest,
            "model": seal.name,
            "device": device.device,
            "gpu": gpu.name if gpu else None,
            "gpu_memory_mib": gpu.memory_mib if gpu else None,
        },
    )
    return seal, device


def serve(source: str, config: ServeConfig, trust: TrustPolicy | None = None) -> None:
    configure_logging(config.log_format)
    seal, device = preflight(source, config, trust)
    server = ModelServer(seal, config, device)
    uvicorn_config = uvicorn.Config(
        create_app(server),
        host=config.host,
        port=config.port,
        lifespan="on",
        log_config=None,
        access_log=config.access_log,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    DrainingServer(uvicorn_config, server).run()


class DrainingServer(uvicorn.Server):
    """uvicorn, but SIGTERM drains for ``drain_seconds`` before it stops."""

    def __init__(self, config: uvicorn.Config, model_server: ModelServer) -> None:
        super().__init__(config)
        self.model_server = model_server
        self._drain: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain is not None or self._loop is None:
            self.force_exit = self._drain is not None
            super().handle_exit(sig, frame)
            return
        window = self.model_server.config.drain_seconds if sig == signal.SIGTERM else 0.0
        log.info("signal %s: draining for %.1f s", signal.Signals(sig).name, window)
        self._loop.call_soon_threadsafe(self._start_drain, window)

    def _start_drain(self, window: float) -> None:
        self._drain = asyncio.get_running_loop().create_task(self._run_drain(window))

    async def _run_drain(self, window: float) -> None:
        self.model_server.begin_drain()
        await asyncio.sleep(window)
        log.info("drain window over: finishing queued requests, answering 503 until quiet")
        await self.model_server.finish_drain()
        # Closing the listening socket resets connections still in its accept backlog, so
        # keep answering 503 until clients have stopped sending (bounded).
        await self.model_server.wait_for_quiet(QUIET_SECONDS, LINGER_LIMIT_SECONDS)
        self.should_exit = True
