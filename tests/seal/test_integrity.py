"""Opening a seal checks every file and the manifest digest; each failure names the culprit."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from modelseal import IntegrityError, SealFormatError, open_seal
from modelseal.seal.manifest import manifest_digest


def test_an_untouched_seal_opens_with_every_file_checked(seal_copy: Path) -> None:
    seal = open_seal(seal_copy)
    stated = json.loads((seal_copy / "seal.json").read_text())["files"]
    on_disk = sorted(
        p.relative_to(seal_copy).as_posix()
        for p in seal_copy.rglob("*")
        if p.is_file() and p.name != "seal.json"
    )
    assert sorted(check.path for check in seal.file_checks) == on_disk == sorted(stated)
    for check in seal.file_checks:
        on_disk_sha256 = hashlib.sha256((seal_copy / check.path).read_bytes()).hexdigest()
        assert check.expected_sha256 == stated[check.path]["sha256"]
        assert check.actual_sha256 == on_disk_sha256 == stated[check.path]["sha256"]


def test_one_changed_byte_under_model_names_the_file(seal_copy: Path) -> None:
    model_file = next((seal_copy / "model").glob("model.*"))
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    model_file.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=rf"model/{model_file.name}: sha256 is [0-9a-f]{{64}}"):
        open_seal(seal_copy)


def test_a_truncated_file_is_reported_by_size(seal_copy: Path) -> None:
    golden = seal_copy / "golden.npz"
    golden.write_bytes(golden.read_bytes()[:-10])
    with pytest.raises(IntegrityError, match=r"golden.npz: is \d+ bytes, manifest says \d+"):
        open_seal(seal_copy)


def test_a_missing_file_and_an_added_file_are_both_named(seal_copy: Path) -> None:
    (seal_copy / "requirements.lock").unlink()
    (seal_copy / "model" / "extra.bin").write_bytes(b"x")
    with pytest.raises(IntegrityError) as caught:
        open_seal(seal_copy)
    message = str(caught.value)
    assert "requirements.lock: is missing" in message
    assert "model/extra.bin: is not listed in the manifest" in message


def test_a_hand_edited_manifest_fails_its_digest(seal_copy: Path) -> None:
    manifest_file = seal_copy / "seal.json"
    body = json.loads(manifest_file.read_text())
    body["version"] = "9.9.9"
    manifest_file.write_text(json.dumps(body))
    with pytest.raises(IntegrityError, match="manifest digest is .* seal.json says"):
        open_seal(seal_copy)


def test_manifest_digest_is_the_canonical_json_of_the_other_fields(seal_copy: Path) -> None:
    body = json.loads((seal_copy / "seal.json").read_text())
    rest = {key: value for key, value in body.items() if key != "digest"}
    canonical = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert body["digest"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert manifest_digest(body) == body["digest"]


def test_not_a_seal_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(SealFormatError, match="no such file"):
        open_seal(tmp_path / "absent.seal")
    (tmp_path / "empty.seal").mkdir()
    with pytest.raises(SealFormatError, match="holds no seal.json"):
        open_seal(tmp_path / "empty.seal")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SealFormatError, match="neither a seal folder nor a tar archive"):
        open_seal(tmp_path / "notes.txt")
