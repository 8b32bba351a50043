"""Downloading one remote object: parallel ranged requests into a partial file, read back in
order by a consumer (the archive extractor, or a hasher) while later ranges still arrive.

The partial file sits beside a small state file that records which chunks arrived whole and
which object (size, ETag) they came from, so a killed download resumes where it stopped. Kept
chunks are never trusted: the consumer reads and hashes every byte, and the caller starts
again from nothing when a resumed download fails its check.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from modelseal.errors import StorageError, UsageError
from modelseal.sources.progress import ProgressMeter
from modelseal.sources.retry import Retrier, TransientFetchError

log = logging.getLogger("modelseal.sources")
T = TypeVar("T")
DEFAULT_CHUNK_BYTES = 8 << 20
DEFAULT_WORKERS = 10
STATE_SUFFIX = ".state"


@dataclass(frozen=True)
class ObjectInfo:
    """What identifies one version of a remote object."""

    size: int
    identity: str
    ranged: bool = True


class RemoteObject(Protocol):
    """A remote object read by byte ranges (a backend's adapter)."""

    @property
    def description(self) -> str:
        """What the object is called in messages (no secret in it)."""
        ...

    def read_range(self, start: int, end: int, info: ObjectInfo) -> Iterator[bytes]:
        """The bytes ``[start, end)``, or all of them from 0 when ``info.ranged`` is false.

        Raises ``TransientFetchError`` for what a retry may fix (including a body cut short)
        and ``SourceError`` for what it cannot.
        """
        ...


@dataclass(frozen=True)
class DownloadSettings:
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    workers: int = DEFAULT_WORKERS

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> DownloadSettings:
        """``MODELSEAL_DOWNLOAD_CHUNK_BYTES`` and ``MODELSEAL_DOWNLOAD_WORKERS``, if set."""
        values = os.environ if environ is None else environ
        return cls(
            chunk_bytes=_positive(values, "MODELSEAL_DOWNLOAD_CHUNK_BYTES", DEFAULT_CHUNK_BYTES),
            workers=_positive(values, "MODELSEAL_DOWNLOAD_WORKERS", DEFAULT_WORKERS),
        )


@dataclass(frozen=True)
class Download:
    """Where one object is downloaded to, and how."""

    remote: RemoteObject
    info: ObjectInfo
    part: Path
    settings: DownloadSettings
    retrier: Retrier
    meter: ProgressMeter
    state: Path | None = None

    @property
    def state_path(self) -> Path:
        return self.state or self.part.with_name(self.part.name + STATE_SUFFIX)

    @property
    def resumable(self) -> bool:
        return self.part.exists() and self.state_path.exists()

    def discard(self) -> None:
        """Forget the partial file, so the next attempt starts from nothing."""
        self.part.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)


def download(job: Download, consume: Callable[[ReadableStream], T]) -> tuple[T, int]:
    """Fetch ``job``'s object into its partial file while ``consume`` reads it in order.

    Returns what ``consume`` returned and how many bytes were kept from an earlier attempt.
    """
    chunks = _chunks(job.info, job.settings.chunk_bytes)
    state = _PartState.open(job, len(chunks))
    kept = sum(chunks[index][1] - chunks[index][0] for index in state.done)
    if kept:
        log.info(
            "resuming a partial download of %s: %d of %d bytes kept (checked like the rest)",
            job.remote.description,
            kept,
            job.info.size,
            extra={"source": job.remote.description, "bytes_kept": kept},
        )
    job.meter.skip(kept)
    frontier = _Frontier(chunks, state.done)
    fd = os.open(job.part, os.O_RDWR)
    try:
        with ThreadPoolExecutor(job.settings.workers, "modelseal-fetch") as pool:
            futures = [
                pool.submit(_fetch_chunk, job, fd, index, chunks[index], frontier, state)
                for index in range(len(chunks))
                if index not in state.done
            ]
            try:
                result = consume(ReadableStream(fd, frontier))
            finally:
                frontier.stop()
                _settle(futures)
        return result, kept
    finally:
        os.close(fd)
        state.close()


class ReadableStream:
    """The partial file read in order, each read waiting until its bytes have arrived."""

    def __init__(self, fd: int, frontier: _Frontier) -> None:
        self._fd = fd
        self._frontier = frontier
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        wanted = self._frontier.total if size < 0 else self._offset + size
        end = self._frontier.wait_for(wanted)
        if end <= self._offset:
            return b""
        data = os.pread(self._fd, min(end, wanted) - self._offset, self._offset)
        self._offset += len(data)
        return data

    def drain(self) -> int:
        """Read to the end; for a consumer that only needs the file complete."""
        while self.read(1 << 20):
            pass
        return self._offset


