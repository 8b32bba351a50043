"""``modelseal serve``: pre-flight checks, then uvicorn with a graceful drain on SIGTERM.

Pre-flight (before the port is bound): resolve the source, check every digest, admit the
seal under the trust policy (signatures, a pinned digest, the pickle gate), choose the
device. A corrupt or untrusted seal or a missing GPU exits non-zero at once, naming what is
wrong. A remote seal (``s3://``, ``https://``, ``models:/``) runs the same pre-flight in the
background after the port is bound, so that a long download shows its progress on
``/health`` (``serving.fetching``); if it fails, the process exits non-zero as soon as the
reason is logged. With ``--drift exit`` a failed start-up verification (drift, or a model
that cannot load or run here) exits 1 too, once the report is logged, for Compose and plain
Docker where nothing reads readiness.

The drain contract. The first SIGTERM turns readiness 503 at once and stops a start-up still
under way (the model never turns ready after it). A server that was ready keeps serving for
``--drain-seconds``, so that load balancers and Kubernetes endpoints catch up, with
``Connection: close`` on every response. Then, in this order: new inference requests get
503; the queue is finished; the listening socket closes, after every connection already
waiting in its accept backlog has been taken, so that later connections are refused and
none is reset; every connection accepted before that gets a complete HTTP response (200 or
503) to the request it was opened for, within ``--header-timeout`` for one that has not sent
it yet; then the process exits 0. SIGINT (Ctrl-C) skips the window; a second signal exits at
once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from functools import partial
from pathlib import Path
from types import FrameType

import uvicorn

from modelseal.errors import DeviceError, RuntimeLoadError, SealError
from modelseal.seal.artifact import Seal
from modelseal.seal.trust import TrustPolicy
from modelseal.serving.app import create_app
from modelseal.serving.config import ServeConfig
from modelseal.serving.core import ModelServer
from modelseal.serving.device import DeviceChoice, choose_device
from modelseal.serving.fetching import SealFetch, is_remote
from modelseal.serving.listener import bind_listener
from modelseal.serving.logs import configure_logging, get_logger
from modelseal.serving.protocol import ConnectionLimits, protocol_with
from modelseal.serving.repository import ModelRepository, Peers
from modelseal.serving.workers import serve_workers
from modelseal.sources import ProgressObserver, SealCache, resolve
from modelseal.sources.cache import default_cache_dir, parse_max_bytes
from modelseal.verify import admit

log = get_logger("runner")
GRACEFUL_SHUTDOWN_SECONDS = 30


def preflight(
    source: str,
    config: ServeConfig,
    trust: TrustPolicy | None = None,
    *,
    cache: SealCache | None = None,
    progress: ProgressObserver | None = None,
    cancel: threading.Event | None = None,
) -> tuple[Seal, DeviceChoice]:
    """Everything that must fail before the server takes traffic (for a local seal, before
    it binds its port)."""
    policy = trust or TrustPolicy()
    seal = resolve(source, policy.expect_digest, progress=progress, cache=cache, cancel=cancel)
    admit(seal, policy)
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


def serve(
    source: str,
    config: ServeConfig,
    trust: TrustPolicy | None = None,
    *,
    cache_dir: Path | None = None,
    cache_max_bytes: int | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT; raises the start-up failure under ``--drift exit``, and
    a remote seal's fetch failure. ``cache_dir`` and ``cache_max_bytes`` size the cache that
    a remote seal is fetched into (default: ``MODELSEAL_CACHE_DIR``, ``..._MAX_BYTES``)."""
    configure_logging(config.log_format)
    cache = None
    if is_remote(source):
        from_environment = parse_max_bytes(os.environ.get("MODELSEAL_CACHE_MAX_BYTES"))
        cache = SealCache(
            cache_dir or default_cache_dir(os.environ),
            from_environment if cache_max_bytes is None else cache_max_bytes,
        )
        if config.workers == 1:
            checks = partial(preflight, source, config, trust, cache=cache)
            run_repository(ModelRepository(fetches=[SealFetch(source, config, checks)]), config)
            return
        # Several workers share one seal: it is fetched (progress in the log) before they fork.
    seal, device = preflight(source, config, trust, cache=cache)
    if config.workers == 1:
        run_server(seal, device, config)
        return
    status = serve_workers(seal, device, config)
    if status != 0:
        raise RuntimeLoadError(
            f"a worker exited with status {status} before it turned ready (its log says why)"
        )


