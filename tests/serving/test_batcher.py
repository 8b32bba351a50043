"""Adaptive batching with a real numpy model, on a real event loop and thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

import numpy as np
import pytest

from modelseal.errors import NotAcceptingError, OverloadedError, RuntimeLoadError, UsageError
from modelseal.serving.batcher import AdaptiveBatcher, RowCost
from modelseal.types import NamedArrays

WEIGHTS = np.random.default_rng(0).standard_normal((8, 3))


def linear(inputs: NamedArrays) -> NamedArrays:
    x = np.asarray(inputs["x"], dtype=np.float64)
    return {"y": x @ WEIGHTS, "norm": np.linalg.norm(x, axis=1)}


def rows(count: int, seed: int) -> NamedArrays:
    return {"x": np.random.default_rng(seed).standard_normal((count, 8))}


class Recorder:
    """The on_batch callback: every batch's rows and the oldest request's wait."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.waits: list[float] = []

    def __call__(self, batch_rows: int, waited_s: float) -> None:
        self.batches.append(batch_rows)
        self.waits.append(waited_s)


class Gate:
    """A predict that blocks its thread until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: set[str] = set()

    def __call__(self, inputs: NamedArrays) -> NamedArrays:
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        assert self.release.wait(10), "the test never released the gate"
        return linear(inputs)

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, 10)


def run(
    make: Callable[[], AdaptiveBatcher], body: Callable[[AdaptiveBatcher], Awaitable[None]]
) -> None:
    async def main() -> None:
        batcher = make()
        await batcher.start()
        try:
            await body(batcher)
        finally:
            await asyncio.wait_for(batcher.drain(), 10)

    asyncio.run(main())


def assert_own_rows(inputs: NamedArrays, outputs: NamedArrays) -> None:
    alone = linear(inputs)
    assert outputs.keys() == alone.keys()
    for name in alone:
        got = np.asarray(outputs[name], dtype=np.float64)
        np.testing.assert_allclose(got, np.asarray(alone[name], np.float64), rtol=1e-12, atol=1e-12)


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows() -> None:
    recorder = Recorder()
    gate = Gate()
    requests = [rows(1 + index % 3, seed=index) for index in range(50)]

    async def body(batcher: AdaptiveBatcher) -> None:
        # Hold the model with a first request so the 50 queue up behind it.
        first = asyncio.create_task(batcher.submit(rows(1, seed=99)))
        await gate.wait_entered()
        tasks = [asyncio.create_task(batcher.submit(request)) for request in requests]
        await asyncio.sleep(0)
        assert batcher.queue_depth == 50
        assert batcher.rows_in_queue == sum(r["x"].shape[0] for r in requests)
        gate.release.set()
        results = await asyncio.gather(first, *tasks)
        for request, outputs in zip(requests, results[1:], strict=True):
            assert_own_rows(request, outputs)
        assert batcher.queue_depth == 0 and batcher.rows_in_queue == 0

    run(
        lambda: AdaptiveBatcher(
            gate, max_batch_size=32, max_batch_delay_ms=0, max_queue=100, on_batch=recorder
        ),
        body,
    )
    assert recorder.batches[0] == 1
    assert max(recorder.batches) > 1
    assert all(size <= 32 for size in recorder.batches)
    assert sum(recorder.batches) == 1 + sum(r["x"].shape[0] for r in requests)
    assert len(gate.threads) == 1 and threading.current_thread().name not in gate.threads


def test_gather_of_fifty_without_a_gate_batches_and_matches() -> None:
    recorder = Recorder()
    requests = [rows(2, seed=index) for index in range(50)]

    async def body(batcher: AdaptiveBatcher) -> None:
        results = await asyncio.gather(*(batcher.submit(request) for request in requests))
        for request, outputs in zip(requests, results, strict=True):
            assert_own_rows(request, outputs)

    def slow_linear(inputs: NamedArrays) -> NamedArrays:
        time.sleep(0.005)
        return linear(inputs)

    run(
        lambda: AdaptiveBatcher(
            slow_linear, max_batch_size=64, max_batch_delay_ms=0, max_queue=100, on_batch=recorder
        ),
        body,
    )
    assert max(recorder.batches) > 2
    assert sum(recorder.batches) == 100


def test_a_lone_request_runs_without_waiting_for_a_batch_window() -> None:
    recorder = Recorder()

    async def body(batcher: AdaptiveBatcher) -> None:
        for seed in range(5):
            request = rows(1, seed)
            # No other request will come: without a window it must run alone, at once.
            assert_own_rows(request, await asyncio.wait_for(batcher.submit(request), 60))

    run(
        lambda: AdaptiveBatcher(
            linear, max_batch_size=64, max_batch_delay_ms=0, max_queue=10, on_batch=recorder
        ),
        body,
    )
    assert recorder.batches == [1] * 5


async def submit_after(batcher: AdaptiveBatcher, turns: int, request: NamedArrays) -> NamedArrays:
    """A request whose bytes are on their way: it reaches the queue ``turns`` loop turns from
    now (as a request's bytes take a few turns from its socket to the queue)."""
    for _ in range(turns):
        await asyncio.sleep(0)
    return await batcher.submit(request)


@pytest.mark.parametrize(
    ("settle", "earlier_batch", "next_batch"),
    [(True, 2, 3), (True, 1, 1), (False, 2, 1)],
    ids=[
        "under-load-they-join-one-batch",
        "after-a-lone-request-the-first-runs-at-once",
        "without-settling-the-first-runs-at-once",
    ],
)
def test_a_batch_under_load_waits_for_the_requests_on_their_way(
    settle: bool, earlier_batch: int, next_batch: int
) -> None:
    """With ``settle_under_load``, under load (the last batch served several requests) the
    requests that arrive over the next loop turns join one batch; after a lone request, or
    without it, the first runs at once. (What the later ones meet then depends on how many
    turns the thread takes: not asserted.)"""
    recorder = Recorder()
    earlier = [rows(1, seed) for seed in range(earlier_batch)]
    arriving = [rows(1, seed) for seed in range(10, 13)]

    async def body(batcher: AdaptiveBatcher) -> None:
        # Queued in one turn, they run as one batch.
        for request, outputs in zip(
            earlier, await asyncio.gather(*(batcher.submit(r) for r in earlier)), strict=True
        ):
            assert_own_rows(request, outputs)
        results = await asyncio.gather(
            *(submit_after(batcher, 3 * index, r) for index, r in enumerate(arriving))
        )
        for request, outputs in zip(arriving, results, strict=True):
            assert_own_rows(request, outputs)

    run(
        lambda: AdaptiveBatcher(
            linear,
            max_batch_size=64,
            max_batch_delay_ms=0,
            max_queue=10,
            on_batch=recorder,
            settle_under_load=settle,
        ),
        body,
    )
    assert recorder.batches[:2] == [earlier_batch, next_batch]


def test_requests_on_their_way_never_grow_a_batch_past_max_batch_size() -> None:
    recorder = Recorder()

    async def body(batcher: AdaptiveBatcher) -> None:
        await asyncio.gather(batcher.submit(rows(1, 0)), batcher.submit(rows(1, 1)))
        arriving = [rows(1, seed) for seed in range(10, 17)]
        await asyncio.gather(*(submit_after(batcher, i, r) for i, r in enumerate(arriving)))

    run(
        lambda: AdaptiveBatcher(
            linear,
            max_batch_size=3,
            max_batch_delay_ms=0,
            max_queue=10,
            on_batch=recorder,
            settle_under_load=True,
        ),
        body,
    )
    assert recorder.batches[0] == 2
    assert sum(recorder.batches) == 9 and max(recorder.batches) == 3


def test_a_batch_window_holds_a_lone_request_until_its_batch_fills() -> None:
    recorder = Recorder()

    async def body(batcher: AdaptiveBatcher) -> None:
        first = asyncio.create_task(batcher.submit(rows(1, 0)))
        while batcher.queue_depth:  # the worker took it and waits for more rows
            await asyncio.sleep(0.01)
        for _ in range(10):
            await asyncio.sleep(0)
        assert not first.done(), "a ten-minute window let a lone request through"
        second = asyncio.create_task(batcher.submit(rows(1, 1)))
        # Two rows fill the batch: it runs now, long before the window ends.
        outputs = await asyncio.wait_for(asyncio.gather(first, second), 60)
        assert_own_rows(rows(1, 0), outputs[0])
        assert_own_rows(rows(1, 1), outputs[1])

    run(
        lambda: AdaptiveBatcher(
            linear, max_batch_size=2, max_batch_delay_ms=600_000, max_queue=10, on_batch=recorder
        ),
        body,
    )
    assert recorder.batches == [2]


def test_max_batch_size_is_respected_and_a_larger_request_runs_alone() -> None:
    recorder = Recorder()
    gate = Gate()
    small = [rows(3, seed) for seed in range(6)]
    large = rows(10, seed=7)

    async def body(batcher: AdaptiveBatcher) -> None:
        first = asyncio.create_task(batcher.submit(rows(1, 100)))
        await gate.wait_entered()
        tasks = [asyncio.create_task(batcher.submit(r)) for r in (*small[:3], large, *small[3:])]
        await asyncio.sleep(0)
        gate.release.set()
        results = await asyncio.gather(first, *tasks)
        for request, outputs in zip((*small[:3], large, *small[3:]), results[1:], strict=True):
            assert_own_rows(request, outputs)

    run(
        lambda: AdaptiveBatcher(
            gate, max_batch_size=8, max_batch_delay_ms=0, max_queue=20, on_batch=recorder
        ),
        body,
    )
    # 1 (holding), then 3+3 (a third 3 would pass 8), then 3 alone (10 does not fit),
    # 10 alone and whole, then 3+3+3 (9 > 8, so 3+3) and 3.
    assert recorder.batches == [1, 6, 3, 10, 6, 3]


def test_requests_with_other_row_shapes_wait_for_their_own_batch() -> None:
    recorder = Recorder()
    gate = Gate()

    def predict(inputs: NamedArrays) -> NamedArrays:
        if inputs["x"].shape[1] == 8:
            gate(inputs)
        return {"s": inputs["x"].sum(axis=1)}

    async def body(batcher: AdaptiveBatcher) -> None:
        first = asyncio.create_task(batcher.submit(rows(1, 0)))
        await gate.wait_entered()
        wide: NamedArrays = {"x": np.ones((2, 5))}
        narrow: NamedArrays = {"x": np.ones((1, 8), np.float32)}
        tasks = [
            asyncio.create_task(batcher.submit(r)) for r in (rows(1, 1), wide, rows(2, 2), narrow)
        ]
        await asyncio.sleep(0)
        gate.release.set()
        results = await asyncio.gather(first, *tasks)
        assert results[2]["s"].tolist() == [5.0, 5.0]
        assert results[4]["s"].tolist() == [8.0]

    run(
        lambda: AdaptiveBatcher(
            predict, max_batch_size=16, max_batch_delay_ms=0, max_queue=20, on_batch=recorder
        ),
        body,
    )
    # float64 rows of 8 batch together (1+2); the 5-wide and the float32 ones run apart.
    assert recorder.batches == [1, 3, 2, 1]


def test_overloaded_when_the_queue_is_full_while_the_model_is_held() -> None:
    gate = Gate()

    async def body(batcher: AdaptiveBatcher) -> None:
        running = asyncio.create_task(batcher.submit(rows(1, 0)))
        await gate.wait_entered()
        waiting = [asyncio.create_task(batcher.submit(rows(1, seed))) for seed in range(1, 4)]
        await asyncio.sleep(0)
        assert batcher.queue_depth == 3
        with pytest.raises(OverloadedError, match="3 requests are already waiting"):
            await batcher.submit(rows(1, 9))
        gate.release.set()
        await asyncio.gather(running, *waiting)
        assert_own_rows(rows(1, 9), await batcher.submit(rows(1, 9)))

    run(lambda: AdaptiveBatcher(gate, max_batch_size=8, max_batch_delay_ms=0, max_queue=3), body)


def test_a_failing_predict_fails_its_whole_batch_and_the_batcher_goes_on() -> None:
    gate = Gate()
    calls: list[int] = []

    def predict(inputs: NamedArrays) -> NamedArrays:
        calls.append(inputs["x"].shape[0])
        if len(calls) == 1:
            gate(inputs)
        if len(calls) == 2:
            raise ValueError("model exploded")
        return linear(inputs)

    async def body(batcher: AdaptiveBatcher) -> None:
        first = asyncio.create_task(batcher.submit(rows(1, 0)))
        await gate.wait_entered()
        doomed = [asyncio.create_task(batcher.submit(rows(1, seed))) for seed in range(1, 5)]
        await asyncio.sleep(0)
        gate.release.set()
        assert_own_rows(rows(1, 0), await first)
        outcomes = await asyncio.gather(*doomed, return_exceptions=True)
        assert all(isinstance(o, ValueError) and str(o) == "model exploded" for o in outcomes)
        assert_own_rows(rows(2, 5), await batcher.submit(rows(2, 5)))

    run(lambda: AdaptiveBatcher(predict, max_batch_size=8, max_batch_delay_ms=0, max_queue=9), body)
    assert calls == [1, 4, 2]


def test_outputs_that_lose_the_batch_axis_fail_the_batch() -> None:
    gate = Gate()

    def predict(inputs: NamedArrays) -> NamedArrays:
        if inputs["x"].shape[0] == 1:
            return gate(inputs)
        return {"y": np.zeros(1)}

    async def body(batcher: AdaptiveBatcher) -> None:
        first = asyncio.create_task(batcher.submit(rows(1, 0)))
        await gate.wait_entered()
        pair = [asyncio.create_task(batcher.submit(rows(1, seed))) for seed in (1, 2)]
        await asyncio.sleep(0)
        gate.release.set()
        await first
        outcomes = await asyncio.gather(*pair, return_exceptions=True)
        for outcome in outcomes:
            assert isinstance(outcome, RuntimeLoadError)
            assert "returned 1 rows for output 'y' from a batch of 2 rows" in str(outcome)

    run(lambda: AdaptiveBatcher(predict, max_batch_size=8, max_batch_delay_ms=0, max_queue=9), body)


def test_a_cancelled_request_does_not_break_its_batch() -> None:
    gate = Gate()
    recorder = Recorder()

    async def body(batcher: AdaptiveBatcher) -> None:
        first = asyncio.create_task(batcher.submit(rows(1, 0)))
        await gate.wait_entered()
        keep = asyncio.create_task(batcher.submit(rows(2, 1)))
        gone = asyncio.create_task(batcher.submit(rows(3, 2)))
        also_kept = asyncio.create_task(batcher.submit(rows(1, 3)))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        assert batcher.queue_depth == 2 and batcher.rows_in_queue == 3
        gate.release.set()
        await first
        assert_own_rows(rows(2, 1), await keep)
        assert_own_rows(rows(1, 3), await also_kept)
        assert gone.cancelled()

    run(
        lambda: AdaptiveBatcher(
            gate, max_batch_size=8, max_batch_delay_ms=0, max_queue=9, on_batch=recorder
        ),
        body,
    )
    assert recorder.batches == [1, 3]


def test_a_request_cancelled_inside_a_running_batch_leaves_the_others_their_results() -> None:
    gate = Gate()

    async def body(batcher: AdaptiveBatcher) -> None:
        first = asyncio.create_task(batcher.submit(rows(1, 0)))
        await gate.wait_entered()
        first.cancel()
        await asyncio.sleep(0)
        gate.release.set()
        assert first.cancelled()
        assert_own_rows(rows(1, 1), await batcher.submit(rows(1, 1)))

    run(lambda: AdaptiveBatcher(gate, max_batch_size=8, max_batch_delay_ms=0, max_queue=9), body)


def test_drain_finishes_queued_work_and_refuses_new_requests() -> None:
    gate = Gate()

    async def main() -> None:
        batcher = AdaptiveBatcher(gate, max_batch_size=2, max_batch_delay_ms=0, max_queue=9)
        with pytest.raises(NotAcceptingError, match="not been started"):
            await batcher.submit(rows(1, 0))
        await batcher.start()
        requests = [rows(1, seed) for seed in range(5)]
        tasks = [asyncio.create_task(batcher.submit(r)) for r in requests]
        await gate.wait_entered()
        draining = asyncio.create_task(batcher.drain())
        await asyncio.sleep(0)
        with pytest.raises(NotAcceptingError, match="draining"):
            await batcher.submit(rows(1, 9))
        assert not draining.done()
        gate.release.set()
        await asyncio.wait_for(draining, 10)
        for request, task in zip(requests, tasks, strict=True):
            assert_own_rows(request, task.result())
        with pytest.raises(NotAcceptingError):
            await batcher.submit(rows(1, 9))

    asyncio.run(main())


def test_a_drain_given_up_on_fails_what_is_left() -> None:
    gate = Gate()

    async def main() -> None:
        batcher = AdaptiveBatcher(gate, max_batch_size=1, max_batch_delay_ms=0, max_queue=9)
        await batcher.start()
        tasks = [asyncio.create_task(batcher.submit(rows(1, seed))) for seed in range(3)]
        await gate.wait_entered()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(batcher.drain(), 0.05)
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(o, NotAcceptingError) for o in outcomes)
        gate.release.set()

    asyncio.run(main())


