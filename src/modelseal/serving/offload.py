"""Work that must not run on the event loop, and the threads it runs in instead."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")
OFF_LOOP_BYTES = 256 * 1024
"""Bodies (and outputs) larger than this are decoded (encoded) in a worker thread."""


async def off_loop(size: int, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``work(*args, **kwargs)``: in a worker thread when ``size`` bytes are more than
    ``OFF_LOOP_BYTES``, so that the event loop keeps answering meanwhile; inline otherwise,
    where a thread hop would cost more than the work."""
    if size > OFF_LOOP_BYTES:
        return await asyncio.to_thread(work, *args, **kwargs)
    return work(*args, **kwargs)


async def in_daemon_thread(action: Callable[..., T], *args: Any) -> T:
    """``action(*args)`` in a thread of its own that does not hold the process: a SIGTERM
    during a long load or replay exits without waiting for it to finish."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[T] = loop.create_future()
    work = partial(action, *args)
    thread = threading.Thread(
        target=_run_and_settle, args=(loop, outcome, work), name="modelseal-startup", daemon=True
    )
    thread.start()
    return await outcome


class PredictThread:
    """One long-lived daemon thread that runs work handed to it, in order: the inference
    worker. A hop costs a queue put and one wake-up of the loop, no executor machinery."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def run(self, work: Callable[[], T]) -> T:
        """``work()`` in the thread; cancelling the caller leaves it running to its end."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, outcome, work))
        return await outcome

    def stop(self) -> None:
        """End the thread once the work handed to it is done."""
        self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            _run_and_settle(*job)


_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


def _run_and_settle(
    loop: asyncio.AbstractEventLoop, outcome: asyncio.Future[T], action: Callable[[], T]
) -> None:
    try:
        result, error = action(), None
    except BaseException as exc:
        result, error = None, exc
    with contextlib.suppress(RuntimeError):  # the loop closed: the process is exiting
        loop.call_soon_threadsafe(_settle, outcome, result, error)


def _settle(outcome: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if outcome.done():
        return
    if error is not None:
        outcome.set_exception(error)
    else:
        outcome.set_result(result)  # type: ignore[arg-type]
