"""Seal archives: a real one round-trips; hand-made malicious ones are refused whole."""

from __future__ import annotations

import io
import os
import resource
import subprocess
import sys
import tarfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from modelseal import IntegrityError, SealFormatError, UnsafeArchiveError, open_seal
from modelseal.errors import ManifestNotFirstError
from modelseal.seal.archive import (
    create_seal_archive,
    extract_archive_file,
    extract_seal_archive,
    extract_seal_stream,
)

AddMember = Callable[[tarfile.TarFile], None]


def _archive_with(seal_dir: Path, archive: Path, add_member: AddMember) -> Path:
    """A real seal archive plus one hostile member, added after the genuine ones."""
    create_seal_archive(seal_dir, archive)
    with tarfile.open(archive, "a") as tar:
        add_member(tar)
    return archive


def _file_member(name: str, data: bytes = b"owned\n") -> AddMember:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    return add


def _link_member(name: str, target: str, kind: bytes) -> AddMember:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = target
        tar.addfile(info)

    return add


def _device_member(name: str) -> AddMember:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.CHRTYPE
        info.devmajor, info.devminor = 1, 3
        tar.addfile(info)

    return add


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_a_seal_archive_round_trips(demo_seal_path: Path, tmp_path: Path) -> None:
    archive = create_seal_archive(demo_seal_path, tmp_path / "digits.seal.tar.gz")
    seal = open_seal(archive, extract_to=tmp_path / "out")
    assert seal.root == tmp_path / "out"
    assert _tree(tmp_path / "out") == _tree(demo_seal_path)
    for check in seal.file_checks:
        assert (tmp_path / "out" / check.path).read_bytes() == (
            demo_seal_path / check.path
        ).read_bytes()


@pytest.mark.parametrize(
    ("member", "refusal"),
    [
        pytest.param(_file_member("digits-1.0.0.seal/../x"), "climbs out with '..'", id="dotdot"),
        pytest.param(_file_member("../x"), "climbs out with '..'", id="dotdot-top"),
        pytest.param(
            _link_member("digits-1.0.0.seal/model/etc", "/etc", tarfile.SYMTYPE),
            "is a link",
            id="symlink-to-etc",
        ),
        pytest.param(
            _link_member("digits-1.0.0.seal/model/passwd", "/etc/passwd", tarfile.LNKTYPE),
            "is a link",
            id="hardlink",
        ),
        pytest.param(
            _file_member("digits-1.0.0.seal/model/backdoor.py"),
            "not listed in the seal's manifest",
            id="unlisted",
        ),
        pytest.param(_device_member("digits-1.0.0.seal/model/null"), "device", id="device"),
    ],
)
def test_hostile_members_are_refused_and_nothing_is_written(
    demo_seal_path: Path, tmp_path: Path, member: AddMember, refusal: str
) -> None:
    archive = _archive_with(demo_seal_path, tmp_path / "evil.tar", member)
    dest = tmp_path / "dest"
    before = _tree(tmp_path)
    with pytest.raises(UnsafeArchiveError, match=refusal):
        extract_seal_archive(archive, dest)
    assert not (tmp_path / "x").exists()
    assert _tree(tmp_path) - before <= {"dest"}
    assert not dest.exists() or not any(dest.iterdir())


