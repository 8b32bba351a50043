"""Seal archives (uncompressed or gzip tar): safe single-pass extraction, and creation.

Extraction reads the archive once, as a stream (``tarfile`` mode ``r|*``), so a download can
be extracted while it arrives. It never calls ``tarfile.extract``: only regular files are
written, into paths proven to lie under the destination, and each file is hashed while it is
written. Archives written by modelseal start with ``seal.json``, so every member's size is
checked against the manifest before a byte of it is written and the total written is bounded
by what the manifest lists (a gzip bomb is refused from its header). An archive whose
``seal.json`` comes later (made by hand with ``tar``) is read twice when it is a local file:
once for the manifest, once to extract; a stream of one raises ``ManifestNotFirstError``
before writing anything.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tarfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Protocol, cast

from modelseal.errors import (
    IntegrityError,
    ManifestNotFirstError,
    SealFormatError,
    StorageError,
    UnsafeArchiveError,
)
from modelseal.seal.digests import FileCheck, is_signature_path
from modelseal.seal.manifest import MANIFEST_FILE, FileEntry, SealManifest, parse_manifest

COPY_CHUNK = 1 << 20
STREAM_BUFFER = 1 << 20
MANIFEST_MAX_BYTES = 16 << 20
SIGNATURES_DIR = "signatures"
SIGNATURE_MAX_BYTES = 64 << 10
SIGNATURES_MAX = 64
ARCHIVE_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)
GZIP_MAGIC = b"\x1f\x8b"

ManifestObserver = Callable[[SealManifest], None]


class ByteStream(Protocol):
    """What extraction reads: a file, a pipe, or a download still in progress."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class ExtractedSeal:
    """A seal extracted from an archive, every file hashed while it was written."""

    root: Path
    manifest: SealManifest
    file_checks: tuple[FileCheck, ...]
    signatures: tuple[str, ...]


def is_seal_archive(path: Path) -> bool:
    return path.is_file() and tarfile.is_tarfile(path)


def extract_seal_archive(archive: Path, dest: Path) -> Path:
    """Extract a seal archive into ``dest`` (created, must be empty) and return the seal root.

    Every file is checked against the manifest; on any refusal ``dest`` is left as it was.
    """
    return extract_archive_file(archive, dest).root


def extract_archive_file(
    archive: Path, dest: Path, on_manifest: ManifestObserver | None = None
) -> ExtractedSeal:
    """Extract a local archive: in one pass when it starts with ``seal.json``, else in two."""
    where = str(archive)
    with archive.open("rb") as stream:
        try:
            return extract_seal_stream(stream, dest, where, on_manifest=on_manifest)
        except ManifestNotFirstError:
            stream.seek(0)
            known = find_manifest(stream, where)
            stream.seek(0)
            return extract_seal_stream(stream, dest, where, known=known, on_manifest=on_manifest)


def extract_seal_stream(
    stream: ByteStream,
    dest: Path,
    where: str,
    *,
    on_manifest: ManifestObserver | None = None,
    known: KnownManifest | None = None,
) -> ExtractedSeal:
    """Extract the archive read from ``stream`` into ``dest`` in one pass.

    ``on_manifest`` is called as soon as the manifest is read (to refuse a seal early, or to
    learn its size); ``known`` is the manifest of an archive read before (see
    ``find_manifest``). Raises ``ManifestNotFirstError`` (having written nothing) when neither
    is available before the first file member.
    """
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise SealFormatError(f"{dest}: extraction folder is not empty")
    extraction = _Extraction(dest.resolve(), where, known, on_manifest)
    try:
        with _open_stream(stream, where) as tar:
            extraction.run(tar)
        return extraction.result()
    except BaseException:
        _empty(dest, remove=created)
        raise


@dataclass(frozen=True)
class KnownManifest:
    """A seal's manifest as read in a first pass over an archive, and where it lies."""

    prefix: PurePosixPath
    text: bytes
    manifest: SealManifest


