"""One served model: the loaded model, its batcher, its health, its metrics, its start-up.

Start-up runs in the background while liveness already answers, one step at a time, each
logged with its duration and the seal digest: load -> environment diff -> golden replay ->
warm-up -> ready (integrity and device were checked before, in ``runner.preflight``, or
in the background for a remote seal, which hands its state machine and metrics on).
SIGTERM in any start-up state stops it where it is: the model never turns ready after it.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from modelseal.cgroup import usable_cpus
from modelseal.errors import (
    DriftError,
    NotAcceptingError,
    OverloadedError,
    RuntimeLoadError,
    SealError,
)
from modelseal.golden.compare import compare_output
from modelseal.golden.store import load_golden
from modelseal.runtimes.base import Loaded
from modelseal.seal.artifact import Seal
from modelseal.serving.admission import Admission
from modelseal.serving.batcher import AdaptiveBatcher
from modelseal.serving.batches import tiled
from modelseal.serving.config import ServeConfig
from modelseal.serving.device import DeviceChoice
from modelseal.serving.health import HealthState, InferenceProbe, State
from modelseal.serving.logs import get_logger
from modelseal.serving.metrics import ServerMetrics
from modelseal.serving.offload import in_daemon_thread
from modelseal.types import NamedArrays
from modelseal.verify import Verdict, Verification, VerifyReport, seal_policies

log = get_logger("server")
T = TypeVar("T")
STARTING = frozenset({State.LOADING, State.VERIFYING, State.WARMING})
INLINE_RUNTIMES = frozenset({"onnx", "sklearn", "torch"})
"""Runtimes whose predict is the framework's own native code on the CPU: no user Python
that could wait on a lock or the network, so a short batch may run on the event loop
(``ServeConfig.inline_below_ms``). A batch that wedges there stops the event loop, and
liveness then fails by its probe's timeout rather than by a 503 that names the batch."""


def settle_heap() -> None:
    """Collect start-up's garbage, then move every object alive now out of the collector's
    sight: the modules, the model and the verification stay for the process's life, and a
    full collection that walked them all would stall requests for milliseconds (the p99)."""
    gc.collect()
    gc.freeze()


