"""Seal archives: a real one round-trips; hand-made malicious ones are refused whole."""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from modelseal import UnsafeArchiveError, open_seal
from modelseal.seal.archive import create_seal_archive, extract_seal_archive

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
