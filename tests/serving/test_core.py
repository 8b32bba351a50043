"""One model's core in-process: start-up states, the readiness inference probe, liveness,
admission, and the metrics of its verdict."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from modelseal import open_seal, pack
from modelseal.cgroup import usable_cpus
from modelseal.errors import NotAcceptingError, OverloadedError
from modelseal.runtimes.numpy_function import NumpyFunction
from modelseal.serving.config import ServeConfig
from modelseal.serving.core import ModelServer
from modelseal.serving.device import DeviceChoice
from modelseal.serving.health import State

FLAKY = Path(__file__).parents[1] / "fixtures" / "flaky_function.py"
PATIENCE_SECONDS = 120.0
"""How long a test waits for something that takes milliseconds on an idle machine."""


@pytest.fixture
def flaky_seal(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    seal = pack(
        NumpyFunction(source=FLAKY, weights={"marker": np.array([str(marker)])}),
        runtime="numpy", name="flaky", version="1", golden=np.arange(12.0).reshape(4, 3),
        output=tmp_path / "flaky.seal",
    )  # fmt: skip
    return seal.root, marker


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait, polling the event loop, until ``condition()`` holds (generous deadline)."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        await asyncio.sleep(0.01)


async def started(seal_dir: Path, **settings: float) -> ModelServer:
    config = ServeConfig(max_batch_size=4, warmup_rounds=1, **settings)  # type: ignore[arg-type]
    server = ModelServer(open_seal(seal_dir), config, DeviceChoice("cpu", None))
    server.begin_startup()
    await asyncio.wait_for(server.settled.wait(), PATIENCE_SECONDS)
    return server


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("raise", "fell off the bus"), ("shape", "shape")],
)
def test_readiness_probe_flips_when_inference_breaks(
    flaky_seal: tuple[Path, Path], mode: str, reason: str
) -> None:
    seal_dir, marker = flaky_seal

    async def scenario() -> None:
        server = await started(seal_dir, probe_interval_s=0.05)
        assert [t.state for t in server.health.history] == [
            State.LOADING, State.VERIFYING, State.WARMING, State.READY,
        ]  # fmt: skip
        assert await server.readiness() == (True, "the inference probe passed")
        marker.write_text(mode)
        await asyncio.sleep(0.06)  # past the interval: the next call probes again
        ok, why = await server.readiness()
        assert not ok and reason in why
        assert server.health.snapshot()["ready"] is False
        marker.unlink()
        await asyncio.sleep(0.06)
        assert (await server.readiness())[0] is True
        await server.finish_drain()

    asyncio.run(scenario())


def test_probe_results_are_cached_between_intervals(flaky_seal: tuple[Path, Path]) -> None:
    seal_dir, marker = flaky_seal

    async def scenario() -> None:
        server = await started(seal_dir, probe_interval_s=600)
        assert (await server.readiness())[0]
        marker.write_text("raise")
        # Within the interval the cached result answers: probes cannot overload the model.
        assert all([(await server.readiness())[0] for _ in range(20)])
        await server.finish_drain()

    asyncio.run(scenario())


def test_liveness_fails_when_a_batch_is_wedged(flaky_seal: tuple[Path, Path]) -> None:
    seal_dir, marker = flaky_seal

    async def scenario() -> None:
        server = await started(seal_dir, stall_seconds=0.2)
        assert server.liveness() == (True, "alive")
        marker.write_text("hang")
        request = asyncio.ensure_future(server.infer({"input": np.ones((1, 3))}))
        await until(lambda: not server.liveness()[0], "liveness to fail on the hung batch")
        alive, why = server.liveness()
        assert not alive and "wedged" in why and "limit 0.2 s" in why
        marker.unlink()
        await request
        assert server.liveness()[0]
        await server.finish_drain()

    asyncio.run(scenario())


def test_the_probe_goes_ahead_of_a_full_queue(flaky_seal: tuple[Path, Path]) -> None:
    seal_dir, marker = flaky_seal

    async def scenario() -> None:
        server = await started(seal_dir, probe_interval_s=0.05, max_queue=2)
        batcher = server.batcher
        assert batcher is not None
        marker.write_text("hang")  # the next batch waits until the marker goes
        held = [asyncio.ensure_future(server.infer({"input": np.ones((1, 3))}))]
        await until(lambda: batcher.busy_since is not None, "the held batch to start")
        held += [asyncio.ensure_future(server.infer({"input": np.ones((1, 3))})) for _ in "ab"]
        await until(lambda: batcher.queue_depth == 2, "the queue to fill")
        with pytest.raises(OverloadedError):
            await server.infer({"input": np.ones((1, 3))})
        probe = asyncio.ensure_future(server.readiness())
        await until(lambda: batcher.queue_depth == 3, "the probe to queue")
        marker.unlink()
        assert await probe == (True, "the inference probe passed")
        await asyncio.gather(*held)
        await server.finish_drain()

    asyncio.run(scenario())


def test_admission_refuses_before_any_work_when_full_or_not_ready(
    flaky_seal: tuple[Path, Path],
) -> None:
    seal_dir, marker = flaky_seal

    async def scenario() -> None:
        config = ServeConfig(max_batch_size=2, max_queue=2, warmup_rounds=1)
        server = ModelServer(open_seal(seal_dir), config, DeviceChoice("cpu", None))
        assert isinstance(server.refusal(), NotAcceptingError)
        with pytest.raises(NotAcceptingError, match="not ready"):
            async with server.admitted():
                pass
        server.begin_startup()
        await asyncio.wait_for(server.settled.wait(), PATIENCE_SECONDS)
        assert server.refusal() is None
        async with server.admitted(), server.admitted():
            with pytest.raises(OverloadedError, match=r"2 requests are waiting \(max_queue is 2\)"):
                async with server.admitted():
                    pass
        # A request in the running batch no longer waits: it frees its place in the queue.
        batcher = server.batcher
        assert batcher is not None
        marker.write_text("hang")
        async with server.admitted():
            running = asyncio.ensure_future(server.infer({"input": np.ones((1, 3))}))
            await until(lambda: batcher.running == 1, "the batch to run")
            async with server.admitted():
                assert server.refusal() is None
            marker.unlink()
            await running
        await server.finish_drain()

    asyncio.run(scenario())


def test_only_native_runtimes_may_run_a_batch_on_the_event_loop(
    flaky_seal: tuple[Path, Path], demo_seal_path: Path
) -> None:
    """The numpy runtime runs the user's Python, which may block (the flaky model waits on a
    file): its batches always run in the inference thread, so liveness can name a wedged one.
    scikit-learn runs its own native code: short batches may run inline."""

    async def scenario() -> tuple[float, float]:
        limits = []
        for seal_dir in (flaky_seal[0], demo_seal_path):
            server = await started(seal_dir, inline_below_ms=3.5)
            assert server.health.state is State.READY, server.health.reason
            assert server.batcher is not None
            limits.append(server.batcher.inline_below_s)
            await server.finish_drain()
        return limits[0], limits[1]

    numpy_limit, sklearn_limit = asyncio.run(scenario())
    assert numpy_limit == 0.0
    assert sklearn_limit == pytest.approx(0.0035)


@pytest.mark.skipif(
    usable_cpus() < 2, reason="needs two usable CPUs to run the server on one and on two"
)
def test_batches_settle_under_load_only_where_the_server_has_one_cpu(
    demo_seal_path: Path,
) -> None:
    """On one CPU the loop's turns cost the model nothing; on two they would idle it."""
    everything = os.sched_getaffinity(0)

    async def settles_on(cpus: set[int]) -> bool:
        os.sched_setaffinity(0, cpus)
        try:
            server = await started(demo_seal_path)
        finally:
            os.sched_setaffinity(0, everything)
        assert server.health.state is State.READY, server.health.reason
        assert server.batcher is not None
        settles = server.batcher.settle_under_load
        await server.finish_drain()
        return settles

    async def scenario() -> tuple[bool, bool]:
        return await settles_on({min(everything)}), await settles_on(everything)

    one_cpu, all_cpus = asyncio.run(scenario())
    assert one_cpu is True
    assert all_cpus is False


def test_a_ready_server_has_moved_its_start_up_heap_out_of_the_collectors_sight(
    flaky_seal: tuple[Path, Path],
) -> None:
    async def scenario() -> int:
        server = await started(flaky_seal[0])
        assert server.health.state is State.READY, server.health.reason
        frozen = gc.get_freeze_count()
        await server.finish_drain()
        return frozen

    gc.unfreeze()
    try:
        # The model, its seal and every module imported so far are frozen.
        assert asyncio.run(scenario()) > 10_000
    finally:
        gc.unfreeze()
