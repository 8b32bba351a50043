"""Seal archives (uncompressed or gzip tar): safe extraction and creation.

Extraction never calls ``tarfile.extract``: every member is checked against the manifest
before anything is written, and only regular files are written, by streaming their bytes
into paths that are proven to lie under the destination.
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

from modelseal.errors import SealFormatError, UnsafeArchiveError
from modelseal.seal.digests import is_signature_path
from modelseal.seal.manifest import MANIFEST_FILE, SealManifest, parse_manifest

COPY_CHUNK = 1 << 20


def is_seal_archive(path: Path) -> bool:
    return path.is_file() and tarfile.is_tarfile(path)


def extract_seal_archive(archive: Path, dest: Path) -> Path:
    """Extract a seal archive into ``dest`` (created, must be empty) and return the seal root."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            prefix, manifest = _read_manifest_member(tar, members, archive)
            planned = _plan_extraction(members, prefix, manifest, archive)
            _write_members(tar, planned, dest)
    except tarfile.TarError as exc:
        raise SealFormatError(f"{archive}: not a readable tar archive ({exc})") from exc
    return dest


def create_seal_archive(root: Path, archive: Path) -> Path:
    """Write the seal folder ``root`` as ``archive`` (gzip when the name ends in .gz/.tgz)."""
    compressed = archive.name.endswith((".gz", ".tgz"))
    top = root.name
    with tarfile.open(archive, "w:gz" if compressed else "w") as tar:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=f"{top}/{path.relative_to(root).as_posix()}", recursive=False)
    return archive


def _read_manifest_member(
    tar: tarfile.TarFile, members: list[tarfile.TarInfo], archive: Path
) -> tuple[PurePosixPath, SealManifest]:
    candidates = [m for m in members if m.isfile() and PurePosixPath(m.name).name == MANIFEST_FILE]
    if not candidates:
        raise SealFormatError(f"{archive}: holds no {MANIFEST_FILE}; is this a modelseal seal?")
    member = min(candidates, key=lambda m: len(PurePosixPath(m.name).parts))
    stream = tar.extractfile(member)
    if stream is None:
        raise SealFormatError(f"{archive}: {member.name} cannot be read")
    manifest = parse_manifest(stream.read().decode("utf-8"), f"{archive}:{member.name}")
    return PurePosixPath(member.name).parent, manifest


def _plan_extraction(
    members: list[tarfile.TarInfo],
    prefix: PurePosixPath,
    manifest: SealManifest,
    archive: Path,
) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    allowed = set(manifest.files) | {MANIFEST_FILE}
    planned = []
    for member in members:
        relative = _relative_name(member, prefix, archive)
        if member.isdir():
            continue
        if member.issym() or member.islnk():
            raise UnsafeArchiveError(
                f"{archive}: member {member.name!r} is a link (to {member.linkname!r}); "
                "seals hold only regular files, so the archive was not made by modelseal"
            )
        if not member.isfile():
            raise UnsafeArchiveError(
                f"{archive}: member {member.name!r} is a device, FIFO or other special file; "
                "seals hold only regular files"
            )
        if relative.as_posix() not in allowed and not is_signature_path(relative.as_posix()):
            raise UnsafeArchiveError(
                f"{archive}: member {member.name!r} is not listed in the seal's manifest; "
                "refusing to extract files nobody sealed"
            )
        planned.append((member, relative))
    return planned


def _relative_name(member: tarfile.TarInfo, prefix: PurePosixPath, archive: Path) -> PurePosixPath:
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith(("/", "\\")) or ":" in name.parts[0]:
        raise UnsafeArchiveError(f"{archive}: member {member.name!r} has an absolute path")
    if ".." in name.parts:
        raise UnsafeArchiveError(f"{archive}: member {member.name!r} climbs out with '..'")
    try:
        return name.relative_to(prefix)
    except ValueError:
        raise UnsafeArchiveError(
            f"{archive}: member {member.name!r} lies outside the seal folder {prefix}/"
        ) from None


def _write_members(
    tar: tarfile.TarFile, planned: list[tuple[tarfile.TarInfo, PurePosixPath]], dest: Path
) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise SealFormatError(f"{dest}: extraction folder is not empty")
    root = dest.resolve()
    for member, relative in planned:
        target = (root / relative).resolve()
        if not target.is_relative_to(root):
            raise UnsafeArchiveError(f"member {member.name!r} would be written outside {root}")
        source = tar.extractfile(member)
        if source is None:
            raise SealFormatError(f"member {member.name!r} cannot be read")
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("xb") as sink:
            while chunk := source.read(COPY_CHUNK):
                sink.write(chunk)