def run_server(
    seal: Seal,
    device: DeviceChoice,
    config: ServeConfig,
    peers: Peers | None = None,
    listener: socket.socket | None = None,
) -> None:
    """One server process: on ``listener`` when given (a worker of several), else on the
    configured host and port; raises the start-up failure under ``--drift exit``."""
    run_repository(
        ModelRepository([ModelServer(seal, config, device)], peers=peers), config, listener
    )


def run_repository(
    models: ModelRepository, config: ServeConfig, listener: socket.socket | None = None
) -> None:
    """Serve ``models`` until SIGTERM or SIGINT has drained them, on ``listener`` (a worker of
    several) or else on the configured host and port, bound before anything starts."""
    if listener is None:
        listener = bind_listener(config.host, config.port)
    app = create_app(models)
    limits = ConnectionLimits(
        config.header_timeout_s, config.body_timeout_s, config.max_connections, app.refusal
    )
    uvicorn_config = uvicorn.Config(
        app.asgi,
        host=config.host,
        port=config.port,
        http=protocol_with(limits),
        lifespan="on",
        log_config=None,
        access_log=config.access_log,
        # Only the access log reads the client's address.
        proxy_headers=config.access_log,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = DrainingServer(uvicorn_config, models)
    server.run(sockets=[listener])
    if models.fetch_stuck:
        # Exit without joining the download threads still blocked in a read: every request
        # was answered, and the partial download is resumable whatever state it is in.
        logging.shutdown()
        os._exit(0)
    if server.startup_failure is not None:
        raise server.startup_failure


class DrainingServer(uvicorn.Server):
    """uvicorn, but SIGTERM drains as the module docstring says before it stops."""

    def __init__(self, config: uvicorn.Config, models: ModelRepository) -> None:
        super().__init__(config)
        self.models = models
        self.startup_failure: SealError | None = None
        self._drain: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        for listener in sockets or ():
            # uvicorn logs where it listens only for a socket it bound itself.
            host, port = listener.getsockname()[:2]
            url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
            log.info("listening on %s", url, extra={"host": host, "port": port})
        self._watch = self._loop.create_task(self._exit_if_startup_fails())

    async def on_tick(self, counter: int) -> bool:
        self.models.publish_readiness()
        return await super().on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain is not None or self._loop is None:
            self.force_exit = self._drain is not None
            super().handle_exit(sig, frame)
            return
        window = self.models.config.drain_seconds if sig == signal.SIGTERM else 0.0
        log.info("signal %s: draining", signal.Signals(sig).name)
        self._loop.call_soon_threadsafe(self._start_drain, window)

    def _start_drain(self, window: float) -> None:
        self._drain = asyncio.get_running_loop().create_task(self._run_drain(window))

    async def _run_drain(self, window: float) -> None:
        # A server that never turned ready has no traffic to drain: it stops at once.
        window = window if self.models.was_ready else 0.0
        self.models.begin_drain()
        log.info("readiness is 503; serving for %.1f s more", window)
        await asyncio.sleep(window)
        log.info("drain window over: finishing queued requests, then closing the listener")
        await self.models.finish_drain()
        self.should_exit = True

    async def _exit_if_startup_fails(self) -> None:
        failure = await self.models.settled()
        if failure is None or self._drain is not None:
            return
        if failure is self.models.fetch_failure:
            log.error("the seal could not be fetched: exiting")
        elif self.models.config.drift == "exit":
            log.error("start-up verification failed (--drift exit): exiting with status 1")
        else:
            return
        self.startup_failure = failure
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self._stop_listening()
        await super().shutdown(sockets)

    async def _stop_listening(self) -> None:
        """Close the listening sockets without resetting connections in their backlog: take
        every connection already queued, then close, with no await in between."""
        loop = asyncio.get_running_loop()
        listeners = [
            socket.socket(fileno=os.dup(sock.fileno()))
            for server in self.servers
            for sock in server.sockets
        ]
        for server in self.servers:
            server.close()  # the duplicates keep each socket listening until closed below
        queued: list[socket.socket] = []
        for listener in listeners:
            listener.setblocking(False)
            queued += _accept_queued(listener)
            listener.close()
        for connection in queued:
            await loop.connect_accepted_socket(self._new_protocol, connection)
        if queued:
            log.info("took %d queued connections before closing the listener", len(queued))

    def _new_protocol(self) -> asyncio.Protocol:
        # As uvicorn's own startup() builds the protocol of each connection it accepts.
        protocol: asyncio.Protocol = self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
            _loop=asyncio.get_running_loop(),
        )
        return protocol


def _accept_queued(listener: socket.socket) -> list[socket.socket]:
    accepted: list[socket.socket] = []
    while True:
        try:
            connection, _address = listener.accept()
        except (BlockingIOError, InterruptedError):
            return accepted
        accepted.append(connection)
