"""``resolve(source, expect_digest)``: the seal a SOURCE names, every file checked.

Local folders (a read-only volume included) are opened in place and never written to; local
archives are extracted to a private folder. Remote seals (``s3://``, ``https://``,
``models:/``) are fetched into the cache: the manifest first (so a pinned digest is refused
before anything else is downloaded, and a seal already cached is not fetched again), then
the files, checked as they arrive, then moved into ``cache/seals/<digest>/`` in one rename.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from modelseal.errors import (
    IntegrityError,
    SealFormatError,
    SourceError,
    StorageError,
    UsageError,
)
from modelseal.seal.archive import (
    ExtractedSeal,
    find_manifest,
    is_seal_archive,
    read_leading_manifest,
)
from modelseal.seal.artifact import Seal, open_seal, read_manifest
from modelseal.seal.manifest import MANIFEST_FILE, SealManifest, parse_manifest
from modelseal.sources.cache import SealCache
from modelseal.sources.download import DownloadSettings, ObjectInfo
from modelseal.sources.fetch import FetchContext, fetch_archive, fetch_folder, probe_archive
from modelseal.sources.locations import (
    ARCHIVE_SUFFIXES,
    HttpSource,
    LocalSource,
    RegistrySource,
    S3Source,
    parse_source,
)
from modelseal.sources.progress import ProgressMeter, ProgressObserver, terminal_progress
from modelseal.sources.retry import Retrier, RetryPolicy, cancellable_sleep

log = logging.getLogger("modelseal.sources")
_PIN = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")


def resolve(
    source: str,
    expect_digest: str | None = None,
    *,
    progress: ProgressObserver | None = None,
    cache: SealCache | None = None,
    environ: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
) -> Seal:
    """The seal at ``source``, every file checked against its manifest.

    ``expect_digest`` (``sha256:HEX``) refuses, before anything is loaded or downloaded past
    the manifest, a seal whose manifest digest differs. ``progress`` receives snapshots of a
    download (default: a bar in a terminal, log lines otherwise); ``cache`` defaults to the
    one the environment names (``MODELSEAL_CACHE_DIR``, ``MODELSEAL_CACHE_MAX_BYTES``).
    Setting ``cancel`` stops a remote fetch at its next piece or retry with
    ``FetchCancelledError``, keeping the partial download to resume later.
    """
    values = os.environ if environ is None else environ
    pin = parse_pin(expect_digest)
    location = parse_source(source, values)
    if isinstance(location, LocalSource):
        return resolve_local(location.path, pin)
    fetcher = _fetcher(location, values)
    return _resolve_remote(
        fetcher,
        pin,
        cache or SealCache.from_environment(values),
        terminal_progress() if progress is None else progress,
        RetryPolicy.from_environment(values),
        DownloadSettings.from_environment(values),
        cancel,
    )


def parse_pin(expect_digest: str | None) -> str | None:
    """The hex digest of ``sha256:HEX`` (or bare HEX); None for no pin."""
    if not expect_digest:
        return None
    match = _PIN.match(expect_digest.strip())
    if match is None:
        raise UsageError(
            f"--expect-digest {expect_digest!r}: expected sha256: and 64 hex digits, as "
            "`modelseal inspect SEAL` prints the digest"
        )
    return match.group(1).lower()


def check_pin(actual: str, pin: str | None, where: str) -> None:
    if pin is None or actual == pin:
        return
    raise IntegrityError(
        f"{where}: seal digest is sha256:{actual}, but sha256:{pin} is expected "
        "(--expect-digest / MODELSEAL_EXPECT_DIGEST); refusing it before loading anything: "
        "deploy the pinned seal, or update the pin if this seal is the one you mean"
    )


def resolve_local(path: Path, pin: str | None) -> Seal:
    """A local seal folder (opened in place) or archive, checked; pinned before anything."""
    if not path.exists():
        raise SourceError(f"{path}: no seal there (no such file or folder)")
    if path.is_dir() and not (path / MANIFEST_FILE).exists():
        path = _single_archive(path)
    if pin is not None:
        check_pin(_local_manifest(path).digest, pin, str(path))
    return open_seal(path)


def _single_archive(folder: Path) -> Path:
    archives = sorted(p for p in folder.iterdir() if p.name.endswith(ARCHIVE_SUFFIXES))
    if len(archives) == 1:
        return archives[0]
    found = (
        f"holds several archives ({', '.join(p.name for p in archives)})"
        if archives
        else (f"holds no {MANIFEST_FILE} and no seal archive")
    )
    raise SourceError(f"{folder}: {found}; point at the seal folder or archive itself")


def _local_manifest(path: Path) -> SealManifest:
    if path.is_dir():
        return read_manifest(path)
    if not is_seal_archive(path):
        return open_seal(path).manifest  # raises the usual "not a seal" error
    with path.open("rb") as stream:
        manifest = read_leading_manifest(stream, str(path))
        if manifest is not None:
            return manifest
        stream.seek(0)
        return find_manifest(stream, str(path)).manifest


class Fetcher(Protocol):
    """One remote source: reads its manifest cheaply, and fetches the whole seal."""

    @property
    def description(self) -> str: ...

    @property
    def key(self) -> str: ...

    def probe(self, retrier: Retrier) -> SealManifest | None: ...

    def fetch(self, work: Path, staging: Path, context: FetchContext) -> ExtractedSeal: ...


def _resolve_remote(
    fetcher: Fetcher,
    pin: str | None,
    cache: SealCache,
    observer: ProgressObserver,
    policy: RetryPolicy,
    settings: DownloadSettings,
    cancel: threading.Event | None,
) -> Seal:
    where = fetcher.description
    retrier = (
        Retrier(policy, where, sleep=cancellable_sleep(cancel, where))
        if cancel is not None
        else Retrier(policy, where)
    )
    manifest = fetcher.probe(retrier)
    if manifest is not None:
        check_pin(manifest.digest, pin, where)
        if (cached := _cached(cache, manifest.digest, where)) is not None:
            return cached
    if not cache.writable:
        raise StorageError(
            f"{where}: the cache {cache.root} is read-only and does not hold this seal; "
            "set MODELSEAL_CACHE_DIR to a writable folder, or fill the cache beforehand "
            "(`modelseal fetch SOURCE`)"
        )
    started = time.monotonic()
    with cache.fetching(fetcher.key, where) as work:
        if manifest is not None and (cached := _cached(cache, manifest.digest, where)):
            return cached
        meter = ProgressMeter(where, observer, retries=lambda: retrier.retries, cancel=cancel)
        context = FetchContext(
            settings, retrier, meter, lambda found: check_pin(found.digest, pin, where)
        )
        with cache.staging() as staging:
            try:
                extracted = fetcher.fetch(work, staging, context)
            except (IntegrityError, SealFormatError):
                meter.finish(ok=False)
                shutil.rmtree(work, ignore_errors=True)  # a seal that fails its check: keep nothing
                raise
            except BaseException:
                meter.finish(ok=False)  # a partial download is kept, to resume next time
                raise
            entry = cache.install(extracted.root, extracted.manifest.digest, where)
        meter.finish()
        shutil.rmtree(work, ignore_errors=True)
    _log_fetched(where, extracted.manifest, meter.bytes_done, time.monotonic() - started, retrier)
    return Seal(entry, extracted.manifest, extracted.file_checks, where)


def _cached(cache: SealCache, digest: str, where: str) -> Seal | None:
    seal = cache.lookup(digest, where)
    if seal is None:
        return None
    log.info(
        "%s: seal %s found in the cache and checked again", where, digest,
        extra={"source": where, "seal_digest": digest, "cache": str(cache.root)},
    )  # fmt: skip
    return dataclasses.replace(seal, source=where)


def _log_fetched(
    where: str, manifest: SealManifest, count: int, seconds: float, retrier: Retrier
) -> None:
    # A fetcher that cannot report its progress (MLflow's artifact download) counted nothing:
    # every file the manifest lists was checked, so that is what arrived.
    count = count or sum(entry.size for entry in manifest.files.values())
    rate = count / seconds if seconds > 0 else 0.0
    log.info(
        "%s: fetched and checked %d bytes in %.1f s (%.1f MB/s, %d retries)",
        where, count, seconds, rate / 1e6, retrier.retries,
        extra={
            "source": where, "seal_digest": manifest.digest, "bytes": count,
            "seconds": round(seconds, 3), "retries": retrier.retries,
        },
    )  # fmt: skip


def _fetcher(
    location: S3Source | HttpSource | RegistrySource, values: Mapping[str, str]
) -> Fetcher:
    if isinstance(location, S3Source):
        return S3Fetcher(location, values)
    if isinstance(location, HttpSource):
        return HttpFetcher(location, values)
    from modelseal.sources.registry import RegistryFetcher, mlflow_client

    return RegistryFetcher(location, mlflow_client())


class S3Fetcher:
    """An archive object or a seal folder under a prefix."""

    def __init__(self, source: S3Source, values: Mapping[str, str]) -> None:
        from modelseal.sources.s3 import s3_client

        self.source = source
        self.client = s3_client(values, pool=DownloadSettings.from_environment(values).workers + 4)
        self._located: Any = None
        self._manifest_text = b""

    @property
    def description(self) -> str:
        return self.source.display

    @property
    def key(self) -> str:
        return _key("s3", f"{self.source.bucket}|{self.source.key}")

    def probe(self, retrier: Retrier) -> SealManifest | None:
        from modelseal.sources.s3 import S3Archive, locate

        self._located = located = locate(self.client, self.source, retrier)
        if isinstance(located, S3Archive):
            return probe_archive(located.object, located.info, retrier)
        text = retrier.call(lambda: located.object(MANIFEST_FILE).read_all(16 << 20), "reading")
        self._manifest_text = text
        return parse_manifest(text.decode("utf-8"), f"{located.description}{MANIFEST_FILE}")

    def fetch(self, work: Path, staging: Path, context: FetchContext) -> ExtractedSeal:
        from modelseal.sources.s3 import S3Archive

        located = self._located
        if isinstance(located, S3Archive):
            return fetch_archive(located.object, located.info, work, staging, context)
        manifest = parse_manifest(self._manifest_text.decode("utf-8"), self.description)
        return fetch_folder(located, self._manifest_text, manifest, work, context)


class HttpFetcher:
    """An archive on a web server."""

    def __init__(self, source: HttpSource, values: Mapping[str, str]) -> None:
        from modelseal.sources.https import HttpObject

        self.source = source
        self.remote = HttpObject.from_url(source.url, values)
        self._info: ObjectInfo | None = None

    @property
    def description(self) -> str:
        return self.source.display

    @property
    def key(self) -> str:
        return _key("https", self.source.display.split("?", 1)[0])

    def probe(self, retrier: Retrier) -> SealManifest | None:
        self._info = info = retrier.call(self.remote.stat, "looking up")
        return probe_archive(self.remote, info, retrier)

    def fetch(self, work: Path, staging: Path, context: FetchContext) -> ExtractedSeal:
        assert self._info is not None
        return fetch_archive(self.remote, self._info, work, staging, context)


def _key(kind: str, identity: str) -> str:
    return f"{kind}-{hashlib.sha256(identity.encode()).hexdigest()[:32]}"
