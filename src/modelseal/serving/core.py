"""The one core behind every protocol route: the loaded model, the batcher, health, metrics.

Start-up runs in the background while the server already answers liveness, one step at a
time, each logged with its duration and the seal digest: load runtime -> environment diff
-> golden replay -> warm-up -> ready. The integrity check and the device check ran before
(``runner.preflight``), so a corrupt seal or a missing GPU never gets this far.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import numpy as np

from modelseal.errors import NotAcceptingError, RuntimeLoadError
from modelseal.golden.compare import compare_output
from modelseal.golden.store import Golden, load_golden
from modelseal.runtimes.base import Loaded
from modelseal.seal.artifact import Seal
from modelseal.serving.batcher import AdaptiveBatcher
from modelseal.serving.config import ServeConfig
from modelseal.serving.device import DeviceChoice
from modelseal.serving.health import HealthState, InferenceProbe, State
from modelseal.serving.logs import get_logger
from modelseal.serving.metrics import ServerMetrics
from modelseal.types import NamedArrays
from modelseal.verify import Verdict, Verification, VerifyReport, seal_policies

log = get_logger("server")
T = TypeVar("T")

ROUTES = (
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/{name}",
    "/v2/models/{name}/versions/{version}",
    "/v2/models/{name}/ready",
    "/v2/models/{name}/versions/{version}/ready",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/versions/{version}/infer",
    "/predict",
    "/health",
    "/health/live",
    "/health/ready",
    "/seal",
    "/metrics",
    "/openapi.json",
)
SERVING_STATES = frozenset({State.READY, State.DRAINING})


class ModelServer:
    """Owns what every route needs; routes only translate HTTP to and from it."""

    def __init__(self, seal: Seal, config: ServeConfig, device: DeviceChoice) -> None:
        self.seal = seal
        self.config = config
        self.device = device
        self.metrics = ServerMetrics(routes=ROUTES, max_batch_size=config.max_batch_size)
        self.health = HealthState(reason="loading the model", on_change=self.metrics.set_state)
        self.metrics.set_state(State.LOADING)
        self.metrics.set_build(seal.name, seal.version, seal.digest)
        self.metrics.set_device(device.device, device.gpu_name)
        self.golden = load_golden(seal.golden_path)
        self.policies = seal_policies(seal, config.tolerance)
        self.report: VerifyReport | None = None
        self.loaded: Loaded | None = None
        self.batcher: AdaptiveBatcher | None = None
        self.probe = InferenceProbe(self._probe_inference, config.probe_interval_s)
        self._probe_reference: NamedArrays | None = None
        self._startup: asyncio.Task[None] | None = None
        self.last_request_at = time.monotonic()
        """When the latest request arrived (monotonic); the drain waits for quiet."""

    # --- lifecycle --------------------------------------------------------------------------

    def begin_startup(self) -> None:
        self._startup = asyncio.get_running_loop().create_task(
            self._run_startup(), name="modelseal-startup"
        )

    async def _run_startup(self) -> None:
        try:
            await self._start_up()
        except Exception as exc:
            log.exception("start-up failed", extra=self._log_fields())
            self._fail(f"start-up failed: {type(exc).__name__}: {exc}")

    async def _start_up(self) -> None:
        timings: dict[str, float] = {}
        verification = Verification(
            self.seal,
            self.golden,
            self.policies,
            device=self.device.device,
            batch_sizes=self.config.batch_sizes,
        )
        loaded = await self._step(
            "load", timings, partial(verification.load, half=self.config.half)
        )
        for warning in verification.load_warnings:
            log.warning("warning while loading: %s", warning, extra=self._log_fields())
        if loaded is None:
            await self._step("environment", timings, verification.diff_environment)
            self.report = verification.report()
            failure = verification.failure
            detail = f"{failure.error_type}: {failure.message}" if failure else "unknown"
            self._fail(f"the model cannot be loaded here: {detail}; see /seal")
            return
        self.loaded = loaded
        log.info("runtime load breakdown", extra={**self._log_fields(), **loaded.load_timings})
        self.health.to(State.VERIFYING, "comparing the environment and replaying golden inputs")
        await self._step("environment", timings, verification.diff_environment)
        await self._step("golden_replay", timings, verification.replay)
        self.report = verification.report()
        if not self._accept_report(self.report):
            return
        self.health.to(State.WARMING, "warming up at every batch size the server will use")
        await self._start_batcher(loaded)
        await self._step_async("warm_up", timings, self._warm_up())
        self.health.to(State.READY, "verified and warm")
        log.info("ready", extra={**self._log_fields(), "device": loaded.device})

    def _accept_report(self, report: VerifyReport) -> bool:
        drifted = report.verdict is not Verdict.CONSISTENT
        self.metrics.set_drift(report.verdict.value, warning=drifted)
        if not drifted:
            return True
        if report.failure is not None:
            detail = f"{report.failure.error_type}: {report.failure.message}"
            self._fail(f"the model fails on its golden inputs: {detail}; see /seal")
            return False
        failing = sorted({r.comparison.name for r in report.golden if not r.comparison.passed})
        message = f"golden replay verdict {report.verdict.value} on outputs {failing}"
        if self.config.drift == "fail":
            self._fail(f"{message}; see /seal (serve with --drift warn to take traffic anyway)")
            return False
        log.warning("%s; serving anyway (--drift warn)", message, extra=self._log_fields())
        return True

    async def _start_batcher(self, loaded: Loaded) -> None:
        self.batcher = AdaptiveBatcher(
            self.metrics.timed(loaded.predict),
            max_batch_size=self.config.max_batch_size,
            max_batch_delay_ms=self.config.max_batch_delay_ms,
            max_queue=self.config.max_queue,
            on_batch=self.metrics.observe_batch,
        )
        self.metrics.track_queue_depth(lambda: self.batcher.queue_depth if self.batcher else 0)
        await self.batcher.start()

    async def _warm_up(self) -> None:
        # What this server answers for golden row 0 once verified: the readiness probe
        # checks the model keeps answering that (under --drift warn it is not the golden).
        self._probe_reference = await self.infer(self.golden.input_rows(0, 1))
        for _ in range(self.config.warmup_rounds):
            for batch_size in self.config.batch_sizes:
                await self.infer(_tiled_golden_inputs(self.golden, batch_size))

    def begin_drain(self) -> None:
        """SIGTERM: readiness turns 503 at once; requests are still served."""
        if self.health.state in (State.READY, State.WARMING, State.VERIFYING):
            self.health.to(State.DRAINING, "shutting down: draining in-flight requests")

    async def finish_drain(self) -> None:
        """The drain window is over: refuse new requests, finish what is queued."""
        if self._startup is not None and not self._startup.done():
            self._startup.cancel()
        if self.batcher is not None:
            await self.batcher.drain()

    async def wait_for_quiet(self, quiet_s: float, limit_s: float) -> None:
        """Return once no request has arrived for ``quiet_s`` (or after ``limit_s``)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            idle = time.monotonic() - self.last_request_at
            if idle >= quiet_s:
                return
            await asyncio.sleep(quiet_s - idle)

    def _fail(self, reason: str) -> None:
        log.error(reason, extra=self._log_fields())
        self.health.to(State.FAILED, reason)

    # --- requests ---------------------------------------------------------------------------

    async def infer(self, inputs: NamedArrays) -> NamedArrays:
        batcher = self.batcher
        if batcher is None or self.health.state not in (*SERVING_STATES, State.WARMING):
            raise NotAcceptingError(
                f"the model is not ready ({self.health.state.value}: {self.health.reason})"
            )
        return await batcher.submit(inputs)

    async def readiness(self) -> tuple[bool, str]:
        if self.health.state is not State.READY:
            return False, f"{self.health.state.value}: {self.health.reason}"
        ok, reason = await self.probe.ok()
        self.health.set_probe(ok, reason)
        self.metrics.set_probe(ok)
        return ok, reason

    def liveness(self) -> tuple[bool, str]:
        batcher = self.batcher
        if batcher is not None and batcher.busy_since is not None:
            running = time.monotonic() - batcher.busy_since
            if running > self.config.stall_seconds:
                return False, (
                    f"the inference worker has been running one batch for {running:.0f} s "
                    f"(limit {self.config.stall_seconds:g} s): it is wedged"
                )
        return True, "alive"

    async def _probe_inference(self) -> None:
        """Golden row 0 through the real request path: the same shape and values (within the
        seal's tolerance) as when the server was verified."""
        reference = self._probe_reference
        if reference is None:
            raise RuntimeLoadError("the model has not been warmed up yet")
        outputs = await self.infer(self.golden.input_rows(0, 1))
        for spec in self.seal.signature.outputs:
            if spec.name not in outputs:
                raise RuntimeLoadError(f"the model no longer returns output {spec.name!r}")
            comparison = compare_output(
                spec.name, reference[spec.name], outputs[spec.name], self.policies[spec.name]
            )
            if not comparison.passed:
                details = "; ".join(c.detail for c in comparison.checks if not c.passed)
                raise RuntimeLoadError(f"golden row 0, output {spec.name!r}: {details}")

    # --- helpers ----------------------------------------------------------------------------

    async def _step(
        self, name: str, timings: dict[str, float], action: Callable[..., T], *args: Any
    ) -> T:
        started = time.perf_counter()
        result = await asyncio.to_thread(action, *args)
        self._log_step(name, timings, started)
        return result

    async def _step_async(self, name: str, timings: dict[str, float], work: Awaitable[T]) -> T:
        started = time.perf_counter()
        result = await work
        self._log_step(name, timings, started)
        return result

    def _log_step(self, name: str, timings: dict[str, float], started: float) -> None:
        seconds = time.perf_counter() - started
        timings[name] = seconds
        log.info("start-up step %s", name, extra={**self._log_fields(), "seconds": seconds})

    def _log_fields(self) -> dict[str, str]:
        return {"seal_digest": self.seal.digest, "model": self.seal.name}

    def health_body(self) -> dict[str, Any]:
        body = self.health.snapshot()
        body.update(
            model=self.seal.name,
            version=self.seal.version,
            seal_digest=self.seal.digest,
            device=self.device.device,
            gpu=self.device.gpu.model_dump() if self.device.gpu else None,
            verdict=self.report.verdict.value if self.report else None,
            queue_depth=self.batcher.queue_depth if self.batcher else 0,
        )
        return body


def _tiled_golden_inputs(golden: Golden, rows: int) -> NamedArrays:
    """``rows`` golden input rows, repeating them when the batch is larger than the golden."""
    index = np.arange(rows) % golden.rows
    return {name: array[index] for name, array in golden.inputs.items()}
