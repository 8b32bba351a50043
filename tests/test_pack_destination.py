"""pack writes its destination atomically and exclusively, and leaves nothing on failure.

Concurrent and killed packs are real processes, lined up with events (a pack that holds
still inside ``save`` until released); full and read-only disks are real too.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path

import joblib
import numpy as np
import pytest

from modelseal import open_seal, pack
from modelseal.demo import DemoModel
from modelseal.errors import DestinationBusyError, StorageError
from tests.cli_process import run_modelseal
from tests.fixtures.held_pack import pack_held

SPAWN = multiprocessing.get_context("spawn")
EVENT_TIMEOUT_SECONDS = 300.0
FILE_SIZE_LIMIT_BYTES = 4096


@pytest.fixture(scope="module")
def model_files(demo_model: DemoModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``digits.joblib`` and ``golden.npy`` (16 rows) in one folder."""
    folder = tmp_path_factory.mktemp("model-files")
    joblib.dump(demo_model.estimator, folder / "digits.joblib")
    np.save(folder / "golden.npy", demo_model.golden_inputs[:16])
    return folder


def pack_command(model_files: Path, destination: Path) -> list[str]:
    return [
        "pack", str(model_files / "digits.joblib"), "--runtime", "sklearn", "--name", "digits",
        "--version", "1", "--golden", str(model_files / "golden.npy"), "-o", str(destination),
    ]  # fmt: skip