class ModelServer:
    """Owns what every route needs for one model; routes only translate HTTP to and from it."""

    def __init__(
        self,
        seal: Seal,
        config: ServeConfig,
        device: DeviceChoice,
        *,
        health: HealthState | None = None,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.seal = seal
        self.config = config
        self.device = device
        self.metrics = metrics or ServerMetrics(max_batch_size=config.max_batch_size)
        self.health = health or HealthState(reason="loading the model")
        self.health.observe(self._entered)
        self.metrics.set_state(State.LOADING)
        self.metrics.set_build(seal.name, seal.version, seal.digest)
        self.metrics.set_device(device.device, device.gpu_name)
        self.golden = load_golden(seal.golden_path)
        self.policies = seal_policies(seal, config.tolerance)
        self.report: VerifyReport | None = None
        self.loaded: Loaded | None = None
        self.batcher: AdaptiveBatcher | None = None
        self.probe = InferenceProbe(self._probe_inference, config.probe_interval_s)
        self.startup_failure: SealError | None = None
        """Why start-up failed (drift, or a model that cannot load or run here), else None."""
        self.was_ready = False
        """Whether the model ever turned ready (only then is there traffic to drain)."""
        self.settled = asyncio.Event()
        """Set once start-up has ended: ready, failed, or stopped by a drain."""
        self._probe_reference: NamedArrays | None = None
        self._startup: asyncio.Task[None] | None = None
        self.admitted_count = 0
        """Requests admitted and not answered yet (see ``Admission``)."""

    def begin_startup(self) -> None:
        self._startup = asyncio.get_running_loop().create_task(
            self._run_startup(), name="modelseal-startup"
        )

    async def _run_startup(self) -> None:
        try:
            await self._start_up()
        except Exception as exc:
            log.exception("start-up failed", extra=self._log_fields())
            self._fail(f"start-up failed: {type(exc).__name__}: {exc}", RuntimeLoadError)

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
            self.metrics.set_verdict(self.report.verdict.value)
            detail = f"{failure.error_type}: {failure.message}" if failure else "unknown"
            self._fail(f"the model cannot be loaded here: {detail}", RuntimeLoadError)
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
        settle_heap()
        self.health.to(State.READY, "verified and warm")
        log.info("ready", extra={**self._log_fields(), "device": loaded.device})

    def _accept_report(self, report: VerifyReport) -> bool:
        self.metrics.set_verdict(report.verdict.value)
        if report.verdict is Verdict.CONSISTENT:
            return True
        if report.failure is not None:
            detail = f"{report.failure.error_type}: {report.failure.message}"
            self._fail(f"the model fails on its golden inputs: {detail}", RuntimeLoadError)
            return False
        failing = [
            f"{r.comparison.name} at batch size {r.batch_size}: "
            + "; ".join(c.detail for c in r.comparison.checks if not c.passed)
            for r in report.golden
            if not r.comparison.passed
        ]
        message = f"golden replay verdict {report.verdict.value} on {' | '.join(failing)}"
        if self.config.drift != "warn":
            self._fail(f"{message} (serve with --drift warn to take traffic anyway)", DriftError)
            return False
        self.metrics.set_serving_despite_drift()
        log.warning("%s; serving anyway (--drift warn)", message, extra=self._log_fields())
        return True

    async def _start_batcher(self, loaded: Loaded) -> None:
        self.batcher = AdaptiveBatcher(
            self.metrics.timed(loaded.predict),
            max_batch_size=self.config.max_batch_size,
            max_batch_delay_ms=self.config.max_batch_delay_ms,
            max_queue=self.config.max_queue,
            on_batch=self.metrics.observe_batch,
            inline_below_ms=self._inline_below_ms(loaded),
            settle_under_load=loaded.device == "cpu" and usable_cpus() <= 1,
        )
        self.metrics.track_queue_depth(lambda: self.batcher.queue_depth if self.batcher else 0)
        await self.batcher.start()

    def _inline_below_ms(self, loaded: Loaded) -> float:
        if self.seal.runtime in INLINE_RUNTIMES and loaded.device == "cpu":
            return self.config.inline_below_ms
        return 0.0

    async def _warm_up(self) -> None:
        # What this server answers for golden row 0 once verified: the readiness probe
        # checks the model keeps answering that (under --drift warn it is not the golden).
        self._probe_reference = await self.infer(self.golden.input_rows(0, 1))
        for _ in range(self.config.warmup_rounds):
            for batch_size in self.config.batch_sizes:
                await self.infer(tiled(self.golden.inputs, batch_size))

    def begin_drain(self) -> None:
        """SIGTERM: readiness turns 503, requests are still served, a start-up stops."""
        if self.health.state in (*STARTING, State.READY):
            self.health.to(State.DRAINING, "shutting down: draining in-flight requests")
        if self._startup is not None and not self._startup.done():
            self._startup.cancel()
            self.settled.set()

    async def finish_drain(self) -> None:
        """The drain window is over: refuse new requests, finish what is queued."""
        if self._startup is not None and not self._startup.done():
            self._startup.cancel()
        if self.batcher is not None:
            await self.batcher.drain()

    def _entered(self, state: State) -> None:
        self.metrics.set_state(state)
        if state is State.READY:
            self.was_ready = True
        if state in (State.READY, State.FAILED):
            self.settled.set()

    def _fail(self, reason: str, error: type[SealError]) -> None:
        log.error(reason, extra=self._log_fields())
        self.startup_failure = self.startup_failure or error(reason)
        self.health.to(State.FAILED, f"{reason}; see /seal")

    def admitted(self) -> Admission:
        """``async with`` it to hold a request from before its body is read until it is
        answered; it raises ``refusal()`` first, before any work is spent on it."""
        return Admission(self)

    def refusal(self) -> SealError | None:
        """Why a new request would be refused now: nothing is taken, or ``max_queue``
        requests already wait (read, decoded or queued) beside the batch that runs."""
        batcher = self._taking()
        if batcher is None:
            return self._not_ready()
        waiting = self.admitted_count - batcher.running
        if waiting < self.config.max_queue:
            return None
        return OverloadedError(
            f"{waiting} requests are waiting (max_queue is {self.config.max_queue}); retry shortly"
        )

    async def infer(self, inputs: NamedArrays) -> NamedArrays:
        batcher = self._taking()
        if batcher is None:
            raise self._not_ready()
        return await batcher.submit(inputs)

    def _not_ready(self) -> NotAcceptingError:
        return NotAcceptingError(f"the model is not ready ({self.health.state.value}: "
                                 f"{self.health.reason})")  # fmt: skip

    def _taking(self) -> AdaptiveBatcher | None:
        """The batcher, when requests are taken now (warming, ready, or draining after ready)."""
        state = self.health.state
        serving = state is State.WARMING or (self.was_ready and state is State.DRAINING)
        return self.batcher if serving or state is State.READY else None

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
        """Golden row 0, ahead of every waiting request (a full queue is load, not a failure),
        answers as when the server was verified, within the seal's tolerance."""
        reference, batcher = self._probe_reference, self.batcher
        if reference is None or batcher is None:
            raise RuntimeLoadError("the model has not been warmed up yet")
        outputs = await batcher.submit_first(self.golden.input_rows(0, 1))
        for spec in self.seal.signature.outputs:
            if spec.name not in outputs:
                raise RuntimeLoadError(f"the model no longer returns output {spec.name!r}")
            comparison = compare_output(
                spec.name, reference[spec.name], outputs[spec.name], self.policies[spec.name]
            )
            if not comparison.passed:
                details = "; ".join(c.detail for c in comparison.checks if not c.passed)
                raise RuntimeLoadError(f"golden row 0, output {spec.name!r}: {details}")

    async def _step(
        self, name: str, timings: dict[str, float], action: Callable[..., T], *args: Any
    ) -> T:
        started = time.perf_counter()
        result = await in_daemon_thread(action, *args)
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
