"""Work off the event loop: big bodies are decoded in a thread while the loop keeps going."""

from __future__ import annotations

import asyncio
import threading

import pytest

from modelseal.serving.offload import OFF_LOOP_BYTES, in_daemon_thread, off_loop


def test_big_work_runs_in_a_thread_while_the_loop_keeps_answering() -> None:
    async def main() -> None:
        loop_ran = threading.Event()

        def decode() -> str:
            # Returns only once the event loop has run something meanwhile: were this on
            # the loop, the wait would time out and the test fail.
            assert loop_ran.wait(60), "the event loop was blocked while the body decoded"
            return threading.current_thread().name

        work = asyncio.ensure_future(off_loop(OFF_LOOP_BYTES + 1, decode))
        await asyncio.sleep(0)
        loop_ran.set()
        assert await work != threading.current_thread().name

    asyncio.run(main())


def test_small_work_runs_inline() -> None:
    async def main() -> str:
        return await off_loop(OFF_LOOP_BYTES, lambda: threading.current_thread().name)

    assert asyncio.run(main()) == threading.current_thread().name


def test_in_daemon_thread_returns_raises_and_does_not_hold_the_process() -> None:
    def where() -> tuple[str, bool]:
        thread = threading.current_thread()
        return thread.name, thread.daemon

    def fail() -> None:
        raise ValueError("no such model")

    async def main() -> None:
        assert await in_daemon_thread(where) == ("modelseal-startup", True)
        with pytest.raises(ValueError, match="no such model"):
            await in_daemon_thread(fail)

    asyncio.run(main())