def signal_state(pid: int | None) -> str:
    """What a process does with signals (pending, blocked, ignored, caught), for a message."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return f"process {pid} is gone"
    fields = ("SigQ", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
    return f"process {pid}: " + "; ".join(
        line.replace("\t", " ") for line in status.splitlines() if line.startswith(fields)
    )


def names_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


class HeldPack:
    """A pack in another process, stopped inside ``save`` until ``release``."""

    def __init__(self, model_files: Path, destination: Path, digest_file: Path) -> None:
        self.started = SPAWN.Event()
        self.release = SPAWN.Event()
        self.process: BaseProcess = SPAWN.Process(
            target=pack_held,
            args=(
                model_files / "digits.joblib",
                model_files / "golden.npy",
                destination,
                digest_file,
                self.started,
                self.release,
            ),
        )

    def start(self) -> None:
        self.process.start()
        assert self.started.wait(EVENT_TIMEOUT_SECONDS), "the held pack never reached save"

    def finish(self) -> int | None:
        self.release.set()
        self.process.join(EVENT_TIMEOUT_SECONDS)
        return self.process.exitcode


@pytest.fixture
def held(model_files: Path, out: Path, tmp_path: Path) -> Iterator[HeldPack]:
    pack_ = HeldPack(model_files, out / "digits.seal.tar.gz", tmp_path / "digest")
    yield pack_
    if pack_.process.is_alive():
        pack_.process.kill()
        pack_.process.join(EVENT_TIMEOUT_SECONDS)


@pytest.mark.parametrize(
    ("file_name", "folder_name", "gzip"),
    [
        ("digits.seal.tar.gz", "digits.seal", True),
        ("digits.tgz", "digits", True),
        ("digits.seal.tar", "digits.seal", False),
    ],
)
def test_an_archive_is_compressed_as_its_name_says(
    model_files: Path, out: Path, file_name: str, folder_name: str, gzip: bool
) -> None:
    archive = out / file_name
    result = run_modelseal(*pack_command(model_files, archive))
    assert result.returncode == 0, result.stderr
    assert (archive.read_bytes()[:2] == b"\x1f\x8b") is gzip
    with tarfile.open(archive, "r:gz" if gzip else "r:") as tar:
        assert f"{folder_name}/seal.json" in tar.getnames()
    with open_seal(archive) as seal:
        assert seal.digest in result.stdout
    assert names_in(out) == [file_name]


@pytest.mark.parametrize("destination_name", ["digits.seal", "digits.seal.tar.gz"])
def test_a_second_pack_to_a_destination_being_written_is_refused_and_the_first_completes(
    model_files: Path, out: Path, tmp_path: Path, destination_name: str
) -> None:
    destination = out / destination_name
    digest_file = tmp_path / "digest"
    first = HeldPack(model_files, destination, digest_file)
    try:
        first.start()
        with pytest.raises(DestinationBusyError, match=f"process {first.process.pid}"):
            pack(
                model_files / "digits.joblib", runtime="sklearn", name="digits", version="1",
                golden=model_files / "golden.npy", output=destination,
            )  # fmt: skip
        second = run_modelseal(*pack_command(model_files, destination))
        assert second.returncode == 2
        assert f"another pack (process {first.process.pid}) is writing there" in second.stderr
        assert "Traceback" not in second.stderr
        assert not destination.exists()
    finally:
        exitcode = first.finish()
    assert exitcode == 0
    with open_seal(destination) as seal:
        assert seal.digest == digest_file.read_text()
    assert names_in(out) == [destination_name]


def test_a_killed_pack_leaves_what_the_next_pack_of_that_destination_removes(
    model_files: Path, out: Path, held: HeldPack
) -> None:
    held.start()
    held.process.kill()
    held.process.join(EVENT_TIMEOUT_SECONDS)
    left = names_in(out)
    assert ".digits.seal.tar.gz.modelseal-lock" in left
    assert any(name.startswith(".digits.seal.tar.gz.modelseal-pack-") for name in left)
    someone_elses = out / ".other.seal.modelseal-pack-x1y2z3"
    someone_elses.mkdir()

    result = run_modelseal(*pack_command(model_files, out / "digits.seal.tar.gz"))
    assert result.returncode == 0, result.stderr
    assert names_in(out) == [someone_elses.name, "digits.seal.tar.gz"]


def test_a_terminated_pack_cleans_up_after_itself(out: Path, held: HeldPack) -> None:
    held.start()
    held.process.terminate()  # SIGTERM, as docker stop or a CI timeout sends it
    held.process.join(EVENT_TIMEOUT_SECONDS)
    assert held.process.exitcode == 128 + signal.SIGTERM, signal_state(held.process.pid)
    assert names_in(out) == []


def test_an_existing_destination_is_refused_before_anything_is_done(
    model_files: Path, out: Path
) -> None:
    (out / "digits.seal").mkdir()
    result = run_modelseal(*pack_command(model_files, out / "digits.seal"))
    assert result.returncode == 2
    assert "digits.seal: already exists; remove it or choose another -o" in result.stderr
    assert names_in(out) == ["digits.seal"]


def test_a_file_size_limit_is_a_storage_error_that_leaves_nothing(
    model_files: Path, out: Path
) -> None:
    """RLIMIT_FSIZE with SIGXFSZ ignored: every write past the limit fails with EFBIG."""
    launcher = (
        "import os, resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({FILE_SIZE_LIMIT_BYTES},) * 2)\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'modelseal', *sys.argv[1:]])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", launcher, *pack_command(model_files, out / "digits.seal")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "packing" in result.stderr and "File too large" in result.stderr
    assert "raise the quota or file size limit" in result.stderr
    assert "Traceback" not in result.stderr
    assert names_in(out) == []


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="mounting a small tmpfs (in a private mount namespace) needs root and unshare",
)
@pytest.mark.parametrize(
    ("mount_options", "fact"),
    [("size=48k", "No space left on device"), ("ro", "Read-only file system")],
)
def test_a_full_or_read_only_file_system_is_a_storage_error_that_leaves_nothing(
    model_files: Path, tmp_path: Path, mount_options: str, fact: str
) -> None:
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    script = (
        'mount -t tmpfs -o "$1" tmpfs "$2" || exit 99\n'
        'shift 2; "$@"; status=$?\n'
        'ls -A "$MOUNT_POINT"; exit $status\n'
    )
    pack_args = pack_command(model_files, mount_point / "x.seal")
    command = [sys.executable, "-m", "modelseal", *pack_args]
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
         mount_options, str(mount_point), *command],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "MOUNT_POINT": str(mount_point)},
    )  # fmt: skip
    if result.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    assert result.returncode == 2, result.stderr
    assert f"packing {mount_point / 'x.seal'} failed: {fact}" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.strip() == ""  # what ls found on the small disk afterwards


def test_storage_errors_are_seal_errors_with_exit_code_2() -> None:
    from modelseal.cli import exit_code_for

    assert exit_code_for(StorageError("disk full")) == 2
    assert exit_code_for(DestinationBusyError("busy")) == 2