class _Frontier:
    """How far the partial file can be read in order, shared by the workers and the reader."""

    def __init__(self, chunks: list[tuple[int, int]], done: set[int]) -> None:
        self._chunks = chunks
        self._filled = [end - start if i in done else 0 for i, (start, end) in enumerate(chunks)]
        self._condition = threading.Condition()
        self._failure: BaseException | None = None
        self._stopped = False
        self._next = 0
        self._end = 0
        self._advance()

    def is_stopped(self) -> bool:
        return self._stopped

    @property
    def total(self) -> int:
        return self._chunks[-1][1] if self._chunks else 0

    def filled(self, index: int, count: int) -> None:
        with self._condition:
            self._filled[index] = count
            self._advance()
            self._condition.notify_all()

    def fail(self, error: BaseException) -> None:
        with self._condition:
            if self._failure is None:
                self._failure = error
            self._condition.notify_all()

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify_all()

    def wait_for(self, offset: int) -> int:
        """Block until ``offset`` bytes can be read (or all can); return how many can."""
        needed = min(offset, self.total)
        with self._condition:
            while self._end < needed and self._failure is None:
                self._condition.wait()
            if self._end < needed and self._failure is not None:
                raise self._failure
            return self._end

    def _advance(self) -> None:
        while self._next < len(self._chunks):
            start, end = self._chunks[self._next]
            self._end = start + self._filled[self._next]
            if self._end < end:
                return
            self._next += 1


def _fetch_chunk(
    job: Download,
    fd: int,
    index: int,
    span: tuple[int, int],
    frontier: _Frontier,
    state: _PartState,
) -> None:
    start, end = span
    position = start
    attempt = 0
    try:
        while position < end:
            if frontier.is_stopped():
                return
            try:
                for piece in job.remote.read_range(position, end, job.info):
                    if frontier.is_stopped():
                        return
                    _write_at(fd, piece, position, job.part)
                    position += len(piece)
                    job.meter.add(len(piece))
                    frontier.filled(index, position - start)
                if position < end:
                    raise TransientFetchError(
                        f"response cut short at byte {position} of {start}-{end - 1}"
                    )
            except TransientFetchError as exc:
                attempt += 1
                job.retrier.wait(attempt, exc, f"downloading bytes {start}-{end - 1} of")
                if not job.info.ranged:
                    job.meter.add(start - position)
                    position = start
        state.record(index)
    except BaseException as exc:
        frontier.fail(exc)
        raise


def _write_at(fd: int, data: bytes, offset: int, part: Path) -> None:
    view = memoryview(data)
    try:
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written
    except OSError as exc:
        raise StorageError(f"{part}: cannot write the download ({exc}); free some space") from exc


def _settle(futures: list[Future[None]]) -> None:
    for future in futures:
        future.cancel()
    for future in futures:
        if not future.cancelled():
            future.exception()


def _chunks(info: ObjectInfo, chunk_bytes: int) -> list[tuple[int, int]]:
    if not info.ranged or info.size <= chunk_bytes:
        return [(0, info.size)]
    return [
        (start, min(start + chunk_bytes, info.size)) for start in range(0, info.size, chunk_bytes)
    ]


class _PartState:
    """The partial file and its record of whole chunks (an append-only file of JSON lines)."""

    def __init__(self, path: Path, done: set[int]) -> None:
        self.done = done
        self._lock = threading.Lock()
        self._stream = path.open("a", encoding="utf-8")

    @classmethod
    def open(cls, job: Download, count: int) -> _PartState:
        header = {
            "size": job.info.size,
            "identity": job.info.identity,
            "chunk_bytes": job.settings.chunk_bytes,
            "ranged": job.info.ranged,
        }
        done = _read_state(job.state_path, header, count) if job.part.exists() else None
        if done is None:
            job.discard()
            try:
                job.part.parent.mkdir(parents=True, exist_ok=True)
                job.state_path.parent.mkdir(parents=True, exist_ok=True)
                with job.part.open("wb") as part:
                    part.truncate(job.info.size)
                job.state_path.write_text(json.dumps(header) + "\n", encoding="utf-8")
            except OSError as exc:
                raise StorageError(f"{job.part}: cannot start the download ({exc})") from exc
            done = set()
        return cls(job.state_path, done)

    def record(self, index: int) -> None:
        with self._lock:
            self._stream.write(f"{index}\n")
            self._stream.flush()

    def close(self) -> None:
        self._stream.close()


def _read_state(path: Path, header: dict[str, object], count: int) -> set[int] | None:
    """The whole chunks recorded for this very object, or None to start again."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        if not lines or json.loads(lines[0]) != header:
            return None
    except (OSError, ValueError):
        return None
    return {int(line) for line in lines[1:] if line.isdigit() and int(line) < count}


def _positive(values: Mapping[str, str], name: str, default: int) -> int:
    raw = values.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise UsageError(f"{name}={raw!r}: expected a positive whole number")
    return int(raw)
