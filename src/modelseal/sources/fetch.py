"""Fetching a seal from remote objects: an archive (extracted as it downloads) or a folder of
objects (each hashed as it downloads), checked against the manifest before anything is kept.

Backends (S3, HTTPS) supply ``RemoteObject`` adapters; this module does the rest the same
way for all of them. A partial download that fails its check is discarded; when it had been
resumed from an earlier attempt, the download starts once more from nothing.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Protocol

from modelseal.errors import IntegrityError, ManifestNotFirstError, SealFormatError, SourceError
from modelseal.seal.archive import (
    MANIFEST_MAX_BYTES,
    SIGNATURE_MAX_BYTES,
    SIGNATURES_DIR,
    SIGNATURES_MAX,
    ExtractedSeal,
    ManifestObserver,
    extract_archive_file,
    extract_seal_stream,
    read_leading_manifest,
)
from modelseal.seal.digests import FileCheck
from modelseal.seal.manifest import MANIFEST_FILE, SealManifest
from modelseal.sources.download import (
    Download,
    DownloadSettings,
    ObjectInfo,
    ReadableStream,
    RemoteObject,
    download,
)
from modelseal.sources.progress import ProgressMeter
from modelseal.sources.retry import Retrier, TransientFetchError

log = logging.getLogger("modelseal.sources")
PROBE_SIZES = (256 << 10, 4 << 20, MANIFEST_MAX_BYTES + (1 << 20))
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class FetchContext:
    """How one fetch downloads, retries, reports progress, and vets the manifest it meets."""

    settings: DownloadSettings
    retrier: Retrier
    meter: ProgressMeter
    on_manifest: ManifestObserver


class ObjectFolder(Protocol):
    """A seal folder as remote objects: each one's size and identity by relative path."""

    description: str
    objects: Mapping[str, ObjectInfo]

    def object(self, relative: str) -> RemoteObject: ...


def probe_archive(remote: RemoteObject, info: ObjectInfo, retrier: Retrier) -> SealManifest | None:
    """The manifest at the head of an archive, read with small ranged requests; None when the
    archive does not start with one (it is then only known once downloaded)."""
    if not info.ranged:
        return None
    for size in PROBE_SIZES:
        end = min(size, info.size)
        head = retrier.call(partial(_read_exactly, remote, 0, end, info), "reading")
        try:
            return read_leading_manifest(io.BytesIO(head), remote.description)
        except SealFormatError:
            if end == info.size or size == PROBE_SIZES[-1]:
                raise
    return None


def fetch_archive(
    remote: RemoteObject, info: ObjectInfo, work: Path, staging: Path, context: FetchContext
) -> ExtractedSeal:
    """Download the archive into ``work`` while extracting it into ``staging``."""
    job = Download(
        remote, info, work / "archive.part", context.settings, context.retrier, context.meter
    )
    context.meter.start(info.size)
    resumed = job.resumable
    try:
        return _download_and_extract(job, staging / "seal", context)
    except (IntegrityError, SealFormatError) as exc:
        job.discard()
        if not resumed:
            raise
        log.warning(
            "the resumed download of %s failed its check (%s); downloading it again from the start",
            remote.description, exc, extra={"source": remote.description},
        )  # fmt: skip
    context.meter.start(info.size)
    try:
        return _download_and_extract(job, staging / "seal", context)
    except (IntegrityError, SealFormatError):
        job.discard()
        raise


def fetch_folder(
    folder: ObjectFolder,
    manifest_text: bytes,
    manifest: SealManifest,
    work: Path,
    context: FetchContext,
) -> ExtractedSeal:
    """Download each file the manifest lists (and any signatures) into ``work/seal``."""
    _check_listing(folder, manifest)
    signatures = _signatures(folder)
    root, states = work / "seal", work / "state"
    context.meter.start(sum(folder.objects[name].size for name in [*manifest.files, *signatures]))
    checks = []
    for relative, entry in sorted(manifest.files.items()):
        job = _file_job(folder, relative, root, states, context)
        actual = _download_file(job, entry.sha256)
        if actual != entry.sha256:
            job.discard()
            raise IntegrityError(
                f"{folder.description}: {relative}: sha256 is {actual}, manifest says "
                f"{entry.sha256}; the object changed after sealing (re-push the seal)"
            )
        job.state_path.unlink(missing_ok=True)
        checks.append(FileCheck(relative, True, entry.sha256, actual))
    for relative in signatures:
        job = _file_job(folder, relative, root, states, context)
        download(job, ReadableStream.drain)
        job.state_path.unlink(missing_ok=True)
    (root / MANIFEST_FILE).write_bytes(manifest_text)
    return ExtractedSeal(root, manifest, tuple(checks), tuple(signatures))


def hash_stream(stream: ReadableStream) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _download_and_extract(job: Download, dest: Path, context: FetchContext) -> ExtractedSeal:
    where = job.remote.description

    def extract(stream: ReadableStream) -> ExtractedSeal:
        return extract_seal_stream(stream, dest, where, on_manifest=context.on_manifest)

    try:
        extracted, _ = download(job, extract)
    except ManifestNotFirstError:
        log.info(
            "%s does not start with %s: downloading it whole before extracting it",
            where, MANIFEST_FILE, extra={"source": where},
        )  # fmt: skip
        download(job, ReadableStream.drain)
        extracted = extract_archive_file(job.part, dest, context.on_manifest)
    job.discard()
    return extracted


def _download_file(job: Download, expected: str) -> str:
    """The file's sha256, hashed as it downloads; downloaded again once if a kept part of an
    earlier attempt does not match."""
    actual, kept = download(job, hash_stream)
    if kept == 0 or actual == expected:
        return actual
    log.warning(
        "the resumed download of %s does not match its digest; downloading it again",
        job.remote.description, extra={"source": job.remote.description},
    )  # fmt: skip
    job.discard()
    actual, _ = download(job, hash_stream)
    return actual


def _file_job(
    folder: ObjectFolder, relative: str, root: Path, states: Path, context: FetchContext
) -> Download:
    return Download(
        folder.object(relative),
        folder.objects[relative],
        root / relative,
        context.settings,
        context.retrier,
        context.meter,
        state=states / f"{relative}.state",
    )


def _check_listing(folder: ObjectFolder, manifest: SealManifest) -> None:
    """Refuse before any download a folder that lacks a file or holds one of another size."""
    problems = []
    for relative, entry in sorted(manifest.files.items()):
        info = folder.objects.get(relative)
        if info is None:
            problems.append(f"{relative} is missing")
        elif info.size != entry.size:
            problems.append(f"{relative} is {info.size} bytes, manifest says {entry.size}")
    if problems:
        raise IntegrityError(
            f"{folder.description}: {'; '.join(problems)}; the seal there is incomplete or "
            "changed after sealing (re-push it)"
        )


def _signatures(folder: ObjectFolder) -> list[str]:
    found = sorted(
        name
        for name, info in folder.objects.items()
        if PurePosixPath(name).parent == PurePosixPath(SIGNATURES_DIR)
        and info.size <= SIGNATURE_MAX_BYTES
    )
    if len(found) > SIGNATURES_MAX:
        raise SourceError(
            f"{folder.description}: {len(found)} signatures, at most {SIGNATURES_MAX} are read"
        )
    return found


def _read_exactly(remote: RemoteObject, start: int, end: int, info: ObjectInfo) -> bytes:
    data = b"".join(remote.read_range(start, end, info))
    if len(data) != end - start:
        raise TransientFetchError(f"response cut short: {len(data)} of {end - start} bytes")
    return data