def test_busy_since_marks_a_running_batch() -> None:
    gate = Gate()

    async def body(batcher: AdaptiveBatcher) -> None:
        assert busy_since(batcher) is None
        task = asyncio.create_task(batcher.submit(rows(1, 0)))
        await gate.wait_entered()
        started = busy_since(batcher)
        assert started is not None and started <= time.monotonic()
        gate.release.set()
        await task
        assert busy_since(batcher) is None

    run(lambda: AdaptiveBatcher(gate, max_batch_size=4, max_batch_delay_ms=0, max_queue=4), body)


def busy_since(batcher: AdaptiveBatcher) -> float | None:
    # Read through a call: mypy would otherwise keep the attribute narrowed from before.
    return batcher.busy_since


def test_submit_first_goes_ahead_and_past_a_full_queue() -> None:
    gate = Gate()
    recorder = Recorder()

    async def body(batcher: AdaptiveBatcher) -> None:
        running = asyncio.create_task(batcher.submit(rows(1, 0)))
        await gate.wait_entered()
        waiting = [asyncio.create_task(batcher.submit(rows(2, seed))) for seed in (1, 2)]
        await asyncio.sleep(0)
        with pytest.raises(OverloadedError):
            await batcher.submit(rows(2, 3))
        first = asyncio.create_task(batcher.submit_first(rows(1, 4)))
        await asyncio.sleep(0)
        assert batcher.queue_depth == 3
        gate.release.set()
        assert_own_rows(rows(1, 4), await first)
        await asyncio.gather(running, *waiting)

    run(
        lambda: AdaptiveBatcher(
            gate, max_batch_size=1, max_batch_delay_ms=0, max_queue=2, on_batch=recorder
        ),
        body,
    )
    # One row per batch: the held one, then the one sent first, then those that waited.
    assert recorder.batches == [1, 1, 2, 2]


