"""Opening an archive never leaves an extracted copy behind once the seal is closed.

Each test points the system temp folder at a folder of its own, so what it finds there was
left by the code under test and nothing else running on the machine.
"""

from __future__ import annotations

import gc
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelseal import IntegrityError, UnsafeArchiveError, UsageError, open_seal
from modelseal.seal.archive import create_seal_archive
from tests.cli_process import run_modelseal
from tests.serving.server import start_server


@pytest.fixture
def private_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The system temp folder of this process (and of the subprocesses given TMPDIR)."""
    folder = tmp_path / "system-temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder


@pytest.fixture
def archive(demo_seal_path: Path, tmp_path: Path) -> Path:
    return create_seal_archive(demo_seal_path, tmp_path / "digits.seal.tar.gz")


def extracted_copies(temp: Path) -> list[Path]:
    return sorted(temp.glob("modelseal-*"))


def tampered(archive: Path, out: Path) -> Path:
    """The archive with one byte of golden.npz flipped (its digest no longer matches)."""
    with tarfile.open(archive) as source, tarfile.open(out, "w") as sink:
        for member in source.getmembers():
            stream = source.extractfile(member)
            data = stream.read() if stream else b""
            if member.name.endswith("golden.npz"):
                data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
            sink.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return out


def test_a_with_block_removes_the_extracted_copy_on_leaving(
    archive: Path, private_temp: Path
) -> None:
    with open_seal(archive) as seal:
        assert extracted_copies(private_temp) == [seal.root]
        assert seal.environment().numpy_version
        assert (seal.model_dir / "runtime.json").is_file()
        closed_inside = seal.closed
    assert extracted_copies(private_temp) == []
    assert (closed_inside, seal.closed) == (False, True)
    with pytest.raises(UsageError, match="was closed and its extracted copy removed"):
        seal.lock_lines()
    seal.close()  # a second close is harmless


def test_a_seal_nobody_holds_any_more_is_removed_by_its_finalizer(
    archive: Path, private_temp: Path
) -> None:
    root = open_seal(archive).root
    gc.collect()
    assert not root.exists()
    assert extracted_copies(private_temp) == []


def test_extract_to_is_owned_by_the_seal_and_removed_on_close(
    archive: Path, tmp_path: Path
) -> None:
    target = tmp_path / "here"
    with open_seal(archive, extract_to=target) as seal:
        assert seal.root == target
        assert (target / "seal.json").is_file()
    assert not target.exists()


def test_extract_to_a_folder_holding_anything_is_refused_and_left_as_it_was(
    archive: Path, tmp_path: Path
) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not an empty folder"):
        open_seal(archive, extract_to=target)
    assert (target / "notes.txt").read_text() == "mine"


def test_a_folder_seal_is_read_in_place_and_never_removed(seal_copy: Path) -> None:
    with open_seal(seal_copy) as seal:
        assert seal.root == seal_copy
        assert seal.extracted_to is None
    assert (seal_copy / "seal.json").is_file()
    assert not seal.closed
    assert seal.lock_lines()


def test_an_archive_failing_its_integrity_check_leaves_nothing(
    archive: Path, tmp_path: Path, private_temp: Path
) -> None:
    bad = tampered(archive, tmp_path / "tampered.tar")
    with pytest.raises(IntegrityError, match="golden.npz: sha256 is"):
        open_seal(bad)
    assert extracted_copies(private_temp) == []


def test_a_hostile_archive_refused_at_extraction_leaves_nothing(
    demo_seal_path: Path, tmp_path: Path, private_temp: Path
) -> None:
    hostile = create_seal_archive(demo_seal_path, tmp_path / "hostile.tar")
    with tarfile.open(hostile, "a") as tar:
        member = tarfile.TarInfo("digits-1.0.0.seal/model/backdoor.py")
        member.size = 3
        tar.addfile(member, io.BytesIO(b"x=1"))
    with pytest.raises(UnsafeArchiveError):
        open_seal(hostile)
    assert extracted_copies(private_temp) == []


@pytest.mark.parametrize("command", ["inspect", "verify"])
def test_cli_commands_on_an_archive_leave_no_extracted_copy(
    archive: Path, private_temp: Path, command: str
) -> None:
    result = run_modelseal(command, str(archive), extra_env={"TMPDIR": str(private_temp)})
    assert result.returncode == 0, result.stderr
    assert extracted_copies(private_temp) == []


def test_a_refused_verify_leaves_no_extracted_copy(
    archive: Path, tmp_path: Path, private_temp: Path
) -> None:
    bad = tampered(archive, tmp_path / "tampered.tar")
    result = run_modelseal("verify", str(bad), extra_env={"TMPDIR": str(private_temp)})
    assert result.returncode == 2
    assert "golden.npz: sha256 is" in result.stderr
    assert extracted_copies(private_temp) == []


@pytest.mark.slow
def test_a_server_of_an_archive_removes_its_copy_when_it_stops(
    archive: Path, tmp_path: Path, private_temp: Path
) -> None:
    server = start_server(
        archive, tmp_path, "--drain-seconds", "0", env={"TMPDIR": str(private_temp)}
    )
    try:
        assert len(extracted_copies(private_temp)) == 1
    finally:
        returncode = server.stop()
    assert returncode == 0, server.logs()
    assert extracted_copies(private_temp) == []


def test_a_forked_child_leaves_the_parents_copy_alone(archive: Path, tmp_path: Path) -> None:
    """Only the process that opened the seal removes its copy, not a child that exits."""
    script = textwrap.dedent(
        f"""
        import os, sys
        from modelseal import open_seal
        seal = open_seal({str(archive)!r})
        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # a normal exit: atexit hooks and finalizers run in the child
        os.waitpid(pid, 0)
        print(seal.root, seal.root.exists())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    root, exists_after_child = result.stdout.split()
    assert exists_after_child == "True"
    assert not Path(root).exists()
