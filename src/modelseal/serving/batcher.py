"""Adaptive batching: requests that are already waiting run as one batch.

One worker task takes the oldest waiting request and every compatible request already
waiting behind it, up to ``max_batch_size`` rows, concatenates them on axis 0, runs the
model once in a dedicated thread and hands each request its own rows of the outputs. A lone
request runs at once: it pays no batch window unless ``max_batch_delay_ms`` asks for one.
Under load, requests pile up while a batch runs, so batches grow exactly when batching pays.
A batch runs in a dedicated inference thread, so that one that hangs leaves liveness (and
the drain) answering, except where handing it over costs more than running it: with
``inline_below_ms`` above zero (the server sets it only for runtimes that run native code
on the CPU), a batch whose rows the model's recent batches say take less than that runs on
the event loop itself, saving the thread hop, two wake-ups and the GIL hand-off each way.

With ``settle_under_load`` (the server sets it where the event loop and the model share one
CPU), a batch bound for the thread while the server is under load (the last batch served
more than one request) first lets the event loop turn, for as long as requests keep joining
it: the clients that the last batch just answered are sending their next requests, and
their bytes are already in this process's sockets. Without it, a closed loop of N clients
settles into two alternating batches of N/2; with it, one batch of N, and the model runs
fewer, fuller batches. On one CPU the loop's turns are work that had to be done anyway; on
several, the model would sit idle during them instead of overlapping the loop, so it is
off there. A lone request never waits for this.

The queue is bounded (``max_queue`` requests): beyond it ``submit`` raises
:class:`OverloadedError` at once, so memory stays bounded and clients are told to retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from modelseal.errors import NotAcceptingError, OverloadedError, UsageError
from modelseal.serving.batches import BatchKey, PredictFn, describe, predict_batch
from modelseal.serving.offload import PredictThread
from modelseal.types import NamedArrays

T = TypeVar("T")
BatchObserver = Callable[[int, float], None]
"""Called as ``on_batch(batch_rows, seconds_waited_by_oldest)`` before each batch runs."""

_log = logging.getLogger(__name__)
SETTLE_TURNS = 6
"""Event-loop turns without a new request after which a batch under load stops waiting for
the requests already on their way (a request takes two or three turns from its bytes to
the queue)."""


class AdaptiveBatcher:
    """Batches concurrent ``submit`` calls into single ``predict`` calls.

    ``predict`` is called from one dedicated thread, or on the event loop for a batch
    estimated to take less than ``inline_below_ms`` (0, the default, never does).
    Requests are batched only with requests whose inputs have the same names, dtypes and
    shapes apart from axis 0; others wait for a later batch, in order. A request of more
    than ``max_batch_size`` rows runs alone, whole: it is never split. When
    ``max_batch_delay_ms`` is above zero and a batch is not full, the worker waits until the
    oldest request has waited that long for more rows to arrive.

    A batcher is used once: ``start``, any number of ``submit`` calls, then ``drain``.
    ``busy_since`` is when the running batch started (None when idle), so that a caller can
    call the model wedged when a batch has run longer than it should.
    """

    def __init__(
        self,
        predict: PredictFn,
        *,
        max_batch_size: int,
        max_batch_delay_ms: float,
        max_queue: int,
        on_batch: BatchObserver | None = None,
        inline_below_ms: float = 0.0,
        settle_under_load: bool = False,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1 or max_batch_delay_ms < 0 or inline_below_ms < 0:
            raise UsageError(
                "max_batch_size and max_queue must be at least 1, max_batch_delay_ms and "
                f"inline_below_ms 0 or more; got {max_batch_size}, {max_queue}, "
                f"{max_batch_delay_ms} and {inline_below_ms}"
            )
        self._predict = predict
        self.max_batch_size = max_batch_size
        self._delay_s = max_batch_delay_ms / 1000.0
        self._max_queue = max_queue
        self._on_batch = on_batch
        self._queue: deque[_Request] = deque()
        self._running: list[_Request] = []
        self._waiter: asyncio.Future[bool] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._accepting = False
        self._refusal = "the batcher has not been started"
        self._thread = PredictThread("modelseal-predict")
        self._cost = RowCost(inline_below_ms / 1000.0)
        self.busy_since: float | None = None
        """Monotonic time the running batch started; None when no batch runs."""
        self.settle_under_load = settle_under_load
        self._last_batch_requests = 0

    @property
    def inline_below_s(self) -> float:
        """Batches estimated to take less than this run on the event loop (0: none do)."""
        return self._cost.below_s

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch (not counting those running)."""
        return len(self._queue)

    @property
    def rows_in_queue(self) -> int:
        """Rows in the requests waiting for a batch."""
        return sum(request.rows for request in self._queue)

    @property
    def running(self) -> int:
        """Requests in the batch that runs now."""
        return len(self._running)

    async def start(self) -> None:
        """Start the worker on the running event loop; ``submit`` is accepted from now on."""
        if self._worker is not None:
            raise UsageError("this batcher was already started; a batcher is used once")
        self._accepting = True
        self._worker = asyncio.get_running_loop().create_task(
            self._work(), name="modelseal-batcher"
        )

    async def submit(self, inputs: NamedArrays) -> NamedArrays:
        """Queue one request (batch on axis 0) and return its own rows of the outputs.

        Raises ``OverloadedError`` at once when ``max_queue`` requests are already waiting,
        ``NotAcceptingError`` when the batcher is not running, ``InputError`` when the inputs
        disagree on the batch size, and whatever ``predict`` raised for the batch this request
        ran in. Cancelling the caller drops the request without disturbing its batch.
        """
        request = self._request(inputs)
        if len(self._queue) >= self._max_queue:
            raise OverloadedError(
                f"{len(self._queue)} requests are already waiting (max_queue is "
                f"{self._max_queue}); retry shortly"
            )
        self._queue.append(request)
        return await self._outcome(request)

    async def submit_first(self, inputs: NamedArrays) -> NamedArrays:
        """``submit``, but ahead of every waiting request and never refused for a full queue:
        for the readiness probe, so that load never fails readiness."""
        request = self._request(inputs)
        self._queue.appendleft(request)
        return await self._outcome(request)

    def _request(self, inputs: NamedArrays) -> _Request:
        if not self._accepting:
            raise NotAcceptingError(self._refusal)
        rows, key = describe(inputs)
        return _Request(inputs, rows, key, asyncio.get_running_loop().create_future())

    async def _outcome(self, request: _Request) -> NamedArrays:
        self._notify()
        try:
            return await request.future
        except asyncio.CancelledError:
            self._forget(request)
            raise

    async def drain(self) -> None:
        """Stop accepting (``submit`` raises ``NotAcceptingError``), finish everything queued and
        running, then stop the worker and its thread.

        Bound it with ``asyncio.wait_for`` to give up: the worker is then cancelled and the
        requests still waiting or running fail with ``NotAcceptingError``.
        """
        self._accepting = False
        self._refusal = "the server is draining and takes no new requests"
        self._notify()
        try:
            if self._worker is not None:
                await self._worker
        finally:
            self._thread.stop()

    # --- the worker ------------------------------------------------------------------------

    async def _work(self) -> None:
        try:
            while self._accepting or self._queue:
                if not self._queue:
                    await self._wait_for_work(None)
                    continue
                batch = self._take_batch()
                await self._fill(batch)
                await self._run(batch)
        finally:
            self._fail_all(NotAcceptingError("the batcher stopped before this request finished"))

    def _take_batch(self) -> list[_Request]:
        first = self._queue.popleft()
        batch = [first]
        self._collect(batch)
        return batch

    def _collect(self, batch: list[_Request]) -> None:
        """Move compatible waiting requests into ``batch`` while their rows fit, in order."""
        rows = sum(request.rows for request in batch)
        skipped: list[_Request] = []
        while self._queue and rows < self.max_batch_size:
            request = self._queue.popleft()
            if request.key != batch[0].key:
                skipped.append(request)
                continue
            if rows + request.rows > self.max_batch_size:
                self._queue.appendleft(request)
                break
            rows += request.rows
            batch.append(request)
        self._queue.extendleft(reversed(skipped))

    async def _fill(self, batch: list[_Request]) -> None:
        if self._delay_s <= 0:
            if (
                self.settle_under_load
                and self._last_batch_requests > 1
                and not self._cost.inline(_rows(batch))
            ):
                await self._settle(batch)
            return
        deadline = batch[0].enqueued_at + self._delay_s
        while self._accepting and sum(request.rows for request in batch) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await self._wait_for_work(remaining):
                return
            self._collect(batch)

    async def _settle(self, batch: list[_Request]) -> None:
        """Let the event loop turn while requests keep joining ``batch`` (module docstring)."""
        rows = _rows(batch)
        quiet_turns = 0
        while self._accepting and rows < self.max_batch_size and quiet_turns < SETTLE_TURNS:
            await asyncio.sleep(0)
            self._collect(batch)
            grown = _rows(batch)
            quiet_turns = 0 if grown > rows else quiet_turns + 1
            rows = grown

    async def _run(self, batch: list[_Request]) -> None:
        live = [request for request in batch if not request.future.done()]
        if not live:
            return
        rows = sum(request.rows for request in live)
        self.busy_since = time.monotonic()
        self._observe(rows, self.busy_since - live[0].enqueued_at)
        self._running = live
        self._last_batch_requests = len(live)
        parts = [request.inputs for request in live]
        work = partial(_timed, predict_batch, self._predict, parts)
        outcomes: list[NamedArrays] | list[Exception]
        try:
            if self._cost.inline(rows):
                outcomes, seconds = work()
            else:
                outcomes, seconds = await self._thread.run(work)
            self._cost.observe(rows, seconds)
        except Exception as exc:
            outcomes = [exc] * len(live)
        finally:
            self.busy_since = None
        for request, outcome in zip(live, outcomes, strict=True):
            _resolve(request.future, outcome)
        self._running = []

    def _observe(self, rows: int, waited_s: float) -> None:
        if self._on_batch is None:
            return
        try:
            self._on_batch(rows, waited_s)
        except Exception:
            # Metrics must never fail a batch of requests.
            _log.exception("on_batch observer failed")

    # --- wake-ups and bookkeeping ----------------------------------------------------------

    async def _wait_for_work(self, timeout_s: float | None) -> bool:
        """Wait until a request arrives or drain starts (True), or ``timeout_s`` passes."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiter = waiter
        # A bare future and a timer: cheaper than asyncio.wait_for on every wake-up.
        timer = None if timeout_s is None else loop.call_later(timeout_s, _resolve, waiter, False)
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None

    def _notify(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter, True)

    def _forget(self, request: _Request) -> None:
        # One already taken into a batch is not in the queue: the batch skips it.
        with contextlib.suppress(ValueError):
            self._queue.remove(request)

    def _fail_all(self, error: Exception) -> None:
        for request in (*self._running, *self._queue):
            _resolve(request.future, error)
        self._running = []
        self._queue.clear()
        if self._accepting:
            self._accepting = False
            self._refusal = "the batcher stopped"


class RowCost:
    """What a row costs the model, from its recent batches, and whether a batch of ``rows`` is
    cheap enough to run inline (estimated under ``below_s``; never when ``below_s`` is 0).

    The estimate is a moving average of seconds per row over every batch, so that it follows
    the machine's load; small batches cost more per row than big ones, which makes it err
    towards the thread. Nothing runs inline before a batch has been measured in the thread.
    """

    __slots__ = ("below_s", "per_row_s")
    WEIGHT = 0.1
    """How much the latest batch moves the average."""

    def __init__(self, below_s: float) -> None:
        self.below_s = below_s
        self.per_row_s: float | None = None

    def inline(self, rows: int) -> bool:
        return self.per_row_s is not None and self.per_row_s * rows < self.below_s

    def observe(self, rows: int, seconds: float) -> None:
        per_row = seconds / rows
        previous = self.per_row_s
        if previous is not None:
            per_row = previous + self.WEIGHT * (per_row - previous)
        self.per_row_s = per_row


@dataclass(eq=False)
class _Request:
    inputs: NamedArrays
    rows: int
    key: BatchKey
    future: asyncio.Future[NamedArrays]
    enqueued_at: float = field(default_factory=time.monotonic)


def _rows(batch: list[_Request]) -> int:
    return sum(request.rows for request in batch)


def _timed(action: Callable[..., T], *args: Any) -> tuple[T, float]:
    """``action(*args)`` and the seconds it took, measured in the thread that ran it (the hop
    to and from the inference thread is not the model's cost)."""
    started = time.perf_counter()
    result = action(*args)
    return result, time.perf_counter() - started


def _resolve(future: asyncio.Future[Any], outcome: object) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
