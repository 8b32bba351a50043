"""Serving a remote seal: bind the port first, fetch in the background, then load as usual.

A seal from ``s3://``, ``https://`` or ``models:/`` may take minutes to arrive, so that it is
not mistaken for a hang the server binds its port at once and runs the pre-flight
(``runner.preflight``: fetch with every digest checked, then choose the device) in the
background, in state ``FETCHING``. Liveness answers 200 throughout; readiness answers 503 with
the progress as its reason (``fetching s3://b/k: 41%, 1.2 GB of 2.9 GB (...)``); ``/health``
carries the progress (bytes, total, percent, rate, ETA, retries) and ``/metrics`` the
``modelseal_fetch_*`` series. Once the seal and its device are known, a ``ModelServer`` takes
the same state machine and metrics on from ``LOADING``. Local seals keep the pre-flight
before binding (a corrupt one, or a missing GPU, exits before the port is bound).

A fetch that fails (a corrupt object, a wrong ``--expect-digest``, 403 or 404, retries past
their deadline, no usable GPU) turns the server ``FAILED`` with the reason on ``/health`` and
``/seal``; the runner then exits with that error's status, whatever ``--drift`` says.
SIGTERM while fetching stops the download at its next piece or retry (the partial download
is kept, to resume at the next start) and the drain goes on as for any start-up.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from modelseal.errors import FetchCancelledError, NotAcceptingError, SealError, SourceError
from modelseal.seal.artifact import Seal
from modelseal.serving.config import ServeConfig
from modelseal.serving.core import ModelServer
from modelseal.serving.device import DeviceChoice
from modelseal.serving.health import HealthState, State
from modelseal.serving.logs import get_logger
from modelseal.serving.metrics import FetchMetrics, ServerMetrics
from modelseal.serving.offload import in_daemon_thread
from modelseal.sources import FetchProgress, LogProgress, ProgressObserver, parse_source
from modelseal.sources.locations import LocalSource
from modelseal.sources.progress import describe

log = get_logger("fetching")
STOP_SECONDS = 10.0
"""How long a drain waits for a fetch to stop: a read stuck on a silent network may not."""
STALLED_AFTER_S = 1.0
"""No byte for this long and /health shows the download as stalled, rate 0, no ETA."""


class Preflight(Protocol):
    """``runner.preflight`` bound to one source, taking what a background fetch adds."""

    def __call__(
        self, *, progress: ProgressObserver, cancel: threading.Event
    ) -> tuple[Seal, DeviceChoice]: ...


def is_remote(source: str) -> bool:
    """Whether ``source`` names a seal to fetch (``s3://``, ``https://``, ``models:/``)."""
    return not isinstance(parse_source(source), LocalSource)


class SealFetch:
    """One remote seal on its way: its state machine (``FETCHING`` first), progress and
    metrics, all handed on to the ``ModelServer`` built once the seal has arrived."""

    def __init__(self, source: str, config: ServeConfig, preflight: Preflight) -> None:
        self.source = parse_source(source).display
        """The source as messages show it (no secret in it)."""
        self.config = config
        self._started = time.monotonic()
        self._finished: float | None = None
        self.metrics = ServerMetrics(max_batch_size=config.max_batch_size)
        self.fetch_metrics = FetchMetrics(self.metrics.registry, self.seconds)
        self.health = HealthState(
            f"fetching {self.source}", state=State.FETCHING, on_change=self.metrics.set_state
        )
        self.metrics.set_state(State.FETCHING)
        self.progress: FetchProgress | None = None
        """The latest progress snapshot; None before the download starts (or from the cache)."""
        self.model: ModelServer | None = None
        """The model, once the seal has arrived and its device is chosen."""
        self.failure: SealError | None = None
        """Why the seal could not be fetched, else None."""
        self.ended = asyncio.Event()
        """Set once the fetch has ended: a model, a failure, or stopped by a drain."""
        self.stuck = False
        """A drain gave up waiting for the fetch to stop (see ``STOP_SECONDS``)."""
        self._preflight = preflight
        self._cancel = threading.Event()
        self._log_progress = LogProgress()
        self._lock = threading.Lock()
        self._observed_at = 0.0
        self._task: asyncio.Task[None] | None = None

    def begin(self, arrived: Callable[[ModelServer], None]) -> None:
        """Fetch in the background; ``arrived`` registers the model built from the seal."""
        self._started = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(
            self._run(arrived), name="modelseal-fetch"
        )

    def seconds(self) -> float:
        """How long the fetch ran (up to now while it runs)."""
        return (self._finished or time.monotonic()) - self._started

    async def _run(self, arrived: Callable[[ModelServer], None]) -> None:
        try:
            model = await self._fetch()
            if model is not None:
                arrived(model)
                self.model = model
        except FetchCancelledError:
            log.info(
                "the fetch of %s stopped; its partial download is kept for the next start",
                self.source, extra={"source": self.source},
            )  # fmt: skip
        except SealError as exc:
            self._fail(exc)
        except Exception as exc:
            log.exception("fetching %s failed", self.source, extra={"source": self.source})
            self._fail(SourceError(f"{self.source}: {type(exc).__name__}: {exc}"))
        finally:
            self.ended.set()
        if self.model is not None:
            self.model.begin_startup()

    async def _fetch(self) -> ModelServer | None:
        fetch = partial(self._preflight, progress=self._observe, cancel=self._cancel)
        seal, device = await in_daemon_thread(fetch)
        self._finished = time.monotonic()
        if self._cancel.is_set():
            return None  # arrived as SIGTERM came: the server is on its way out
        self.health.to(State.LOADING, "loading the model")
        return ModelServer(seal, self.config, device, health=self.health, metrics=self.metrics)

    def _observe(self, progress: FetchProgress) -> None:
        """Take a snapshot (from the download's threads): /health, metrics, a log line."""
        with self._lock:
            self.progress, self._observed_at = progress, time.monotonic()
            self.fetch_metrics.observe(progress.bytes_done, progress.bytes_total, progress.retries)
        self._log_progress(progress)

    def _fail(self, error: SealError) -> None:
        self._finished = self._finished or time.monotonic()
        self.failure = error
        log.error("the seal could not be fetched: %s", error, extra={"source": self.source})
        self.health.to(State.FAILED, f"the seal could not be fetched: {error}")

    # --- drain --------------------------------------------------------------------------------

    def begin_drain(self) -> None:
        """SIGTERM: stop the download where it is; the server never loads this seal now."""
        if self.model is not None:
            return  # the model drains itself
        self._cancel.set()
        if self.health.state is State.FETCHING:
            self.health.to(
                State.DRAINING,
                "shutting down: the fetch stops, its partial download is kept for the next start",
            )
        self.ended.set()

    async def finish_drain(self) -> None:
        """Wait for a stopped fetch to end, at most ``STOP_SECONDS``."""
        self._cancel.set()
        task = self._task
        if task is None or task.done() or self.model is not None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_SECONDS)
        except asyncio.TimeoutError:
            self.stuck = True
            log.warning(
                "the fetch of %s did not stop within %g s (a read is waiting on the network); "
                "exiting without it: its partial download is kept for the next start",
                self.source, STOP_SECONDS, extra={"source": self.source},
            )  # fmt: skip

    # --- what readiness, /health and the routes say meanwhile ---------------------------------

    def reason(self) -> str:
        """Why this model is not ready: the fetch's progress, or how the fetch ended."""
        state = self.health.state
        if state is not State.FETCHING:
            return f"{state.value}: {self.health.reason}"
        progress, stalled = self._latest()
        if progress is None:
            return f"fetching {self.source}: reading its manifest, checking the cache"
        if progress.phase != "downloading":
            return f"fetching {self.source}: {describe(progress)}"
        percent = "" if progress.fraction is None else f"{progress.fraction:.0%}, "
        waiting = f", no bytes for {stalled:.0f} s" if stalled else ""
        retries = f", {progress.retries} retries so far" if progress.retries else ""
        return f"fetching {self.source}: {percent}{describe(progress)}{waiting}{retries}"

    def not_ready(self) -> NotAcceptingError:
        return NotAcceptingError(f"the model is not ready ({self.reason()})")

    def health_body(self) -> dict[str, Any]:
        """``/health`` until the model exists: the state machine with the progress as its
        reason, the model's fields empty, and the fetch."""
        body = self.health.snapshot()
        body.update(
            reason=self.reason() if self.health.state is State.FETCHING else body["reason"],
            model=None, version=None, seal_digest=None, device=None, gpu=None, verdict=None,
            queue_depth=0, fetch=self.summary(),
        )  # fmt: skip
        return body

    def summary(self) -> dict[str, Any]:
        """The fetch on ``/health``: where from, how far, how fast, retries, how long."""
        progress, stalled = self._latest()
        fraction = progress.fraction if progress else None
        rate = progress.rate_bytes_per_s if progress else None
        eta = progress.eta_s if progress else None
        return {
            "source": self.source,
            "phase": self._phase(),
            "bytes_done": progress.bytes_done if progress else 0,
            "bytes_total": progress.bytes_total if progress else None,
            "percent": None if fraction is None else round(100 * fraction, 1),
            "rate_bytes_per_s": None if rate is None else round(rate),
            "eta_s": None if eta is None else round(eta, 1),
            "stalled_s": round(stalled, 1),
            "retries": progress.retries if progress else 0,
            "seconds": round(self.seconds(), 3),
        }

    def _latest(self) -> tuple[FetchProgress | None, float]:
        """The latest snapshot, and for how long no byte has come when that is more than
        ``STALLED_AFTER_S`` (then the rate is 0 and there is no ETA); else 0."""
        with self._lock:
            progress, observed = self.progress, self._observed_at
        if progress is None or progress.phase != "downloading":
            return progress, 0.0
        # Bytes that arrive are reported within REPORT_INTERVAL_S: an old snapshot is a stall.
        idle = time.monotonic() - observed
        if idle <= STALLED_AFTER_S:
            return progress, 0.0
        return dataclasses.replace(progress, rate_bytes_per_s=0.0, eta_s=None), idle

    def _phase(self) -> str:
        """starting, downloading, done, failed, or stopped (by a drain)."""
        if self.failure is not None:
            return "failed"
        if self.model is not None or (self._finished and not self._cancel.is_set()):
            return "done"
        if self._cancel.is_set():
            return "stopped"
        return self.progress.phase if self.progress else "starting"
