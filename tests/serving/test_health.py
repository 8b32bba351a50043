"""The readiness state machine and the cached inference probe."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from modelseal.errors import IllegalTransitionError
from modelseal.serving.health import HealthState, InferenceProbe, State


def started_up() -> HealthState:
    health = HealthState()
    health.to(State.VERIFYING, "replaying golden outputs")
    health.to(State.WARMING, "warming up")
    health.to(State.READY, "serving")
    return health


def is_ready(health: HealthState) -> bool:
    # Read through a call: mypy would otherwise keep the property narrowed from before.
    return health.ready


def test_start_up_path_reaches_ready_and_records_history() -> None:
    seen: list[State] = []
    health = HealthState("loading the seal", on_change=seen.append)
    assert (health.state, health.reason) == (State.LOADING, "loading the seal")
    assert not is_ready(health)
    health.to(State.VERIFYING, "replaying golden outputs")
    health.to(State.WARMING, "warming up")
    assert not is_ready(health)
    health.to(State.READY, "serving")
    assert is_ready(health) and (health.state, health.reason) == (State.READY, "serving")
    assert seen == [State.VERIFYING, State.WARMING, State.READY]
    assert [entry.state for entry in health.history] == [
        State.LOADING,
        State.VERIFYING,
        State.WARMING,
        State.READY,
    ]
    assert health.since == health.history[-1].at


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], State.READY),
        ([], State.WARMING),
        ([State.VERIFYING], State.READY),
        ([State.VERIFYING, State.WARMING, State.READY], State.WARMING),
        ([State.VERIFYING, State.WARMING, State.READY], State.READY),
        ([State.FAILED], State.READY),
        ([State.FAILED], State.LOADING),
        ([State.VERIFYING, State.DRAINING], State.READY),
    ],
)
def test_illegal_transitions_raise_and_change_nothing(path: list[State], illegal: State) -> None:
    health = HealthState()
    for state in path:
        health.to(state, "step")
    before = health.state
    with pytest.raises(
        IllegalTransitionError, match=f"cannot go from {before.value} to {illegal.value}"
    ):
        health.to(illegal, "wrong")
    assert health.state is before and len(health.history) == len(path) + 1


@pytest.mark.parametrize(
    "path",
    [
        [State.FAILED],
        [State.DRAINING],
        [State.DRAINING, State.FAILED],
        [State.VERIFYING, State.FAILED],
        [State.VERIFYING, State.WARMING, State.FAILED],
        [State.VERIFYING, State.WARMING, State.READY, State.FAILED],
        [State.VERIFYING, State.DRAINING],
        [State.VERIFYING, State.WARMING, State.DRAINING],
        [State.VERIFYING, State.WARMING, State.READY, State.DRAINING, State.FAILED],
        [State.FAILED, State.FAILED],
    ],
)
def test_legal_transitions(path: list[State]) -> None:
    health = HealthState()
    for state in path:
        health.to(state, f"to {state.value}")
    assert health.state is path[-1] and health.reason == f"to {path[-1].value}"


def test_a_failing_probe_makes_ready_false_without_leaving_ready() -> None:
    health = started_up()
    health.set_probe(False, "the inference probe timed out after 2 s")
    assert health.state is State.READY and not is_ready(health)
    snapshot = health.snapshot()
    assert snapshot["state"] == "ready" and snapshot["ready"] is False
    assert snapshot["probe"] == {"ok": False, "reason": "the inference probe timed out after 2 s"}
    health.set_probe(True, "the inference probe passed")
    assert is_ready(health) and health.snapshot()["ready"] is True


def test_snapshot_is_the_health_body() -> None:
    health = started_up()
    snapshot = health.snapshot()
    assert snapshot["state"] == "ready" and snapshot["reason"] == "serving"
    assert datetime.fromisoformat(snapshot["since"]).timestamp() == pytest.approx(
        health.since, abs=0.001
    )
    assert snapshot["seconds_in_state"] >= 0
    assert [entry["state"] for entry in snapshot["history"]] == [
        "loading",
        "verifying",
        "warming",
        "ready",
    ]
    assert all(entry["seconds"] >= 0 for entry in snapshot["history"])
    health.to(State.DRAINING, "SIGTERM")
    assert health.snapshot()["state"] == "draining" and not health.ready


class CountingCheck:
    """A probe check that counts its runs; with ``gated`` each run waits for ``release``."""

    def __init__(
        self, delay_s: float = 0.0, error: Exception | None = None, *, gated: bool = False
    ) -> None:
        self.calls = 0
        self.delay_s = delay_s
        self.error = error
        self.gated = gated
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self) -> None:
        self.calls += 1
        self.started.set()
        if self.gated:
            await self.release.wait()
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error


def test_probe_runs_once_per_interval_even_for_concurrent_callers() -> None:
    check = CountingCheck(delay_s=0.02)
    probe = InferenceProbe(check, interval_s=60)

    async def main() -> None:
        results = await asyncio.gather(*(probe.ok() for _ in range(20)))
        assert results == [(True, "the inference probe passed")] * 20
        assert check.calls == 1
        assert await probe.ok() == (True, "the inference probe passed")
        assert check.calls == 1
        assert probe.last is not None and probe.last.seconds >= 0.02

    asyncio.run(main())


def test_probe_runs_again_after_the_interval() -> None:
    check = CountingCheck()
    probe = InferenceProbe(check, interval_s=0.05)

    async def main() -> None:
        await probe.ok()
        await probe.ok()
        assert check.calls == 1
        await asyncio.sleep(0.06)
        await probe.ok()
        assert check.calls == 2

    asyncio.run(main())


def test_probe_failure_records_the_exception_text_and_is_cached() -> None:
    check = CountingCheck(error=RuntimeError("CUDA error: an illegal memory access"))
    probe = InferenceProbe(check, interval_s=60)

    async def main() -> None:
        ok, reason = await probe.ok()
        assert not ok
        assert (
            reason
            == "the inference probe failed: RuntimeError: CUDA error: an illegal memory access"
        )
        assert await probe.ok() == (ok, reason)
        assert check.calls == 1

    asyncio.run(main())


def test_probe_times_out_a_hung_check() -> None:
    check = CountingCheck(delay_s=30)
    probe = InferenceProbe(check, interval_s=0, timeout_s=0.05)

    async def main() -> None:
        ok, reason = await asyncio.wait_for(probe.ok(), 60)
        assert (ok, reason) == (False, "the inference probe timed out after 0.05 s")

    asyncio.run(main())


def test_a_cancelled_caller_does_not_cancel_the_shared_run() -> None:
    async def main() -> None:
        check = CountingCheck(gated=True)
        probe = InferenceProbe(check, interval_s=60)
        impatient = asyncio.create_task(probe.ok())
        patient = asyncio.create_task(probe.ok())
        await asyncio.wait_for(check.started.wait(), 60)
        impatient.cancel()
        await asyncio.sleep(0)
        check.release.set()
        assert await patient == (True, "the inference probe passed")
        assert impatient.cancelled() and check.calls == 1

    asyncio.run(main())
