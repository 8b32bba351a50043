"""Writing a seal into place: exclusive per destination, atomic, and clean after any failure.

A writer claims the destination by locking a lock file beside it (``flock``, which the
kernel releases when a writer dies, so a killed writer never blocks the next one); a second
writer to the same destination fails at once, naming the first. The seal is built in a fresh
work folder beside the destination (the same file system, so publishing is one rename) and
the work folder goes whatever happens. What a killed writer left behind is named after its
destination, so the next writer holding the claim knows it is stale and removes it.
SIGTERM (``docker stop``, a CI timeout) unwinds a writer like Ctrl-C does, so it cleans up
too; only SIGKILL leaves anything behind.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from modelseal.errors import DestinationBusyError, UsageError

LOCK_SUFFIX = ".modelseal-lock"
WORK_INFIX = ".modelseal-pack-"


@contextlib.contextmanager
def claim_destination(destination: Path) -> Iterator[Path]:
    """Hold ``destination`` for this process and yield an empty work folder beside it.

    Raises ``UsageError`` when the destination exists and ``DestinationBusyError`` when
    another writer holds it. The work folder and the lock file are removed on leaving.
    """
    parent = destination.parent
    parent.mkdir(parents=True, exist_ok=True)
    lock_file = parent / f".{destination.name}{LOCK_SUFFIX}"
    with _terminate_by_unwinding(), _lock(lock_file, destination):
        _remove_stale_work(destination)
        if destination.exists() or destination.is_symlink():
            raise UsageError(f"{destination}: already exists; remove it or choose another -o")
        work = Path(tempfile.mkdtemp(prefix=f".{destination.name}{WORK_INFIX}", dir=parent))
        try:
            yield work
        finally:
            shutil.rmtree(work, ignore_errors=True)


def publish(built: Path, destination: Path) -> None:
    """Move ``built`` (a file or folder in the work folder) to ``destination`` in one rename.

    Only a writer holding the claim calls this, so nothing else of ours writes there; the
    check catches anything else that created it meanwhile.
    """
    if destination.exists() or destination.is_symlink():
        raise UsageError(f"{destination}: appeared while packing; remove it or choose another -o")
    built.rename(destination)


@contextlib.contextmanager
def _terminate_by_unwinding() -> Iterator[None]:
    """While held, SIGTERM raises ``SystemExit(143)`` (what the signal's default exit would
    report), so every ``finally`` on the way out runs. Only where SIGTERM still has its
    default action, in the main thread: a caller that handles SIGTERM itself keeps it."""
    main_thread = threading.current_thread() is threading.main_thread()
    if not main_thread or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def unwind(signum: int, _frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _lock(lock_file: Path, destination: Path) -> Iterator[None]:
    descriptor = _locked_descriptor(lock_file, destination)
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        yield
    finally:
        # Unlinked while still held, so a writer that opened it meanwhile finds it gone
        # (see _locked_descriptor) instead of locking a file nobody else will see.
        with contextlib.suppress(OSError):
            lock_file.unlink()
        os.close(descriptor)


def _locked_descriptor(lock_file: Path, destination: Path) -> int:
    import fcntl

    while True:
        descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(descriptor)
            os.close(descriptor)
            raise DestinationBusyError(
                f"{destination}: another pack (process {holder}) is writing there right now; "
                "wait for it to finish or choose another -o"
            ) from None
        except BaseException:
            os.close(descriptor)
            raise
        if _still_names(lock_file, descriptor):
            return descriptor
        os.close(descriptor)  # the previous holder removed it after we opened it: retry


def _still_names(lock_file: Path, descriptor: int) -> bool:
    try:
        current = lock_file.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino)


def _holder(descriptor: int) -> str:
    text = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
    return text if text.isdigit() else "unknown"


def _remove_stale_work(destination: Path) -> None:
    """Work folders of writers of ``destination`` that died: we hold the claim, so no live
    writer owns one."""
    pattern = f".{glob.escape(destination.name)}{WORK_INFIX}*"
    for leftover in destination.parent.glob(pattern):
        shutil.rmtree(leftover, ignore_errors=True)