def find_manifest(stream: ByteStream, where: str) -> KnownManifest:
    """Read the archive once, writing nothing, for its shallowest ``seal.json``."""
    found: list[tuple[PurePosixPath, bytes]] = []
    with _open_stream(stream, where) as tar:
        for member in _members(tar, where):
            path = member_path(member, where)
            if member.isfile() and path.name == MANIFEST_FILE:
                found.append((path, _read_manifest_bytes(tar, member, where)))
    if not found:
        raise SealFormatError(f"{where}: holds no {MANIFEST_FILE}; is this a modelseal seal?")
    path, text = min(found, key=lambda item: len(item[0].parts))
    if sum(1 for other, _ in found if other == path) > 1:
        raise UnsafeArchiveError(f"{where}: member {path} appears twice in the archive")
    manifest = parse_manifest(text.decode("utf-8"), f"{where}:{path}")
    return KnownManifest(path.parent, text, manifest)


def read_leading_manifest(stream: ByteStream, where: str) -> SealManifest | None:
    """The manifest of an archive that starts with ``seal.json`` (reading only that far)."""
    with _open_stream(stream, where) as tar:
        for member in _members(tar, where):
            path = member_path(member, where)
            if member.isdir():
                continue
            if not member.isfile() or path.name != MANIFEST_FILE:
                return None
            text = _read_manifest_bytes(tar, member, where)
            return parse_manifest(text.decode("utf-8"), f"{where}:{path}")
    return None


