"""Prometheus metrics on private registries: one per served model, one for HTTP requests.

A private ``CollectorRegistry`` keeps these metrics apart from anything else in the process
(and lets tests build many servers). Label values are bounded by construction: routes must be
among the templates given at construction (others count as ``other``), methods among the
standard ones, and the drift verdict is one series at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client import Enum as EnumMetric

import modelseal
from modelseal.serving.health import State
from modelseal.types import NamedArrays

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The ``Content-Type`` of the exposition format the registries render."""
OTHER_ROUTE = "other"
"""The route label of a request whose route is not one of the known templates."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Sub-millisecond buckets: a small model answers in well under a millisecond.
_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class RequestMetrics:
    """HTTP requests by route template, method and status, and their latency.

    ``routes`` are the route templates (``/v2/models/{name}/infer``, never raw paths).
    """

    def __init__(self, routes: Collection[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._routes = frozenset(routes)
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.requests = Counter(
            "modelseal_requests",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelseal_request_duration_seconds",
            "HTTP request latency by route template.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one HTTP request and its latency; ``route`` is the matched template."""
        method = method if method in _METHODS else "OTHER"
        series = self._series.get((route, method, status))
        if series is None:
            series = self._series[(route, method, status)] = self._new_series(route, method, status)
        series[0].inc()
        series[1].observe(seconds)

    def _new_series(self, route: str, method: str, status: int) -> tuple[Counter, Histogram]:
        # Looked up once per (route, method, status): as bounded as the labels.
        route = route if route in self._routes else OTHER_ROUTE
        return self.requests.labels(route, method, str(status)), self.latency.labels(route)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ServerMetrics:
    """The metrics of one served model, named ``modelseal_*``.

    ``max_batch_size`` sets the batch size buckets (1, 2, 4, ... up to it).
    """

    def __init__(self, *, max_batch_size: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.inference_latency = Histogram(
            "modelseal_inference_duration_seconds",
            "Time in the model's predict, per batch.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "modelseal_batch_size_rows",
            "Rows per batch run by the model.",
            buckets=batch_size_buckets(max_batch_size),
            registry=registry,
        )
        self.queue_depth = Gauge(
            "modelseal_queue_depth",
            "Requests waiting for a batch.",
            registry=registry,
        )
        self.queue_wait = Histogram(
            "modelseal_queue_wait_seconds",
            "How long the oldest request of each batch waited before the batch ran.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.state = EnumMetric(
            "modelseal_state",
            "The server's state (fetching, loading, verifying, warming, ready, failed, draining).",
            states=[state.value for state in State],
            registry=registry,
        )
        self.probe_ok = Gauge(
            "modelseal_probe_ok",
            "1 when the last inference probe passed, 0 when it failed.",
            registry=registry,
        )
        self.drift_verdict = Gauge(
            "modelseal_drift_verdict",
            "1 for the start-up verdict (consistent, drift, load-failed, run-failed).",
            ["verdict"],
            registry=registry,
        )
        self.drift_warning = Gauge(
            "modelseal_drift_warning",
            "1 when serving despite drift (--drift warn), else 0.",
            registry=registry,
        )
        self.device = Info("modelseal_device", "The device the model runs on.", registry=registry)
        self.build = Info("modelseal_build", "What this server serves.", registry=registry)
        self.state.state(State.LOADING.value)
        self.probe_ok.set(1)
        self._verdict: str | None = None

    def observe_batch(self, rows: int, waited_s: float) -> None:
        """Record one batch; matches ``AdaptiveBatcher``'s ``on_batch`` callback."""
        self.batch_size.observe(rows)
        self.queue_wait.observe(waited_s)

    def timed(
        self, predict: Callable[[NamedArrays], NamedArrays]
    ) -> Callable[[NamedArrays], NamedArrays]:
        """Wrap a predict function so that each call is observed as inference latency."""

        def timed_predict(inputs: NamedArrays) -> NamedArrays:
            started = time.perf_counter()
            try:
                return predict(inputs)
            finally:
                self.inference_latency.observe(time.perf_counter() - started)

        return timed_predict

    def track_queue_depth(self, depth: Callable[[], float]) -> None:
        """Read the queue depth from ``depth`` (e.g. the batcher's) at each scrape."""
        self.queue_depth.set_function(depth)

    def set_state(self, state: State) -> None:
        """Record the server's state; matches ``HealthState``'s ``on_change`` callback."""
        self.state.state(state.value)

    def set_probe(self, ok: bool) -> None:
        """Record the latest inference probe result."""
        self.probe_ok.set(1 if ok else 0)

    def set_verdict(self, verdict: str) -> None:
        """Record the start-up verdict (consistent, drift, load-failed, run-failed)."""
        if self._verdict is not None and self._verdict != verdict:
            self.drift_verdict.remove(self._verdict)
        self._verdict = verdict
        self.drift_verdict.labels(verdict).set(1)

    def set_serving_despite_drift(self) -> None:
        """The model drifted and serves anyway (``--drift warn``): the warning metric is 1."""
        self.drift_warning.set(1)

    def set_device(self, device: str, gpu_name: str | None) -> None:
        """Record the device (``cpu``, ``cuda:0``) and the GPU's name (empty when none)."""
        self.device.info({"device": device, "gpu_name": gpu_name or ""})

    def set_build(self, model_name: str, model_version: str, seal_digest: str) -> None:
        """Record what is served, with this modelseal's version."""
        self.build.info(
            {
                "modelseal_version": modelseal.__version__,
                "model_name": model_name,
                "model_version": model_version,
                "seal_digest": seal_digest,
            }
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class FetchMetrics:
    """How the fetch of a remote seal goes, on its model's registry (``ServerMetrics``)."""

    def __init__(self, registry: CollectorRegistry, seconds: Callable[[], float]) -> None:
        self.bytes = Gauge(
            "modelseal_fetch_bytes",
            "Bytes of the seal fetched so far (parts kept from an earlier start included).",
            registry=registry,
        )
        self.size = Gauge(
            "modelseal_fetch_size_bytes",
            "Size of the seal being fetched (0 until known).",
            registry=registry,
        )
        self.retries = Counter(
            "modelseal_fetch_retries",
            "Transient errors retried while fetching the seal.",
            registry=registry,
        )
        self.seconds = Gauge(
            "modelseal_fetch_seconds",
            "Seconds spent fetching the seal (so far, while it is fetched).",
            registry=registry,
        )
        self.seconds.set_function(seconds)
        self._retries = 0

    def observe(self, bytes_done: int, bytes_total: int | None, retries: int) -> None:
        """Record a progress snapshot of the fetch."""
        self.bytes.set(bytes_done)
        self.size.set(bytes_total or 0)
        if retries > self._retries:
            self.retries.inc(retries - self._retries)
            self._retries = retries


def batch_size_buckets(max_batch_size: int) -> tuple[float, ...]:
    """Powers of two up to ``max_batch_size``, and ``max_batch_size`` itself: 1, 2, 4, ..."""
    buckets: list[float] = []
    size = 1
    while size < max_batch_size:
        buckets.append(size)
        size *= 2
    buckets.append(max(max_batch_size, 1))
    return tuple(buckets)