def test_an_observer_that_raises_does_not_fail_requests() -> None:
    def broken(batch_rows: int, waited_s: float) -> None:
        raise RuntimeError("metrics down")

    async def body(batcher: AdaptiveBatcher) -> None:
        assert_own_rows(rows(2, 0), await batcher.submit(rows(2, 0)))

    run(
        lambda: AdaptiveBatcher(
            linear, max_batch_size=4, max_batch_delay_ms=0, max_queue=4, on_batch=broken
        ),
        body,
    )


# --- running a batch inline, where the hop costs more than the batch ----------------------


class ThreadNames:
    """A predict that records which thread ran each batch, and takes ``seconds`` to run."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.names: list[str] = []

    def __call__(self, inputs: NamedArrays) -> NamedArrays:
        self.names.append(threading.current_thread().name)
        if self.seconds:
            time.sleep(self.seconds)
        return linear(inputs)


def test_a_cheap_batch_runs_on_the_event_loop_once_one_was_measured() -> None:
    model = ThreadNames()

    async def body(batcher: AdaptiveBatcher) -> None:
        for seed in range(3):
            assert_own_rows(rows(2, seed), await batcher.submit(rows(2, seed)))

    run(
        lambda: AdaptiveBatcher(
            model, max_batch_size=8, max_batch_delay_ms=0, max_queue=8, inline_below_ms=1000
        ),
        body,
    )
    loop_thread = threading.current_thread().name  # asyncio.run runs the loop here
    # The first batch has no cost measured yet: the inference thread; then inline.
    assert model.names == ["modelseal-predict", loop_thread, loop_thread]


@pytest.mark.parametrize(
    ("inline_below_ms", "seconds"),
    [(0.0, 0.0), (5.0, 0.02)],
    ids=["inline-off", "batches-slower-than-the-limit"],
)
def test_batches_stay_in_the_inference_thread(inline_below_ms: float, seconds: float) -> None:
    model = ThreadNames(seconds)

    async def body(batcher: AdaptiveBatcher) -> None:
        for seed in range(3):
            assert_own_rows(rows(1, seed), await batcher.submit(rows(1, seed)))

    run(
        lambda: AdaptiveBatcher(
            model,
            max_batch_size=8,
            max_batch_delay_ms=0,
            max_queue=8,
            inline_below_ms=inline_below_ms,
        ),
        body,
    )
    assert model.names == ["modelseal-predict"] * 3


def test_row_cost_follows_the_batches_and_scales_with_rows() -> None:
    cost = RowCost(below_s=0.002)
    assert not cost.inline(1), "nothing runs inline before a batch was measured"
    cost.observe(rows=4, seconds=0.0004)  # 100 µs a row
    assert cost.inline(19) and not cost.inline(20)
    cost.observe(rows=1, seconds=0.0101)  # a slow batch moves the average by a tenth
    assert cost.per_row_s == pytest.approx(0.0001 + 0.1 * (0.0101 - 0.0001))
    assert not cost.inline(2)
    never = RowCost(below_s=0.0)
    never.observe(rows=1, seconds=1e-9)
    assert not never.inline(1)


def test_a_negative_inline_limit_is_refused() -> None:
    with pytest.raises(UsageError, match="inline_below_ms 0 or more.*-1"):
        AdaptiveBatcher(linear, max_batch_size=8, max_batch_delay_ms=0, max_queue=8,
                        inline_below_ms=-1)  # fmt: skip
