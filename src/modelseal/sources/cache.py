"""The local cache of fetched seals, keyed by seal digest.

Layout under the cache folder (``MODELSEAL_CACHE_DIR``, by default the user cache folder):
``seals/<digest>/`` a complete, checked seal, with ``seals/<digest>.json`` its completion
marker (written last; its mtime is the last use, for LRU eviction); ``downloads/<key>/``
partial downloads of one source, resumable; ``tmp/`` folders being extracted; ``locks/``
lock files. Writers hold an exclusive lock per source while fetching and per digest while
installing; a process using a seal holds a shared lock on it, so eviction skips it. A
read-only cache is used as it is, never written to.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from modelseal.errors import SealError, StorageError, UsageError
from modelseal.seal.artifact import Seal, open_seal

log = logging.getLogger("modelseal.sources")
MARKER_SUFFIX = ".json"
# Descriptors of the shared locks that mark seals in use; held until the process exits.
_leases: dict[tuple[Path, str], int] = {}


@dataclass(frozen=True)
class CacheEntry:
    digest: str
    path: Path
    marker: Path
    size: int
    last_used: float


class SealCache:
    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.writable = _prepare(root)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SealCache:
        """``MODELSEAL_CACHE_DIR`` (else ``$XDG_CACHE_HOME/modelseal``, else
        ``~/.cache/modelseal``) and ``MODELSEAL_CACHE_MAX_BYTES``."""
        values = os.environ if environ is None else environ
        return cls(
            default_cache_dir(values), parse_max_bytes(values.get("MODELSEAL_CACHE_MAX_BYTES"))
        )

    def entry_path(self, digest: str) -> Path:
        return self.root / "seals" / digest

    def lookup(self, digest: str, source: str) -> Seal | None:
        """The cached seal ``digest``, every file checked again, or None. A cached copy that
        fails its check is removed (when the cache is writable) so it is fetched again."""
        path, marker = self.entry_path(digest), self._marker(digest)
        if not (marker.is_file() and path.is_dir()):
            return None
        self.use(digest)  # before the check, so no other process evicts it meanwhile
        try:
            seal = open_seal(path)
        except SealError as exc:
            log.warning(
                "cached copy of %s failed its check (%s); fetching it again", source, exc,
                extra={"source": source, "seal_digest": digest},
            )  # fmt: skip
            if self.writable:
                with self.installing(digest):
                    self._remove(digest)
            return None
        return seal if seal.digest == digest else None

    def use(self, digest: str) -> None:
        """Mark ``digest`` used now, and in use by this process until it exits."""
        if not self.writable:
            return
        with contextlib.suppress(OSError):
            os.utime(self._marker(digest))
        key = (self.root, digest)
        if key not in _leases:
            fd = os.open(self._lock_path(f"{digest}.use"), os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_SH)
            _leases[key] = fd

    def release(self, digest: str) -> None:
        """This process no longer uses ``digest``: eviction may take it."""
        fd = _leases.pop((self.root, digest), None)
        if fd is not None:
            os.close(fd)

    @contextlib.contextmanager
    def fetching(self, key: str, source: str) -> Iterator[Path]:
        """Hold the fetch lock of one source; yields its downloads folder (kept across runs)."""
        with self._exclusive(f"{key}.fetch", f"another process is fetching {source}; waiting"):
            work = self.root / "downloads" / key
            work.mkdir(parents=True, exist_ok=True)
            try:
                yield work
            finally:
                _remove_empty_folders(work)

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh folder on the cache's file system, removed when the block ends."""
        self._sweep_tmp()
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="staging-", dir=tmp))
        owner = folder.with_name(folder.name + ".lock")
        with owner.open("w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            try:
                yield folder
            finally:
                shutil.rmtree(folder, ignore_errors=True)
                owner.unlink(missing_ok=True)

    @contextlib.contextmanager
    def installing(self, digest: str) -> Iterator[None]:
        with self._exclusive(f"{digest}.install", None):
            yield

    def install(self, folder: Path, digest: str, source: str) -> Path:
        """Move the checked seal ``folder`` into the cache as ``digest`` (atomically), unless
        another process already did; then evict down to ``max_bytes``."""
        with self.installing(digest):
            path, marker = self.entry_path(digest), self._marker(digest)
            if marker.is_file() and path.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
            else:
                self._remove(digest)
                path.parent.mkdir(parents=True, exist_ok=True)
                folder.rename(path)
                size = sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
                _write_atomic(marker, {"digest": digest, "source": source, "bytes": size})
        self.use(digest)
        self.evict(keep=digest)
        return path

    def entries(self) -> list[CacheEntry]:
        found = []
        for marker in sorted((self.root / "seals").glob(f"*{MARKER_SUFFIX}")):
            digest = marker.name.removesuffix(MARKER_SUFFIX)
            try:
                size = int(json.loads(marker.read_text())["bytes"])
                used = marker.stat().st_mtime
            except (OSError, ValueError, KeyError, TypeError):
                continue
            found.append(CacheEntry(digest, self.entry_path(digest), marker, size, used))
        return found

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove least recently used seals until the cache fits ``max_bytes``; never ``keep``
        nor a seal that any process holds in use. Returns the digests removed."""
        if self.max_bytes is None or not self.writable:
            return []
        entries = sorted(self.entries(), key=lambda entry: entry.last_used)
        total = sum(entry.size for entry in entries)
        removed = []
        for entry in entries:
            if total <= self.max_bytes:
                break
            if entry.digest == keep or not self._evict_unused(entry.digest):
                continue
            total -= entry.size
            removed.append(entry.digest)
            log.info(
                "evicted seal %s from the cache (%d bytes; least recently used)",
                entry.digest, entry.size,
                extra={"seal_digest": entry.digest, "bytes": entry.size},
            )  # fmt: skip
        return removed

    def _evict_unused(self, digest: str) -> bool:
        if (self.root, digest) in _leases:
            return False
        fd = os.open(self._lock_path(f"{digest}.use"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            with self.installing(digest):
                self._remove(digest)
            return True
        finally:
            os.close(fd)

    def _remove(self, digest: str) -> None:
        """Drop an entry: the marker first, so it is never seen complete while half removed."""
        self._marker(digest).unlink(missing_ok=True)
        path = self.entry_path(digest)
        if path.exists():
            doomed = self.root / "tmp" / f"evicted-{digest}-{os.getpid()}-{time.monotonic_ns()}"
            doomed.parent.mkdir(parents=True, exist_ok=True)
            path.rename(doomed)
            shutil.rmtree(doomed, ignore_errors=True)

    def _sweep_tmp(self) -> None:
        """Remove staging folders whose owner died (its lock is free)."""
        for owner in (self.root / "tmp").glob("staging-*.lock"):
            with contextlib.suppress(OSError), owner.open("r+") as held:
                try:
                    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                shutil.rmtree(owner.with_name(owner.name.removesuffix(".lock")), ignore_errors=True)
                owner.unlink(missing_ok=True)
        for doomed in (self.root / "tmp").glob("evicted-*"):
            shutil.rmtree(doomed, ignore_errors=True)

    @contextlib.contextmanager
    def _exclusive(self, name: str, waiting: str | None) -> Iterator[None]:
        with self._lock_path(name).open("a") as held:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if waiting:
                    log.info(waiting)
                fcntl.flock(held, fcntl.LOCK_EX)
            yield

    def _lock_path(self, name: str) -> Path:
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        return locks / f"{name}.lock"

    def _marker(self, digest: str) -> Path:
        return self.root / "seals" / f"{digest}{MARKER_SUFFIX}"


def default_cache_dir(values: Mapping[str, str]) -> Path:
    if explicit := values.get("MODELSEAL_CACHE_DIR"):
        return Path(explicit)
    if xdg := values.get("XDG_CACHE_HOME"):
        return Path(xdg) / "modelseal"
    return Path.home() / ".cache" / "modelseal"


def parse_max_bytes(raw: str | None) -> int | None:
    """``10G``, ``500M``, ``2048`` (bytes) or nothing (no bound)."""
    if raw is None or raw == "":
        return None
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    text = raw.strip().upper().removesuffix("B").removesuffix("I")
    scale = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    if not number.isdigit():
        raise UsageError(
            f"cache size {raw!r}: expected bytes as a whole number, optionally with K, M, G or T"
        )
    return int(number) * scale


def _prepare(root: Path) -> bool:
    """Create the cache folder if it can be; whether it can be written to."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(root, os.W_OK)


def _write_atomic(path: Path, content: dict[str, object]) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text(json.dumps(content) + "\n")
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise StorageError(f"{path}: cannot write the cache marker ({exc})") from exc


def _remove_empty_folders(folder: Path) -> None:
    """Remove ``folder`` and the folders under it that hold no file (a partial download)."""
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir():
            with contextlib.suppress(OSError):
                path.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()
