"""Retries for transient fetch errors: exponential backoff, full jitter, an overall deadline.

Each backend sorts its own failures into ``TransientFetchError`` (timeouts, 5xx, 429,
connection resets, bodies cut short: worth another try) and ``SourceError`` (403, 404, no
such bucket, bad credentials: fail at once with the fact and the fix). Every retry is logged.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from modelseal.errors import SourceError, UsageError
from modelseal.sources.redact import redact

log = logging.getLogger("modelseal.sources")
T = TypeVar("T")


class TransientFetchError(Exception):
    """A failure worth retrying; its message is already free of secrets."""


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff ``initial_s * multiplier**attempt`` capped at ``max_backoff_s``, full jitter,
    and no retry that would start after ``deadline_s`` from the first attempt."""

    initial_s: float = 0.2
    multiplier: float = 2.0
    max_backoff_s: float = 10.0
    deadline_s: float = 300.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RetryPolicy:
        """``MODELSEAL_FETCH_DEADLINE`` (seconds) bounds the retries of one fetch."""
        values = os.environ if environ is None else environ
        raw = values.get("MODELSEAL_FETCH_DEADLINE")
        if raw is None:
            return cls()
        try:
            deadline = float(raw)
        except ValueError:
            deadline = -1.0
        if deadline <= 0:
            raise UsageError(f"MODELSEAL_FETCH_DEADLINE={raw!r}: expected a positive number")
        return cls(deadline_s=deadline)

    def backoff_cap(self, attempt: int) -> float:
        """The most to wait before retry number ``attempt`` (1 for the first retry)."""
        return min(self.max_backoff_s, self.initial_s * self.multiplier ** (attempt - 1))


class Retrier:
    """One fetch's retry budget, shared by the threads that work on it."""

    def __init__(
        self,
        policy: RetryPolicy,
        what: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[float], float] = lambda cap: random.uniform(0, cap),
    ) -> None:
        self.policy = policy
        self.what = what
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._started = clock()
        self._lock = threading.Lock()
        self.retries = 0

    def call(self, operation: Callable[[], T], doing: str) -> T:
        """Run ``operation`` until it succeeds, retrying transient errors within the budget."""
        attempt = 0
        while True:
            try:
                return operation()
            except TransientFetchError as exc:
                attempt += 1
                self.wait(attempt, exc, doing)

    def wait(self, attempt: int, error: TransientFetchError, doing: str) -> None:
        """Sleep before retry ``attempt``, or raise ``SourceError`` once the deadline is near."""
        delay = self._jitter(self.policy.backoff_cap(attempt))
        elapsed = self._clock() - self._started
        if elapsed + delay > self.policy.deadline_s:
            raise SourceError(
                f"{self.what}: gave up {doing} after {attempt} attempts in {elapsed:.0f} s "
                f"(deadline {self.policy.deadline_s:.0f} s, MODELSEAL_FETCH_DEADLINE): "
                f"{redact(str(error))}; check the network and the server, then start again"
            ) from None
        with self._lock:
            self.retries += 1
        log.warning(
            "transient error %s %s: %s; retry %d in %.2f s",
            doing,
            self.what,
            redact(str(error)),
            attempt,
            delay,
            extra={
                "source": self.what,
                "error": redact(str(error)),
                "attempt": attempt,
                "retry_in_s": round(delay, 3),
            },
        )
        self._sleep(delay)
