"""The server core in-process: start-up states, the readiness inference probe, liveness."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from modelseal import open_seal, pack
from modelseal.runtimes.numpy_function import NumpyFunction
from modelseal.serving.config import ServeConfig
from modelseal.serving.core import ModelServer
from modelseal.serving.device import DeviceChoice
from modelseal.serving.health import State

FLAKY = Path(__file__).parents[1] / "fixtures" / "flaky_function.py"


@pytest.fixture
def flaky_seal(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    seal = pack(
        NumpyFunction(source=FLAKY, weights={"marker": np.array([str(marker)])}),
        runtime="numpy", name="flaky", version="1", golden=np.arange(12.0).reshape(4, 3),
        output=tmp_path / "flaky.seal",
    )  # fmt: skip
    return seal.root, marker


async def started(seal_dir: Path, **settings: float) -> ModelServer:
    config = ServeConfig(max_batch_size=4, warmup_rounds=1, **settings)  # type: ignore[arg-type]
    server = ModelServer(open_seal(seal_dir), config, DeviceChoice("cpu", None))
    server.begin_startup()
    for _ in range(600):
        if server.health.state in (State.READY, State.FAILED):
            break
        await asyncio.sleep(0.01)
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
        await asyncio.sleep(0.06)
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
        server = await started(seal_dir, probe_interval_s=30)
        assert (await server.readiness())[0]
        marker.write_text("raise")
        # Within the interval the cached result answers: probes cannot overload the model.
        assert all([(await server.readiness())[0] for _ in range(20)])
        await server.finish_drain()

    asyncio.run(scenario())


def test_liveness_fails_when_a_batch_is_wedged(flaky_seal: tuple[Path, Path]) -> None:
    seal_dir, marker = flaky_seal

    async def scenario() -> None:
        server = await started(seal_dir, stall_seconds=0.5)
        assert server.liveness() == (True, "alive")
        marker.write_text("hang")
        request = asyncio.ensure_future(server.infer({"input": np.ones((1, 3))}))
        await asyncio.sleep(1.0)
        alive, why = server.liveness()
        assert not alive and "wedged" in why
        marker.unlink()
        await request
        assert server.liveness()[0]
        await server.finish_drain()

    asyncio.run(scenario())


def test_every_route_served_is_known_to_the_metrics() -> None:
    from modelseal.serving.app import _ROUTE_TABLE
    from modelseal.serving.core import ROUTES

    assert {path for _method, path, _handler in _ROUTE_TABLE} == set(ROUTES)
