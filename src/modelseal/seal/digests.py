"""sha256 digests of the files in a seal, and checking them against the manifest.

Every file must be listed in the manifest, except the signatures under ``signatures/``
(a signature signs the manifest digest, so the manifest cannot list it): there, and only
there, files with well-formed names (``is_signature_path``) are accepted unlisted.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from modelseal.errors import IntegrityError
from modelseal.seal.manifest import MANIFEST_FILE, FileEntry

CHUNK_BYTES = 1 << 20
SIGNATURES_DIR = "signatures"
SIGNATURE_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.(json|sig)")
"""A file name in ``signatures/``: a descriptor (.json) or a signature (.sig), no folders."""


def is_signature_path(relative: str) -> bool:
    """Whether ``relative`` (a POSIX path inside a seal) is a well-formed signature file name:
    ``signatures/NAME.json`` or ``signatures/NAME.sig``, directly in that folder."""
    parts = PurePosixPath(relative).parts
    return (
        len(parts) == 2
        and parts[0] == SIGNATURES_DIR
        and SIGNATURE_FILE_NAME.fullmatch(parts[1]) is not None
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def describe_files(root: Path) -> dict[str, FileEntry]:
    """Digest and size of every regular file under ``root`` but the manifest, by POSIX path."""
    entries = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise IntegrityError(f"{path}: links cannot be sealed; copy the file in instead")
        if not path.is_file():
            continue
        relative = path.relative_to(root).as_posix()
        if relative == MANIFEST_FILE:
            continue
        entries[relative] = FileEntry(sha256=file_sha256(path), size=path.stat().st_size)
    return entries


@dataclass(frozen=True)
class FileCheck:
    """The result of checking one file of a seal against its manifest entry."""

    path: str
    ok: bool
    expected_sha256: str
    actual_sha256: str | None
    problem: str | None = None


def check_files(root: Path, files: dict[str, FileEntry]) -> list[FileCheck]:
    """Check every manifest entry (size first, then sha256) and flag files nobody listed,
    but for signature files (regular files with well-formed names under ``signatures/``)."""
    checks = [_check_file(root, relative, entry) for relative, entry in sorted(files.items())]
    on_disk = {
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if (path.is_file() or path.is_symlink()) and path.name != MANIFEST_FILE
    }
    for extra in sorted(on_disk - files.keys() - {MANIFEST_FILE}):
        if is_signature_path(extra) and not (root / extra).is_symlink():
            continue
        checks.append(
            FileCheck(extra, False, "", None, "is not listed in the manifest (added after sealing)")
        )
    return checks


def _check_file(root: Path, relative: str, entry: FileEntry) -> FileCheck:
    path = root / relative
    if path.is_symlink() or not path.is_file():
        return FileCheck(relative, False, entry.sha256, None, "is missing from the seal")
    size = path.stat().st_size
    if size != entry.size:
        return FileCheck(
            relative,
            False,
            entry.sha256,
            None,
            f"is {size} bytes, manifest says {entry.size}",
        )
    actual = file_sha256(path)
    if actual != entry.sha256:
        return FileCheck(
            relative,
            False,
            entry.sha256,
            actual,
            f"sha256 is {actual}, manifest says {entry.sha256}",
        )
    return FileCheck(relative, True, entry.sha256, actual)


def raise_on_failures(checks: list[FileCheck], where: Path) -> None:
    failures = [check for check in checks if not check.ok]
    if not failures:
        return
    lines = "; ".join(f"{check.path}: {check.problem}" for check in failures)
    raise IntegrityError(
        f"seal {where} failed its integrity check: {lines}; "
        "the seal changed after sealing (re-copy it from the source or re-seal the model)"
    )