def test_an_absolute_member_is_refused_and_not_written(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    target = Path("/tmp") / f"modelseal-escape-{uuid.uuid4().hex}"
    archive = _archive_with(demo_seal_path, tmp_path / "evil.tar", _file_member(str(target)))
    with pytest.raises(UnsafeArchiveError, match="absolute path"):
        extract_seal_archive(archive, tmp_path / "dest")
    assert not target.exists()


def test_a_symlink_then_a_file_through_it_cannot_escape(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()

    def add(tar: tarfile.TarFile) -> None:
        _link_member("digits-1.0.0.seal/model/out", str(outside), tarfile.SYMTYPE)(tar)
        _file_member("digits-1.0.0.seal/model/out/pwned")(tar)

    archive = _archive_with(demo_seal_path, tmp_path / "evil.tar", add)
    with pytest.raises(UnsafeArchiveError):
        open_seal(archive, extract_to=tmp_path / "dest")
    assert list(outside.iterdir()) == []


def test_an_archive_without_a_manifest_is_not_a_seal(tmp_path: Path) -> None:
    from modelseal import SealFormatError

    archive = tmp_path / "plain.tar"
    with tarfile.open(archive, "w") as tar:
        _file_member("hello.txt")(tar)
    with pytest.raises(SealFormatError, match="holds no seal.json"):
        open_seal(archive)


def test_an_archive_made_with_tar_dot_opens(demo_seal_path: Path, tmp_path: Path) -> None:
    """`tar czf s.tar.gz -C x.seal .` names members ./seal.json, with a ./ folder first."""
    archive = tmp_path / "s.tar.gz"
    subprocess.run(["tar", "czf", str(archive), "-C", str(demo_seal_path), "."], check=True)
    with tarfile.open(archive) as tar:
        assert tar.getnames()[0] in (".", "./")
    seal = open_seal(archive, extract_to=tmp_path / "out")
    assert _tree(tmp_path / "out") == _tree(demo_seal_path)
    assert all(check.ok for check in seal.file_checks)


def test_a_duplicate_member_is_refused_and_nothing_is_written(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    golden = (demo_seal_path / "golden.npz").read_bytes()
    archive = _archive_with(
        demo_seal_path, tmp_path / "dup.tar", _file_member("digits-1.0.0.seal/golden.npz", golden)
    )
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchiveError, match="'digits-1.0.0.seal/golden.npz' appears twice"):
        extract_seal_archive(archive, dest)
    assert not dest.exists() or not any(dest.iterdir())


def _bomb(seal: Path, archive: Path, claimed: int) -> Path:
    """A gzip archive whose golden.npz header claims ``claimed`` bytes of zeros."""
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for path in sorted(seal.rglob("*")):
            relative = path.relative_to(seal).as_posix()
            if path.is_file() and relative != "golden.npz":
                tar.add(path, arcname=f"bomb.seal/{relative}")
        info = tarfile.TarInfo("bomb.seal/golden.npz")
        info.size = claimed
        tar.addfile(info, io.BufferedReader(_Zeros(claimed), 1 << 20))
    return archive


class _Zeros(io.RawIOBase):
    def __init__(self, count: int) -> None:
        self.left = count

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def test_a_gzip_bomb_is_refused_from_its_header_before_a_byte_is_written(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    """A member larger than the manifest says is refused before it is written: the command
    runs with a 16 MiB file-size limit, which writing the 64 MiB member would break."""
    archive = _bomb(demo_seal_path, tmp_path / "bomb.tar.gz", 64 << 20)
    limit = 16 << 20

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-m", "modelseal", "verify", str(archive)],
        capture_output=True, text=True, preexec_fn=limit_file_size, check=False, timeout=300,
    )  # fmt: skip
    size = (demo_seal_path / "golden.npz").stat().st_size
    assert result.returncode == 2, result.stderr
    assert f"golden.npz is {64 << 20} bytes in the archive, manifest says {size}" in result.stderr


def test_a_member_whose_bytes_changed_is_refused_naming_it(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    archive = create_seal_archive(demo_seal_path, tmp_path / "digits.seal.tar")
    data = bytearray(archive.read_bytes())
    model = (demo_seal_path / "model" / "model.skops").read_bytes()
    data[data.index(model[:512]) + 300] ^= 0xFF
    archive.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    with pytest.raises(IntegrityError, match="model/model.skops: sha256 is [0-9a-f]{64}, manifest"):
        extract_seal_archive(archive, dest)
    assert not dest.exists()


def test_a_truncated_archive_names_the_member_it_was_reading(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    archive = create_seal_archive(demo_seal_path, tmp_path / "digits.seal.tar")
    data = archive.read_bytes()
    model = (demo_seal_path / "model" / "model.skops").read_bytes()
    archive.write_bytes(data[: data.index(model[:512]) + 100])
    with pytest.raises(SealFormatError, match="cut short inside 'digits-1.0.0.seal/model/model"):
        extract_seal_archive(archive, tmp_path / "dest")


def test_archives_are_written_manifest_first_and_extract_from_a_pipe(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    """One pass over a stream that cannot seek: what a download in progress looks like."""
    archive = create_seal_archive(demo_seal_path, tmp_path / "digits.seal.tgz")
    with tarfile.open(archive) as tar:
        first = next(m.name for m in tar.getmembers() if m.isfile())
    assert first == "digits-1.0.0.seal/seal.json"
    assert archive.read_bytes()[:2] == b"\x1f\x8b"
    plain = create_seal_archive(demo_seal_path, tmp_path / "plain", compress=False)
    assert plain.read_bytes()[257:262] == b"ustar"  # an uncompressed tar, though unnamed
    seen: list[str] = []
    read_fd, write_fd = os.pipe()
    writer = threading.Thread(target=_feed, args=(archive.read_bytes(), write_fd))
    writer.start()
    with os.fdopen(read_fd, "rb") as pipe:
        extracted = extract_seal_stream(
            pipe, tmp_path / "out", "pipe", on_manifest=lambda m: seen.append(m.digest)
        )
    writer.join()
    assert seen == [extracted.manifest.digest]
    assert _tree(tmp_path / "out") == _tree(demo_seal_path)
    assert {check.path for check in extracted.file_checks} == set(extracted.manifest.files)


def _feed(data: bytes, fd: int) -> None:
    with os.fdopen(fd, "wb") as pipe:
        pipe.write(data)


def test_a_stream_that_does_not_start_with_the_manifest_is_refused_unwritten(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "late.tar"
    names = sorted(p.name for p in demo_seal_path.iterdir())
    subprocess.run(["tar", "cf", str(archive), "-C", str(demo_seal_path), *names], check=True)
    with archive.open("rb") as stream, pytest.raises(ManifestNotFirstError):
        extract_seal_stream(_Unseekable(stream), tmp_path / "out", "late.tar")
    assert not (tmp_path / "out").exists()
    assert extract_seal_archive(archive, tmp_path / "two-passes") == tmp_path / "two-passes"
    assert _tree(tmp_path / "two-passes") == _tree(demo_seal_path)


class _Unseekable:
    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def read(self, size: int = -1, /) -> bytes:
        return self.stream.read(size)


def test_signatures_are_extracted_within_bounds(demo_seal_path: Path, tmp_path: Path) -> None:
    signed = _archive_with(
        demo_seal_path,
        tmp_path / "signed.tar",
        _file_member("digits-1.0.0.seal/signatures/alice.sig", b"x" * 64),
    )
    extracted = extract_archive_file(signed, tmp_path / "out")
    assert extracted.signatures == ("signatures/alice.sig",)
    assert (tmp_path / "out" / "signatures" / "alice.sig").read_bytes() == b"x" * 64
    huge = _archive_with(
        demo_seal_path,
        tmp_path / "huge.tar",
        _file_member("digits-1.0.0.seal/signatures/big.sig", b"x" * (1 << 20)),
    )
    with pytest.raises(UnsafeArchiveError, match="signature signatures/big.sig is 1048576 bytes"):
        extract_seal_archive(huge, tmp_path / "refused")
