"""An opened, integrity-checked seal."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from modelseal.environment.record import EnvironmentRecord
from modelseal.errors import SealFormatError
from modelseal.seal.archive import extract_seal_archive, is_seal_archive
from modelseal.seal.digests import FileCheck, check_files, raise_on_failures
from modelseal.seal.manifest import (
    ENVIRONMENT_FILE,
    GOLDEN_FILE,
    LOCK_FILE,
    MANIFEST_FILE,
    MODEL_DIR,
    SealManifest,
    parse_manifest,
)
from modelseal.types import Signature


@dataclass(frozen=True)
class Seal:
    """A seal whose files all matched the manifest when it was opened."""

    root: Path
    manifest: SealManifest
    file_checks: tuple[FileCheck, ...]
    source: str

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def runtime(self) -> str:
        return self.manifest.runtime

    @property
    def signature(self) -> Signature:
        return self.manifest.signature

    @property
    def model_dir(self) -> Path:
        return self.root / MODEL_DIR

    @property
    def golden_path(self) -> Path:
        return self.root / GOLDEN_FILE

    def environment(self) -> EnvironmentRecord:
        return EnvironmentRecord.model_validate_json((self.root / ENVIRONMENT_FILE).read_bytes())

    def lock_lines(self) -> list[str]:
        """The pinned requirements (``name==version``), without comments."""
        text = (self.root / LOCK_FILE).read_text()
        stripped = (line.split("#", 1)[0].strip() for line in text.splitlines())
        return [line for line in stripped if line]


def open_seal(path: str | Path, *, extract_to: Path | None = None) -> Seal:
    """Open a seal folder or archive, checking every file against the manifest.

    Raises ``IntegrityError`` naming each file that changed, ``SealFormatError`` for
    something that is not a seal, ``UnsafeArchiveError`` for a hostile archive.
    """
    location = Path(path)
    if location.is_dir():
        root = location
    elif is_seal_archive(location):
        root = extract_seal_archive(
            location, extract_to or Path(tempfile.mkdtemp(prefix="modelseal-"))
        )
    elif location.exists():
        raise SealFormatError(
            f"{location}: neither a seal folder nor a tar archive of one "
            "(expected NAME.seal/ or NAME.seal.tar[.gz])"
        )
    else:
        raise SealFormatError(f"{location}: no such file or folder")
    manifest = read_manifest(root)
    checks = check_files(root, manifest.files)
    raise_on_failures(checks, location)
    return Seal(root=root, manifest=manifest, file_checks=tuple(checks), source=str(location))


def read_manifest(root: Path) -> SealManifest:
    path = root / MANIFEST_FILE
    if not path.is_file():
        raise SealFormatError(f"{root}: holds no {MANIFEST_FILE}; is this a modelseal seal?")
    return parse_manifest(path.read_text(encoding="utf-8"), str(path))
