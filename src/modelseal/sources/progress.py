"""Progress of a fetch, reported to an observer: a rich bar in a terminal, log lines in logs.

The resolver reports ``FetchProgress`` snapshots (bytes done and total, rate, ETA, retries)
to any callable, so a server can show them on its health endpoint while it fetches. A fetch
given a ``cancel`` event stops at the next piece that arrives once it is set.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from modelseal.errors import FetchCancelledError

if TYPE_CHECKING:  # rich's progress bar loads only where one is shown (a server never does)
    from rich.console import Console
    from rich.progress import TaskID

log = logging.getLogger("modelseal.sources")
Phase = Literal["downloading", "done", "failed"]
RATE_WINDOW_S = 5.0
LOG_INTERVAL_S = 5.0
REPORT_INTERVAL_S = 0.2


@dataclass(frozen=True)
class FetchProgress:
    """One snapshot of a fetch."""

    source: str
    phase: Phase
    bytes_done: int
    bytes_total: int | None
    rate_bytes_per_s: float | None
    eta_s: float | None
    retries: int = 0
    """Transient errors retried so far."""

    @property
    def fraction(self) -> float | None:
        if not self.bytes_total:
            return None
        return min(1.0, self.bytes_done / self.bytes_total)


# Anything that takes snapshots: a bar, a logger, a server's health state.
ProgressObserver = Callable[[FetchProgress], None]


class ProgressMeter:
    """Counts the bytes of one fetch from any thread and reports snapshots to an observer, one
    at a time: at most every ``REPORT_INTERVAL_S``, always at the start and the end, and once
    more ``REPORT_INTERVAL_S`` after bytes that were not reported (so a download that stalls
    shows all that arrived, not what arrived by its last report).

    ``retries`` says how many retries the fetch made so far; once ``cancel`` is set, counting
    more bytes raises ``FetchCancelledError`` (in the thread that downloaded them).
    """

    def __init__(
        self,
        source: str,
        observer: ProgressObserver | None,
        clock: Callable[[], float] = time.monotonic,
        *,
        retries: Callable[[], int] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.source = source
        self.observer = observer
        self._clock = clock
        self._retries = retries
        self._cancel = cancel
        self._lock = threading.Lock()
        self._done = 0
        self._total: int | None = None
        self._samples: list[tuple[float, int]] = []
        self._reporting = threading.Lock()
        self._last_report = float("-inf")
        self._trailing: threading.Timer | None = None
        self._open = False

    @property
    def bytes_done(self) -> int:
        return self._done

    def start(self, total: int | None) -> None:
        self._check_cancel()
        with self._lock:
            self._total, self._done = total, 0
            self._samples = [(self._clock(), 0)]
        self._open = True
        self._report("downloading", force=True)

    def skip(self, count: int) -> None:
        """Count bytes kept from an earlier attempt as done, without counting them in the rate."""
        with self._lock:
            self._done += count
            self._samples = [(time, done + count) for time, done in self._samples]

    def add(self, count: int) -> None:
        self._check_cancel()
        with self._lock:
            self._done += count
        self._report("downloading")

    def finish(self, ok: bool = True) -> None:
        self._report("done" if ok else "failed", force=True, last=True)

    def snapshot(self, phase: Phase) -> FetchProgress:
        with self._lock:
            now, done, total = self._clock(), self._done, self._total
            self._samples.append((now, done))
            while len(self._samples) > 2 and now - self._samples[1][0] > RATE_WINDOW_S:
                self._samples.pop(0)
            first_time, first_done = self._samples[0]
        rate = (done - first_done) / (now - first_time) if now > first_time else None
        eta = (total - done) / rate if rate and total is not None and total >= done else None
        retries = self._retries() if self._retries is not None else 0
        return FetchProgress(self.source, phase, done, total, rate, eta, retries)

    def _check_cancel(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise FetchCancelledError(
                f"{self.source}: the fetch was stopped; its partial download is kept for the "
                "next start"
            )

    def _report(self, phase: Phase, *, force: bool = False, last: bool = False) -> None:
        if self.observer is None:
            return
        with self._reporting:
            if not (force or self._open):
                return  # a trailing report that comes after the end
            now = self._clock()
            wait = REPORT_INTERVAL_S - (now - self._last_report)
            if not force and wait > 0:
                self._trail(wait)
                return
            self._last_report = now
            if last:
                self._open = False
                if self._trailing is not None:
                    self._trailing.cancel()
                    self._trailing = None
            self.observer(self.snapshot(phase))

    def _trail(self, wait: float) -> None:
        """Report once more after ``wait`` seconds, unless that is already planned."""
        if self._trailing is None:
            self._trailing = threading.Timer(wait, self._report_trailing)
            self._trailing.daemon = True
            self._trailing.start()

    def _report_trailing(self) -> None:
        with self._reporting:
            self._trailing = None
        self._report("downloading")


def terminal_progress() -> ProgressObserver:
    """A rich progress bar when stderr is a terminal, else a log line every few seconds."""
    return RichProgressBar() if sys.stderr.isatty() else LogProgress()


class LogProgress:
    """A structured log line every ``interval_s`` (and at the start and end): bytes, rate, ETA."""

    def __init__(
        self, interval_s: float = LOG_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last = float("-inf")

    def __call__(self, progress: FetchProgress) -> None:
        now = self._clock()
        if (
            progress.phase == "downloading"
            and progress.bytes_done
            and (now - self._last < self.interval_s)
        ):
            return
        self._last = now
        log.info(
            "fetching %s: %s",
            progress.source,
            describe(progress),
            extra={
                "source": progress.source,
                "phase": progress.phase,
                "bytes_done": progress.bytes_done,
                "bytes_total": progress.bytes_total,
                "rate_bytes_per_s": round(progress.rate_bytes_per_s or 0.0),
                "eta_s": None if progress.eta_s is None else round(progress.eta_s, 1),
            },
        )


class RichProgressBar:
    """A rich progress bar on stderr, shown from the first snapshot to the last."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._task: TaskID | None = None

    def __call__(self, progress: FetchProgress) -> None:
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task(f"fetching {progress.source}")
        self._progress.update(self._task, completed=progress.bytes_done, total=progress.bytes_total)
        if progress.phase != "downloading":
            self._progress.stop()
            self._task = None


def describe(progress: FetchProgress) -> str:
    """``12.0 MB of 1.1 GB (35.2 MB/s, ETA 31 s)``: what a log line says."""
    done = _size(progress.bytes_done)
    total = "unknown" if progress.bytes_total is None else _size(progress.bytes_total)
    if progress.phase != "downloading":
        return f"{progress.phase}, {done} of {total}"
    rate = "" if progress.rate_bytes_per_s is None else f"{_size(progress.rate_bytes_per_s)}/s"
    eta = "" if progress.eta_s is None else f", ETA {progress.eta_s:.0f} s"
    return f"{done} of {total} ({rate}{eta})" if rate else f"{done} of {total}"


def _size(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"