def create_seal_archive(root: Path, archive: Path, *, compress: bool | None = None) -> Path:
    """Write the seal folder ``root`` as ``archive``, ``seal.json`` first.

    ``compress``: gzip or not; by default gzip when the name ends in .gz/.tgz. Members are
    named ``<folder name>/<path>`` with owner and group cleared.
    """
    gzipped = archive.name.endswith((".gz", ".tgz")) if compress is None else compress
    files = sorted(path for path in root.rglob("*") if path.is_file())
    files.sort(key=lambda path: path != root / MANIFEST_FILE)
    with tarfile.open(archive, "w:gz" if gzipped else "w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            name = f"{root.name}/{path.relative_to(root).as_posix()}"
            tar.add(path, arcname=name, recursive=False, filter=_anonymous)
    return archive


def member_path(member: tarfile.TarInfo, where: str) -> PurePosixPath:
    """A member's name as a clean relative path (``./`` dropped), refusing unsafe names."""
    name = member.name
    if "\\" in name:
        raise UnsafeArchiveError(
            f"{where}: member {name!r} contains a backslash; seal paths use '/' only"
        )
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if name.startswith("/") or (parts and ":" in parts[0]):
        raise UnsafeArchiveError(f"{where}: member {name!r} has an absolute path")
    if ".." in parts:
        raise UnsafeArchiveError(f"{where}: member {name!r} climbs out with '..'")
    return PurePosixPath(*parts)


class _Extraction:
    """The state of one pass: the manifest once known, what was written, the byte budget."""

    def __init__(
        self,
        root: Path,
        where: str,
        known: KnownManifest | None,
        on_manifest: ManifestObserver | None,
    ) -> None:
        self.root = root
        self.where = where
        self.known = known
        self.on_manifest = on_manifest
        self.manifest: SealManifest | None = None
        self.prefix = PurePosixPath()
        self.checks: dict[str, FileCheck] = {}
        self.signatures: list[str] = []
        self.budget = 0
        if known is not None:
            self._accept_manifest(known.prefix, known.manifest)

    def run(self, tar: tarfile.TarFile) -> None:
        manifest_seen = False
        for member in _members(tar, self.where):
            path = member_path(member, self.where)
            if member.isdir():
                continue
            _refuse_special(member, self.where)
            if not manifest_seen and path.name == MANIFEST_FILE and self._is_root_manifest(path):
                self._read_manifest(tar, member, path)
                manifest_seen = True
                continue
            if self.manifest is None:
                raise ManifestNotFirstError(
                    f"{self.where}: {member.name!r} comes before {MANIFEST_FILE}; "
                    "the archive cannot be checked as it streams"
                )
            self._extract_member(tar, member, self._relative(member, path))
        if not manifest_seen:
            raise SealFormatError(
                f"{self.where}: holds no {MANIFEST_FILE}; is this a modelseal seal?"
            )

    def result(self) -> ExtractedSeal:
        assert self.manifest is not None
        missing = sorted(self.manifest.files.keys() - self.checks.keys())
        if missing:
            raise IntegrityError(
                f"{self.where}: {', '.join(missing)} listed in the manifest but missing from "
                "the archive; it is incomplete (re-copy or re-push the seal)"
            )
        checks = tuple(self.checks[path] for path in sorted(self.checks))
        return ExtractedSeal(self.root, self.manifest, checks, tuple(sorted(self.signatures)))

    def _is_root_manifest(self, path: PurePosixPath) -> bool:
        return self.known is None or path.parent == self.known.prefix

    def _read_manifest(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: PurePosixPath
    ) -> None:
        text = _read_manifest_bytes(tar, member, self.where)
        if self.known is not None:
            if text != self.known.text:
                raise UnsafeArchiveError(
                    f"{self.where}: member {member.name!r} changed between two reads"
                )
        else:
            manifest = parse_manifest(text.decode("utf-8"), f"{self.where}:{member.name}")
            self._accept_manifest(path.parent, manifest)
        self._write(PurePosixPath(MANIFEST_FILE), text)

    def _accept_manifest(self, prefix: PurePosixPath, manifest: SealManifest) -> None:
        if self.on_manifest is not None:
            self.on_manifest(manifest)
        needed = sum(entry.size for entry in manifest.files.values())
        self.budget = needed + SIGNATURES_MAX * SIGNATURE_MAX_BYTES
        _require_space(self.root, needed, self.where)
        self.manifest, self.prefix = manifest, prefix

    def _relative(self, member: tarfile.TarInfo, path: PurePosixPath) -> str:
        depth = len(self.prefix.parts)
        if path.parts[:depth] != self.prefix.parts or len(path.parts) == depth:
            raise UnsafeArchiveError(
                f"{self.where}: member {member.name!r} lies outside the seal folder "
                f"{self.prefix.as_posix()}/"
            )
        return PurePosixPath(*path.parts[depth:]).as_posix()

    def _extract_member(self, tar: tarfile.TarFile, member: tarfile.TarInfo, relative: str) -> None:
        assert self.manifest is not None
        if relative in self.checks or relative in self.signatures or relative == MANIFEST_FILE:
            raise UnsafeArchiveError(
                f"{self.where}: member {member.name!r} appears twice in the archive"
            )
        entry = self.manifest.files.get(relative)
        if entry is None:
            self._extract_signature(tar, member, relative)
            return
        if member.size != entry.size:
            raise IntegrityError(
                f"{self.where}: {relative} is {member.size} bytes in the archive, manifest "
                f"says {entry.size}; the seal changed after sealing (re-copy it or re-seal)"
            )
        self._spend(member)
        actual = self._copy(tar, member, relative)
        self.checks[relative] = _check(relative, entry, actual, self.where)

    def _extract_signature(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, relative: str
    ) -> None:
        if not is_signature_path(relative):
            raise UnsafeArchiveError(
                f"{self.where}: member {member.name!r} is not listed in the seal's manifest; "
                "refusing to extract files nobody sealed"
            )
        if member.size > SIGNATURE_MAX_BYTES or len(self.signatures) >= SIGNATURES_MAX:
            raise UnsafeArchiveError(
                f"{self.where}: signature {relative} is {member.size} bytes (at most "
                f"{SIGNATURE_MAX_BYTES}, and at most {SIGNATURES_MAX} signatures); refusing it"
            )
        self._spend(member)
        self._copy(tar, member, relative)
        self.signatures.append(relative)

    def _spend(self, member: tarfile.TarInfo) -> None:
        self.budget -= member.size
        if self.budget < 0:
            raise UnsafeArchiveError(
                f"{self.where}: the archive holds more bytes than its manifest lists "
                f"(at {member.name!r}); refusing to write more"
            )

    def _copy(self, tar: tarfile.TarFile, member: tarfile.TarInfo, relative: str) -> str:
        target = self._target(member, relative)
        source = tar.extractfile(member)
        if source is None:
            raise SealFormatError(f"{self.where}: member {member.name!r} cannot be read")
        digest = hashlib.sha256()
        try:
            with target.open("xb") as sink:
                while chunk := _read_member(source, member, self.where):
                    digest.update(chunk)
                    sink.write(chunk)
        except OSError as exc:
            raise StorageError(f"{target}: cannot write the extracted file ({exc})") from exc
        return digest.hexdigest()

    def _write(self, relative: PurePosixPath, data: bytes) -> None:
        target = self.root / relative
        try:
            target.write_bytes(data)
        except OSError as exc:
            raise StorageError(f"{target}: cannot write the extracted file ({exc})") from exc

    def _target(self, member: tarfile.TarInfo, relative: str) -> Path:
        target = (self.root / relative).resolve()
        if not target.is_relative_to(self.root):
            raise UnsafeArchiveError(f"member {member.name!r} would be written outside {self.root}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"{target.parent}: cannot create the folder ({exc})") from exc
        return target


def _read_member(source: IO[bytes], member: tarfile.TarInfo, where: str) -> bytes:
    try:
        return source.read(COPY_CHUNK)
    except ARCHIVE_READ_ERRORS as exc:
        raise SealFormatError(
            f"{where}: the archive is corrupt or cut short inside {member.name!r} ({exc})"
        ) from exc


def _check(relative: str, entry: FileEntry, actual: str, where: str) -> FileCheck:
    if actual != entry.sha256:
        raise IntegrityError(
            f"{where}: {relative}: sha256 is {actual}, manifest says {entry.sha256}; the file "
            "changed after sealing (re-copy the seal from its source or re-seal the model)"
        )
    return FileCheck(relative, True, entry.sha256, actual)


@contextmanager
def _open_stream(stream: ByteStream, where: str) -> Iterator[tarfile.TarFile]:
    """A tar stream over ``stream``, gunzipped when it starts like gzip.

    gzip is undone by ``gzip.GzipFile``, which inflates only what is asked for: tarfile's own
    stream reader inflates a whole input buffer at once, which a gzip bomb turns into
    gigabytes in memory.
    """
    source = _Peekable(stream)
    plain: ByteStream = source
    if source.peek(len(GZIP_MAGIC)) == GZIP_MAGIC:
        plain = gzip.GzipFile(fileobj=cast(IO[bytes], source), mode="rb")
    try:
        tar = tarfile.open(fileobj=cast(IO[bytes], plain), mode="r|", bufsize=STREAM_BUFFER)  # noqa: SIM115
    except ARCHIVE_READ_ERRORS as exc:
        raise SealFormatError(f"{where}: not a readable tar or tar.gz archive ({exc})") from exc
    with tar:
        yield tar


class _Peekable:
    """A stream whose first bytes can be looked at before they are read."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream
        self._head = b""

    def peek(self, size: int) -> bytes:
        while len(self._head) < size:
            more = self._stream.read(size - len(self._head))
            if not more:
                break
            self._head += more
        return self._head[:size]

    def read(self, size: int = -1, /) -> bytes:
        if not self._head:
            return self._stream.read(size)
        head, self._head = (self._head, b"") if size < 0 else (self._head[:size], self._head[size:])
        if size < 0:
            return head + self._stream.read()
        return head


def _members(tar: tarfile.TarFile, where: str) -> Iterator[tarfile.TarInfo]:
    while True:
        try:
            member = tar.next()
        except ARCHIVE_READ_ERRORS as exc:
            raise SealFormatError(f"{where}: the archive is corrupt or cut short ({exc})") from exc
        if member is None:
            return
        yield member


def _refuse_special(member: tarfile.TarInfo, where: str) -> None:
    if member.issym() or member.islnk():
        raise UnsafeArchiveError(
            f"{where}: member {member.name!r} is a link (to {member.linkname!r}); "
            "seals hold only regular files, so the archive was not made by modelseal"
        )
    if not member.isfile():
        raise UnsafeArchiveError(
            f"{where}: member {member.name!r} is a device, FIFO or other special file; "
            "seals hold only regular files"
        )


def _read_manifest_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo, where: str) -> bytes:
    if member.size > MANIFEST_MAX_BYTES:
        raise SealFormatError(
            f"{where}: {member.name} is {member.size} bytes; a manifest is at most "
            f"{MANIFEST_MAX_BYTES} (is this a modelseal seal?)"
        )
    source = tar.extractfile(member)
    if source is None:
        raise SealFormatError(f"{where}: member {member.name!r} cannot be read")
    try:
        return source.read()
    except ARCHIVE_READ_ERRORS as exc:
        raise SealFormatError(
            f"{where}: the archive is corrupt or cut short inside {member.name!r} ({exc})"
        ) from exc


def _require_space(root: Path, needed: int, where: str) -> None:
    free = shutil.disk_usage(root).free
    if needed > free:
        raise StorageError(
            f"{where}: the seal needs {needed} bytes but {root} has {free} free; "
            "free some space or extract elsewhere"
        )


def _empty(dest: Path, *, remove: bool) -> None:
    """Undo an extraction: ``dest`` was empty (or absent) when it began."""
    if not dest.is_dir():
        return
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    if remove:
        dest.rmdir()


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
