"""Local sources: a seal folder (opened in place, never written), an archive, file://, and a
folder holding one archive; remote schemes are parsed, unknown ones refused."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from modelseal import SourceError
from modelseal.seal.archive import create_seal_archive
from modelseal.sources import resolve, resolve_source
from tests.cli_process import run_modelseal


def test_a_path_and_a_file_uri_resolve_to_the_same_seal(demo_seal_path: Path) -> None:
    assert resolve_source(str(demo_seal_path)) == demo_seal_path
    assert resolve_source(demo_seal_path.as_uri()) == demo_seal_path
    assert resolve(demo_seal_path.as_uri()).root == demo_seal_path


def test_a_folder_holding_one_archive_resolves_to_it(demo_seal_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "digits" / "1.0.0"
    folder.mkdir(parents=True)
    archive = create_seal_archive(demo_seal_path, folder / "digits-1.0.0.seal.tar")
    assert resolve(str(folder)).name == "digits"
    shutil.copy(archive, folder / "b.seal.tar")
    with pytest.raises(SourceError, match="holds several archives"):
        resolve(str(folder))


def test_the_volume_convention_reads_the_name_version_layout(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    shutil.copytree(demo_seal_path, tmp_path / "volume" / "digits" / "1.0.0")
    convention = {
        "MODEL_SOURCE": "volume",
        "MODEL_VOLUME_PATH": str(tmp_path / "volume"),
        "MODEL_NAME": "digits",
        "MODEL_VERSION": "1.0.0",
    }
    result = run_modelseal("inspect", "volume", "--json", extra_env=convention)
    assert result.returncode == 0, result.stderr
    assert str(tmp_path / "volume" / "digits" / "1.0.0") in result.stdout


def test_a_missing_path_and_an_unknown_scheme_are_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no seal there"):
        resolve_source(str(tmp_path / "absent.seal"))
    with pytest.raises(SourceError, match="unknown source scheme 'gopher'"):
        resolve_source("gopher://old/seal")


def test_verify_takes_a_file_uri(demo_seal_path: Path) -> None:
    result = run_modelseal("verify", demo_seal_path.as_uri())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("CONSISTENT")


def _read_only_mounts_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


needs_read_only_mount = pytest.mark.skipif(
    not _read_only_mounts_work(),
    reason="needs `unshare -rm` (user and mount namespaces) to mount a folder read-only",
)


def read_only(folder: Path, *command: str) -> list[str]:
    """``command`` run where ``folder`` is a read-only mount (in its own mount namespace)."""
    return [
        "unshare", "-rm", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"',
        str(folder), *command,
    ]  # fmt: skip


@needs_read_only_mount
def test_a_seal_on_a_read_only_volume_is_used_in_place(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    import sys

    volume = tmp_path / "volume"
    shutil.copytree(demo_seal_path, volume / "digits.seal")
    before = {p: p.stat().st_mtime_ns for p in volume.rglob("*")}
    result = subprocess.run(
        read_only(volume, sys.executable, "-m", "modelseal", "verify", str(volume / "digits.seal")),
        capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin", "MODELSEAL_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("CONSISTENT")
    assert {p: p.stat().st_mtime_ns for p in volume.rglob("*")} == before
    assert not (tmp_path / "cache").exists()
