"""Adaptive batching: requests that are already waiting run as one batch, off the event loop.

One worker task takes the oldest waiting request and every compatible request already
waiting behind it, up to ``max_batch_size`` rows, concatenates them on axis 0, runs the
model once in a dedicated thread and hands each request its own rows of the outputs. A lone
request runs at once: it pays no batch window unless ``max_batch_delay_ms`` asks for one.
Under load, requests pile up while a batch runs, so batches grow exactly when batching pays.

The queue is bounded (``max_queue`` requests): beyond it ``submit`` raises
:class:`OverloadedError` at once, so memory stays bounded and clients are told to retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelseal.errors import (
    InputError,
    NotAcceptingError,
    OverloadedError,
    RuntimeLoadError,
    UsageError,
)
from modelseal.types import NamedArrays

PredictFn = Callable[[NamedArrays], NamedArrays]
"""A model's batch predict: named inputs to named outputs, batch on axis 0."""

BatchObserver = Callable[[int, float], None]
"""Called as ``on_batch(batch_rows, seconds_waited_by_oldest)`` before each batch runs."""

_log = logging.getLogger(__name__)

_BatchKey = tuple[tuple[str, str, tuple[int, ...]], ...]


class AdaptiveBatcher:
    """Batches concurrent ``submit`` calls into single ``predict`` calls.

    ``predict`` is always called from one dedicated thread, never from the event loop.
    Requests are batched only with requests whose inputs have the same names, dtypes and
    shapes apart from axis 0; others wait for a later batch, in order. A request of more
    than ``max_batch_size`` rows runs alone, whole: it is never split. When
    ``max_batch_delay_ms`` is above zero and a batch is not full, the worker waits until the
    oldest request has waited that long for more rows to arrive.

    A batcher is used once: ``start``, any number of ``submit`` calls, then ``drain``.
    Liveness: ``last_progress`` is the monotonic time of the last finished batch or idle
    tick, and ``busy_since`` the start of the running batch (None when idle), so a caller
    can call the model wedged when a batch has run longer than it should.
    """

    def __init__(
        self,
        predict: PredictFn,
        *,
        max_batch_size: int,
        max_batch_delay_ms: float,
        max_queue: int,
        on_batch: BatchObserver | None = None,
        idle_tick_s: float = 1.0,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1:
            raise UsageError(
                f"max_batch_size and max_queue must be at least 1; got {max_batch_size} and "
                f"{max_queue}"
            )
        if max_batch_delay_ms < 0 or idle_tick_s <= 0:
            raise UsageError(
                f"max_batch_delay_ms must be >= 0 and idle_tick_s > 0; got "
                f"{max_batch_delay_ms} and {idle_tick_s}"
            )
        self._predict = predict
        self.max_batch_size = max_batch_size
        self._delay_s = max_batch_delay_ms / 1000.0
        self._max_queue = max_queue
        self._on_batch = on_batch
        self._idle_tick_s = idle_tick_s
        self._queue: deque[_Request] = deque()
        self._rows_waiting = 0
        self._running: list[_Request] = []
        self._waiter: asyncio.Future[bool] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._accepting = False
        self._refusal = "the batcher has not been started"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelseal-predict")
        self.last_progress: float = time.monotonic()
        """Monotonic time of the last finished batch or idle tick."""
        self.busy_since: float | None = None
        """Monotonic time the running batch started; None when no batch runs."""

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch (not counting those running)."""
        return len(self._queue)

    @property
    def rows_in_queue(self) -> int:
        """Rows in the requests waiting for a batch."""
        return self._rows_waiting

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
        if not self._accepting:
            raise NotAcceptingError(self._refusal)
        if len(self._queue) >= self._max_queue:
            raise OverloadedError(
                f"{len(self._queue)} requests are already waiting (max_queue is "
                f"{self._max_queue}); retry shortly"
            )
        rows, key = _describe(inputs)
        request = _Request(inputs, rows, key, asyncio.get_running_loop().create_future())
        self._queue.append(request)
        self._rows_waiting += rows
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
            self._executor.shutdown(wait=False)

    # --- the worker ------------------------------------------------------------------------

    async def _work(self) -> None:
        try:
            while self._accepting or self._queue:
                if not self._queue:
                    await self._idle()
                    continue
                batch = self._take_batch()
                await self._fill(batch)
                await self._run(batch)
        finally:
            self._fail_all(NotAcceptingError("the batcher stopped before this request finished"))

    async def _idle(self) -> None:
        if not await self._wait_for_work(self._idle_tick_s):
            self.last_progress = time.monotonic()

    def _take_batch(self) -> list[_Request]:
        first = self._queue.popleft()
        self._rows_waiting -= first.rows
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
            self._rows_waiting -= request.rows
            rows += request.rows
            batch.append(request)
        self._queue.extendleft(reversed(skipped))

    async def _fill(self, batch: list[_Request]) -> None:
        if self._delay_s <= 0:
            return
        deadline = batch[0].enqueued_at + self._delay_s
        while self._accepting and sum(request.rows for request in batch) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await self._wait_for_work(remaining):
                return
            self._collect(batch)

    async def _run(self, batch: list[_Request]) -> None:
        live = [request for request in batch if not request.future.done()]
        if not live:
            return
        started = time.monotonic()
        self._observe(sum(request.rows for request in live), started - live[0].enqueued_at)
        self.busy_since = started
        self._running = live
        loop = asyncio.get_running_loop()
        try:
            parts = [request.inputs for request in live]
            results = await loop.run_in_executor(
                self._executor, _predict_batch, self._predict, parts
            )
        except Exception as exc:
            for request in live:
                _resolve(request.future, exc)
        else:
            for request, outputs in zip(live, results, strict=True):
                _resolve(request.future, outputs)
        finally:
            self.busy_since = None
            self.last_progress = time.monotonic()
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

    async def _wait_for_work(self, timeout_s: float) -> bool:
        """Wait until a request arrives or drain starts (True), or ``timeout_s`` passes."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiter = waiter
        # A bare future and a timer: cheaper than asyncio.wait_for on every wake-up.
        timer = loop.call_later(timeout_s, _resolve, waiter, False)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _notify(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter, True)

    def _forget(self, request: _Request) -> None:
        try:
            self._queue.remove(request)
        except ValueError:
            return  # already taken into a batch; the batch skips it
        self._rows_waiting -= request.rows

    def _fail_all(self, error: Exception) -> None:
        for request in (*self._running, *self._queue):
            _resolve(request.future, error)
        self._running = []
        self._queue.clear()
        self._rows_waiting = 0
        if self._accepting:
            self._accepting = False
            self._refusal = "the batcher stopped"


@dataclass(eq=False)
class _Request:
    inputs: NamedArrays
    rows: int
    key: _BatchKey
    future: asyncio.Future[NamedArrays]
    enqueued_at: float = field(default_factory=time.monotonic)


def _describe(inputs: NamedArrays) -> tuple[int, _BatchKey]:
    """The request's row count and what a request must share with it to join its batch."""
    if not inputs:
        raise InputError("the request has no inputs")
    rows: dict[str, int] = {}
    key: list[tuple[str, str, tuple[int, ...]]] = []
    for name in sorted(inputs):
        array = inputs[name]
        if array.ndim == 0:
            raise InputError(f"input {name!r} is a 0-d array; inputs need a batch axis (axis 0)")
        rows[name] = array.shape[0]
        # Strings of different widths concatenate fine; other dtypes must match exactly.
        kind = array.dtype.kind if array.dtype.kind in "OSU" else array.dtype.str
        key.append((name, kind, array.shape[1:]))
    if len(set(rows.values())) > 1:
        detail = ", ".join(f"{name!r} has {count}" for name, count in rows.items())
        raise InputError(f"inputs disagree on the batch size (axis 0): {detail}")
    return next(iter(rows.values())), tuple(key)


def _predict_batch(predict: PredictFn, parts: list[NamedArrays]) -> list[NamedArrays]:
    """Run in the predict thread: concatenate, predict once, split back by row counts."""
    if len(parts) == 1:
        return [predict(parts[0])]
    merged = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    outputs = predict(merged)
    counts = [next(iter(part.values())).shape[0] for part in parts]
    return _split(outputs, counts)


def _split(outputs: NamedArrays, counts: list[int]) -> list[NamedArrays]:
    total = sum(counts)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            got = "a 0-d array" if array.ndim == 0 else f"{array.shape[0]} rows"
            raise RuntimeLoadError(
                f"the model returned {got} for output {name!r} from a batch of {total} rows; "
                "outputs must keep the batch axis (axis 0)"
            )
    bounds = np.cumsum(counts)[:-1]
    pieces = {name: np.split(array, bounds) for name, array in outputs.items()}
    return [{name: pieces[name][index] for name in outputs} for index in range(len(counts))]


def _resolve(future: asyncio.Future[Any], outcome: object) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
