"""An opened, integrity-checked seal, and the lifetime of what opening extracted.

Opening a folder seal reads it in place. Opening an archive extracts it into a folder the
``Seal`` owns: ``close()`` (or leaving a ``with open_seal(...) as seal:`` block) removes it,
and so does a finalizer when the ``Seal`` is garbage-collected or the process exits
normally, so no caller leaks an extracted copy. A failed open removes it at once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from modelseal.environment.lock import lock_lines
from modelseal.environment.record import EnvironmentRecord
from modelseal.errors import SealFormatError, UsageError
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

if TYPE_CHECKING:
    from modelseal.seal.trust import Trust

EXTRACTION_PREFIX = "modelseal-"


@dataclass(frozen=True)
class Seal:
    """A seal whose files all matched the manifest when it was opened.

    ``extracted_to``: the folder opening extracted an archive into (removed by ``close``),
    or None for a seal read in place from its folder.
    """

    root: Path
    manifest: SealManifest
    file_checks: tuple[FileCheck, ...]
    source: str
    extracted_to: Path | None = None
    _remove_extracted: Callable[[], object] | None = field(
        init=False, default=None, repr=False, compare=False
    )
    _trust: Trust | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.extracted_to is not None:
            remover = weakref.finalize(self, _remove_folder, self.extracted_to, os.getpid())
            object.__setattr__(self, "_remove_extracted", remover)

    def close(self) -> None:
        """Remove what opening extracted (nothing for a folder seal); safe to call twice."""
        if self._remove_extracted is not None:
            self._remove_extracted()

    @property
    def closed(self) -> bool:
        """True once ``close`` removed the extracted copy (never for a folder seal)."""
        return self.extracted_to is not None and not self.extracted_to.exists()

    def __enter__(self) -> Seal:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def trust(self) -> Trust | None:
        """What vouched for this seal when it was admitted (``modelseal.seal.trust``), or
        None before: the load step then treats it as vouched for by nobody."""
        return self._trust

    def record_trust(self, trust: Trust) -> None:
        object.__setattr__(self, "_trust", trust)

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
        return self._file(MODEL_DIR)

    @property
    def golden_path(self) -> Path:
        return self._file(GOLDEN_FILE)

    def environment(self) -> EnvironmentRecord:
        return EnvironmentRecord.model_validate_json(self._file(ENVIRONMENT_FILE).read_bytes())

    def lock_lines(self) -> list[str]:
        """The pinned requirements (``name==version``), without comments."""
        return lock_lines(self._file(LOCK_FILE).read_text(encoding="utf-8"))

    def _file(self, relative: str) -> Path:
        if self.closed:
            raise UsageError(
                f"seal {self.source} was closed and its extracted copy removed; "
                "open it again (open_seal) to read its files"
            )
        return self.root / relative


def open_seal(
    path: str | os.PathLike[str], *, extract_to: str | os.PathLike[str] | None = None
) -> Seal:
    """Open a seal folder or archive, checking every file against the manifest.

    An archive is extracted into ``extract_to`` (a new or empty folder) or else a fresh
    temporary folder; either way the ``Seal`` owns that folder and ``close()`` removes it::

        with open_seal("digits.seal.tar.gz") as seal:
            ...  # seal.model_dir, seal.golden_path exist until the block ends

    Raises ``IntegrityError`` naming each file that changed, ``SealFormatError`` for
    something that is not a seal, ``UnsafeArchiveError`` for a hostile archive.
    """
    location = Path(path)
    if location.is_dir():
        return _checked(location, location, extracted_to=None)
    if is_seal_archive(location):
        folder = _extraction_folder(extract_to)
        try:
            root = extract_seal_archive(location, folder)
            return _checked(root, location, extracted_to=folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    if location.exists():
        raise SealFormatError(
            f"{location}: neither a seal folder nor a tar archive of one "
            "(expected NAME.seal/ or NAME.seal.tar[.gz])"
        )
    raise SealFormatError(f"{location}: no such file or folder")


def read_manifest(root: Path) -> SealManifest:
    path = root / MANIFEST_FILE
    if not path.is_file():
        raise SealFormatError(f"{root}: holds no {MANIFEST_FILE}; is this a modelseal seal?")
    return parse_manifest(path.read_text(encoding="utf-8"), str(path))


def _checked(root: Path, location: Path, extracted_to: Path | None) -> Seal:
    manifest = read_manifest(root)
    checks = check_files(root, manifest.files)
    raise_on_failures(checks, location)
    return Seal(
        root=root,
        manifest=manifest,
        file_checks=tuple(checks),
        source=str(location),
        extracted_to=extracted_to,
    )


def _extraction_folder(extract_to: str | os.PathLike[str] | None) -> Path:
    """A new or empty folder to extract into; never one holding anything (it gets removed)."""
    if extract_to is None:
        return Path(tempfile.mkdtemp(prefix=EXTRACTION_PREFIX))
    folder = Path(extract_to)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(
            f"{folder}: cannot extract a seal there, it is not an empty folder (the folder "
            "is removed when the seal is closed); name a new or empty folder"
        )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _remove_folder(folder: Path, opener_pid: int) -> None:
    # A forked child inherits the finalizer: only the process that opened the seal removes it.
    if os.getpid() == opener_pid:
        shutil.rmtree(folder, ignore_errors=True)
