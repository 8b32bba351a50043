"""Work that must not run on the event loop, and the threads it runs in instead."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
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

    def settle(result: T | None, error: BaseException | None) -> None:
        if outcome.done():
            return
        if error is not None:
            outcome.set_exception(error)
        else:
            outcome.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = action(*args), None
        except BaseException as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed: the process is exiting
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="modelseal-startup", daemon=True).start()
    return await outcome
