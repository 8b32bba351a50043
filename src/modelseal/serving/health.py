"""Readiness as an explicit state machine, and a cached probe that proves inference works.

The server is ready only in state ``READY`` with its last inference probe passing; the
HTTP status code of the readiness routes, not only their body, says so.

::

    LOADING -> VERIFYING -> WARMING -> READY
       any  -> FAILED      LOADING / VERIFYING / WARMING / READY -> DRAINING
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from modelseal.errors import IllegalTransitionError


class State(str, Enum):
    """Where the server is in its life."""

    LOADING = "loading"
    VERIFYING = "verifying"
    WARMING = "warming"
    READY = "ready"
    FAILED = "failed"
    DRAINING = "draining"


_NEXT: dict[State, frozenset[State]] = {
    State.LOADING: frozenset({State.VERIFYING, State.FAILED, State.DRAINING}),
    State.VERIFYING: frozenset({State.WARMING, State.FAILED, State.DRAINING}),
    State.WARMING: frozenset({State.READY, State.FAILED, State.DRAINING}),
    State.READY: frozenset({State.FAILED, State.DRAINING}),
    State.FAILED: frozenset({State.FAILED}),
    State.DRAINING: frozenset({State.FAILED}),
}


@dataclass(frozen=True)
class Transition:
    """One state entered: when (Unix time) and why."""

    state: State
    reason: str
    at: float


class HealthState:
    """The server's state, why it is there, since when, and whether the inference probe passes.

    ``ready`` is True only in ``READY`` with the probe passing (a failing probe is a flag,
    not a state, so the server returns to ready once the probe passes again). Thread-safe:
    the start-up pipeline may move it from a worker thread. ``on_change`` is called with each
    new state (for a metric), outside the lock.
    """

    def __init__(
        self,
        reason: str = "starting",
        *,
        on_change: Callable[[State], None] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._on_change = on_change
        self._history: list[Transition] = [Transition(State.LOADING, reason, time.time())]
        self._entered = time.monotonic()
        self._probe_ok = True
        self._probe_reason = "not probed yet"

    @property
    def state(self) -> State:
        return self._history[-1].state

    @property
    def reason(self) -> str:
        return self._history[-1].reason

    @property
    def since(self) -> float:
        """Unix time the current state was entered."""
        return self._history[-1].at

    @property
    def probe_ok(self) -> bool:
        return self._probe_ok

    @property
    def ready(self) -> bool:
        """True when requests should be sent here: state READY and the probe passing."""
        return self.state is State.READY and self._probe_ok

    @property
    def history(self) -> tuple[Transition, ...]:
        """Every state entered, oldest first."""
        return tuple(self._history)

    def to(self, state: State, reason: str) -> None:
        """Enter ``state`` for ``reason``; raises ``IllegalTransitionError`` if not allowed."""
        with self._lock:
            current = self.state
            if state not in _NEXT[current]:
                allowed = ", ".join(sorted(next_state.value for next_state in _NEXT[current]))
                raise IllegalTransitionError(
                    f"cannot go from {current.value} to {state.value} ({reason}); from "
                    f"{current.value} the server may go to: {allowed or 'nothing'}"
                )
            self._history.append(Transition(state, reason, time.time()))
            self._entered = time.monotonic()
        if self._on_change is not None:
            self._on_change(state)

    def set_probe(self, ok: bool, reason: str) -> None:
        """Record the latest inference probe result (see :class:`InferenceProbe`)."""
        with self._lock:
            self._probe_ok = ok
            self._probe_reason = reason

    def snapshot(self) -> dict[str, Any]:
        """The ``/health`` body: state, readiness, reason, timings and the probe result.

        ``{"state": "ready", "ready": true, "reason": "...", "since": "<ISO 8601 UTC>",
        "seconds_in_state": 12.5, "probe": {"ok": true, "reason": "..."},
        "history": [{"state": "loading", "reason": "...", "at": "<ISO>", "seconds": 0.8}, ...]}``
        where each history entry's ``seconds`` is how long that state lasted (up to now for the
        current one).
        """
        with self._lock:
            history = list(self._history)
            seconds_in_state = time.monotonic() - self._entered
            probe = {"ok": self._probe_ok, "reason": self._probe_reason}
        current = history[-1]
        ends = [entry.at for entry in history[1:]] + [current.at + seconds_in_state]
        return {
            "state": current.state.value,
            "ready": current.state is State.READY and bool(probe["ok"]),
            "reason": current.reason,
            "since": _iso(current.at),
            "seconds_in_state": round(seconds_in_state, 6),
            "probe": probe,
            "history": [
                {
                    "state": entry.state.value,
                    "reason": entry.reason,
                    "at": _iso(entry.at),
                    "seconds": round(end - entry.at, 6),
                }
                for entry, end in zip(history, ends, strict=True)
            ],
        }


@dataclass(frozen=True)
class ProbeResult:
    """One run of the inference probe."""

    ok: bool
    reason: str
    checked_at: float
    """Monotonic time the run finished."""
    seconds: float
    """How long the check ran."""


class InferenceProbe:
    """Runs ``check`` (an inference on known inputs) at most once per ``interval_s``.

    Callers of :meth:`ok` within ``interval_s`` of the last finished run get its cached
    result; concurrent callers while a run is in flight share that run. A check that raises
    fails the probe with the exception's text, and one that runs longer than ``timeout_s`` is
    cancelled and fails it too. A caller cancelled while waiting does not cancel the run.
    """

    def __init__(
        self,
        check: Callable[[], Awaitable[None]],
        interval_s: float,
        *,
        timeout_s: float = 10.0,
    ) -> None:
        self._check = check
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._last: ProbeResult | None = None
        self._running: asyncio.Task[ProbeResult] | None = None

    @property
    def last(self) -> ProbeResult | None:
        """The latest finished run, or None before the first."""
        return self._last

    async def ok(self) -> tuple[bool, str]:
        """Whether inference works, and why not: cached, or from a (shared) fresh run."""
        last = self._last
        if last is not None and time.monotonic() - last.checked_at < self.interval_s:
            return last.ok, last.reason
        if self._running is None:
            self._running = asyncio.get_running_loop().create_task(
                self._run(), name="modelseal-inference-probe"
            )
        result = await asyncio.shield(self._running)
        return result.ok, result.reason

    async def _run(self) -> ProbeResult:
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._check(), self.timeout_s)
        except asyncio.TimeoutError:
            ok, reason = False, f"the inference probe timed out after {self.timeout_s:g} s"
        except Exception as exc:
            ok, reason = False, f"the inference probe failed: {type(exc).__name__}: {exc}"
        else:
            ok, reason = True, "the inference probe passed"
        finally:
            self._running = None
        finished = time.monotonic()
        self._last = ProbeResult(ok, reason, finished, finished - started)
        return self._last


def _iso(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time, tz=timezone.utc).isoformat(timespec="milliseconds")
