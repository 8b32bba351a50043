"""Signatures: key pairs, signing folders and archives, checking, and what opening accepts.

Expected values come from outside the code under test where it matters: fingerprints and
signature checks from the real ``openssl`` binary, messages from the documented format.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from modelseal import IntegrityError, UnsafeArchiveError, UsageError, open_seal
from modelseal.seal.archive import create_seal_archive
from modelseal.seal.keys import KeyPair, generate_key_pair
from modelseal.seal.signatures import (
    FoundSignature,
    load_trusted_keys,
    read_signatures,
    sign_seal,
)
from modelseal.seal.trust import TrustPolicy
from tests.cli_process import run_modelseal

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(
    OPENSSL is None, reason="the openssl binary is not installed (.ci/run installs it)"
)


def digest_of(seal_dir: Path) -> str:
    digest: str = json.loads((seal_dir / "seal.json").read_text())["digest"]
    return digest


def documented_message(digest: str) -> bytes:
    """The signed bytes as docs/signatures.md states them, written out by hand here."""
    return b"modelseal-seal-v1 sha256:" + digest.encode() + b"\n"


def openssl(*args: str) -> subprocess.CompletedProcess[bytes]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *args], capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def ecdsa_key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate_key_pair(tmp_path_factory.mktemp("keys") / "ci")


@pytest.fixture(scope="module")
def ed25519_key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate_key_pair(tmp_path_factory.mktemp("keys") / "trainer", "ed25519")


def only(found: list[FoundSignature]) -> FoundSignature:
    assert len(found) == 1, found
    return found[0]


# --- keys -----------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_reads_and_a_public_key(
    tmp_path: Path,
) -> None:
    result = run_modelseal("keygen", "-o", str(tmp_path / "signer"))
    assert result.returncode == 0, result.stderr
    private, public = tmp_path / "signer.pem", tmp_path / "signer.pub.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert "ecdsa-p256" in result.stdout

    again = run_modelseal("keygen", "-o", str(tmp_path / "signer.pem"))
    assert again.returncode == 2
    assert "signer.pem: already exists" in again.stderr


@needs_openssl
@pytest.mark.parametrize("key_type", ["ecdsa-p256", "ed25519"])
def test_the_fingerprint_is_the_sha256_of_the_der_public_key_openssl_writes(
    key_type: str, tmp_path: Path
) -> None:
    pair = generate_key_pair(tmp_path / "k", key_type)  # type: ignore[arg-type]
    der = openssl("pkey", "-pubin", "-in", str(pair.public_key), "-outform", "DER")
    assert der.returncode == 0, der.stderr
    assert pair.fingerprint == f"sha256:{hashlib.sha256(der.stdout).hexdigest()}"
    text = openssl("pkey", "-in", str(pair.private_key), "-noout", "-text").stdout.decode()
    assert ("prime256v1" in text) == (key_type == "ecdsa-p256")
    assert ("ED25519" in text) == (key_type == "ed25519")


def test_trusted_keys_come_from_files_and_folders_as_a_configmap_mounts_them(
    ecdsa_key: KeyPair, ed25519_key: KeyPair, tmp_path: Path
) -> None:
    # A ConfigMap volume: each key a link into a hidden ..data folder.
    mount = tmp_path / "trusted-keys"
    data = mount / "..2026_12_01_00_00_00.000"
    data.mkdir(parents=True)
    shutil.copy(ecdsa_key.public_key, data / "ci.pem")
    (mount / "..data").symlink_to(data.name)
    (mount / "ci.pem").symlink_to("..data/ci.pem")
    keys = load_trusted_keys([mount, ed25519_key.public_key])
    assert [(key.fingerprint, key.algorithm) for key in keys] == [
        (ecdsa_key.fingerprint, "ecdsa-p256-sha256"),
        (ed25519_key.fingerprint, "ed25519"),
    ]
    from_env = TrustPolicy.from_options(
        environ={"MODELSEAL_TRUSTED_KEYS": f"{mount}{os.pathsep}{ed25519_key.public_key}"}
    )
    assert from_env.trusted_keys == keys


def test_a_private_key_or_anything_else_is_refused_as_a_trusted_key(
    ecdsa_key: KeyPair, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="is a private key; a trusted key is the public half"):
        load_trusted_keys([ecdsa_key.private_key])
    (tmp_path / "notes.pem").write_text("hello\n")
    with pytest.raises(UsageError, match="notes.pem: not a PEM public key"):
        load_trusted_keys([tmp_path / "notes.pem"])
    with pytest.raises(UsageError, match="absent.pem: no such key file"):
        load_trusted_keys([tmp_path / "absent.pem"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="holds no .pem files"):
        load_trusted_keys([tmp_path / "empty"])


@needs_openssl
def test_a_p384_key_made_by_openssl_is_refused_naming_what_signs(tmp_path: Path) -> None:
    key = tmp_path / "p384.pem"
    made = openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384",
                   "-out", str(key))  # fmt: skip
    assert made.returncode == 0, made.stderr
    with pytest.raises(UsageError, match="secp384r1; seals are signed with ECDSA P-256"):
        sign_seal(tmp_path, key)


# --- signing and checking -------------------------------------------------------------------


def test_a_signed_folder_carries_one_pair_per_signer(
    seal_copy: Path, ecdsa_key: KeyPair, ed25519_key: KeyPair
) -> None:
    digest = digest_of(seal_copy)
    first = sign_seal(seal_copy, ecdsa_key.private_key)
    sign_seal(seal_copy, ecdsa_key.private_key)  # again: replaces its own pair
    sign_seal(seal_copy, ed25519_key.private_key)
    stems = {ecdsa_key.fingerprint[7:23], ed25519_key.fingerprint[7:23]}
    assert sorted(p.name for p in (seal_copy / "signatures").iterdir()) == sorted(
        f"key-{stem}{suffix}" for stem in stems for suffix in (".json", ".sig")
    )
    assert first.digest == digest
    descriptor = json.loads((seal_copy / first.files[1]).read_text())
    assert descriptor["message"].encode() == documented_message(digest)
    assert descriptor["kind"] == "key" and descriptor["format"] == 1
    assert descriptor["key_fingerprint"] == ecdsa_key.fingerprint
    assert descriptor["public_key"] == ecdsa_key.public_key.read_text()

    found = read_signatures(seal_copy, digest)
    assert {(s.fingerprint, s.valid, s.problem) for s in found} == {
        (ecdsa_key.fingerprint, True, None),
        (ed25519_key.fingerprint, True, None),
    }
    # Signatures lie outside the digest: the seal still opens, with the same digest.
    assert open_seal(seal_copy).digest == digest


@needs_openssl
def test_openssl_verifies_an_ecdsa_signature_modelseal_wrote(
    seal_copy: Path, ecdsa_key: KeyPair, tmp_path: Path
) -> None:
    signed = sign_seal(seal_copy, ecdsa_key.private_key)
    message = tmp_path / "message.txt"
    message.write_bytes(documented_message(digest_of(seal_copy)))
    result = openssl(
        "dgst", "-sha256", "-verify", str(ecdsa_key.public_key),
        "-signature", str(seal_copy / signed.files[0]), str(message),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == "Verified OK"

    message.write_bytes(documented_message("0" * 64))
    forged = openssl(
        "dgst", "-sha256", "-verify", str(ecdsa_key.public_key),
        "-signature", str(seal_copy / signed.files[0]), str(message),
    )  # fmt: skip
    assert forged.returncode == 1
    assert "Verification failure" in forged.stdout.decode() + forged.stderr.decode()


@needs_openssl
def test_openssl_verifies_an_ed25519_signature_modelseal_wrote(
    seal_copy: Path, ed25519_key: KeyPair, tmp_path: Path
) -> None:
    signed = sign_seal(seal_copy, ed25519_key.private_key)
    message = tmp_path / "message.txt"
    message.write_bytes(documented_message(digest_of(seal_copy)))
    result = openssl(
        "pkeyutl", "-verify", "-pubin", "-inkey", str(ed25519_key.public_key), "-rawin",
        "-in", str(message), "-sigfile", str(seal_copy / signed.files[0]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Signature Verified Successfully" in result.stdout.decode()


@needs_openssl
def test_a_key_made_by_openssl_signs_a_seal(seal_copy: Path, tmp_path: Path) -> None:
    key = tmp_path / "sec1.pem"
    made = openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    assert made.returncode == 0, made.stderr
    assert key.read_text().startswith("-----BEGIN EC PRIVATE KEY-----")
    sign_seal(seal_copy, key)
    assert only(read_signatures(seal_copy, digest_of(seal_copy))).valid


@pytest.mark.parametrize("name", ["digits.seal.tar.gz", "digits.seal.tar"])
def test_signing_an_archive_rewrites_it_with_the_signature_and_nothing_else_changed(
    name: str, demo_seal_path: Path, ecdsa_key: KeyPair, ed25519_key: KeyPair, tmp_path: Path
) -> None:
    archive = create_seal_archive(demo_seal_path, tmp_path / name)
    before = _members(archive)
    sign_seal(archive, ecdsa_key.private_key)
    sign_seal(archive, ed25519_key.private_key)
    sign_seal(archive, ecdsa_key.private_key)
    after = _members(archive)
    assert name.endswith(".gz") == (archive.read_bytes()[:2] == b"\x1f\x8b")
    added = {member for member in after if member not in before}
    assert {member for member in before if member not in after} == set()
    assert all(after[member] == content for member, content in before.items())
    assert sorted(added) == sorted(
        f"digits-1.0.0.seal/signatures/key-{fingerprint[7:23]}{suffix}"
        for fingerprint in (ecdsa_key.fingerprint, ed25519_key.fingerprint)
        for suffix in (".json", ".sig")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [name], "no temporary file left"
    with open_seal(archive) as seal:
        found = read_signatures(seal.root, seal.digest)
    assert sorted(s.fingerprint or "" for s in found if s.valid) == sorted(
        [ecdsa_key.fingerprint, ed25519_key.fingerprint]
    )


def test_a_seal_that_fails_its_check_is_not_signed(seal_copy: Path, ecdsa_key: KeyPair) -> None:
    (seal_copy / "golden.npz").write_bytes(b"changed")
    with pytest.raises(IntegrityError, match="golden.npz"):
        sign_seal(seal_copy, ecdsa_key.private_key)
    assert not (seal_copy / "signatures").exists()


def test_signing_with_a_public_key_says_to_use_the_private_one(
    seal_copy: Path, ecdsa_key: KeyPair
) -> None:
    result = run_modelseal("sign", str(seal_copy), "--key", str(ecdsa_key.public_key))
    assert result.returncode == 2
    assert "not a PEM private key" in result.stderr
    assert "sign with the private key" in result.stderr


def test_an_encrypted_key_is_read_with_the_password_from_the_environment(
    seal_copy: Path, ecdsa_key: KeyPair, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(ecdsa_key.private_key.read_bytes(), None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    refused = run_modelseal("sign", str(seal_copy), "--key", str(encrypted))
    assert refused.returncode == 2
    assert "encrypted; put its password in MODELSEAL_KEY_PASSWORD" in refused.stderr
    signed = run_modelseal(
        "sign", str(seal_copy), "--key", str(encrypted), "--json",
        extra_env={"MODELSEAL_KEY_PASSWORD": "s3cret"},
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    assert json.loads(signed.stdout)["descriptor"]["key_fingerprint"] == ecdsa_key.fingerprint
    assert "s3cret" not in signed.stdout + signed.stderr


def test_each_broken_signature_says_why_and_none_breaks_the_others(
    seal_copy: Path, ecdsa_key: KeyPair, ed25519_key: KeyPair, demo_seal_path: Path
) -> None:
    digest = digest_of(seal_copy)
    signed = sign_seal(seal_copy, ecdsa_key.private_key)
    folder = seal_copy / "signatures"
    # Flipped signature bytes.
    signature = bytearray((seal_copy / signed.files[0]).read_bytes())
    signature[-1] ^= 0x01
    (seal_copy / signed.files[0]).write_bytes(bytes(signature))
    # A descriptor naming another key than the one it carries.
    other = sign_seal(seal_copy, ed25519_key.private_key)
    body = json.loads((seal_copy / other.files[1]).read_text())
    body["key_fingerprint"] = ecdsa_key.fingerprint
    (seal_copy / other.files[1]).write_text(json.dumps(body))
    # A signature copied from another seal (it signs another digest).
    elsewhere = seal_copy.parent / "elsewhere.seal"
    shutil.copytree(demo_seal_path, elsewhere)
    body = json.loads((elsewhere / "seal.json").read_text())
    body["version"] = "2.0.0"
    body["digest"] = hashlib.sha256(
        json.dumps({k: v for k, v in body.items() if k != "digest"}, sort_keys=True,
                   separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()  # fmt: skip
    (elsewhere / "seal.json").write_text(json.dumps(body))
    copied = sign_seal(elsewhere, ed25519_key.private_key)
    for path in copied.files:
        shutil.copy(elsewhere / path, folder / f"copied{Path(path).suffix}")
    body = json.loads((folder / "copied.json").read_text())
    body["signature_file"] = "copied.sig"
    (folder / "copied.json").write_text(json.dumps(body))
    # Room for keyless signatures later: a kind this version does not check.
    (folder / "keyless.json").write_text(json.dumps({"format": 1, "kind": "sigstore-bundle"}))
    # A signature nobody describes.
    (folder / "orphan.sig").write_bytes(b"\x00" * 64)

    found = {s.file: s for s in read_signatures(seal_copy, digest)}
    assert not any(s.valid for s in found.values())
    assert "does not match the seal's digest" in (found[signed.files[1]].problem or "")
    assert f"it names key {ecdsa_key.fingerprint}, its public key is {ed25519_key.fingerprint}" == (
        found[other.files[1]].problem
    )
    assert f"not this seal's 'modelseal-seal-v1 sha256:{digest}'" in (
        found["signatures/copied.json"].problem or ""
    )
    assert "kind 'sigstore-bundle' is not one this modelseal checks" in (
        found["signatures/keyless.json"].problem or ""
    )
    assert "without a descriptor" in (found["signatures/orphan.sig"].problem or "")
    assert open_seal(seal_copy).digest == digest


# --- what opening a seal accepts under signatures/ ---------------------------------------


@pytest.mark.parametrize(
    "relative",
    ["signatures/notes.txt", "signatures/deep/key.sig", "signatures/.hidden.sig", "model/x.sig"],
)
def test_only_well_formed_signature_names_are_accepted_unlisted(
    relative: str, seal_copy: Path
) -> None:
    (seal_copy / "signatures").mkdir()
    (seal_copy / "signatures" / "fine.sig").write_bytes(b"x")
    path = seal_copy / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    with pytest.raises(IntegrityError) as caught:
        open_seal(seal_copy)
    assert f"{relative}: is not listed in the manifest" in str(caught.value)
    assert "fine.sig" not in str(caught.value)


def test_a_link_under_signatures_is_refused(seal_copy: Path) -> None:
    (seal_copy / "signatures").mkdir()
    (seal_copy / "signatures" / "key.sig").symlink_to(seal_copy / "golden.npz")
    with pytest.raises(IntegrityError, match="signatures/key.sig: is not listed"):
        open_seal(seal_copy)


def test_an_archive_with_signatures_extracts_them_and_refuses_other_unlisted_members(
    seal_copy: Path, ecdsa_key: KeyPair, tmp_path: Path
) -> None:
    sign_seal(seal_copy, ecdsa_key.private_key)
    archive = create_seal_archive(seal_copy, tmp_path / "signed.seal.tar")
    with open_seal(archive) as seal:
        assert only(read_signatures(seal.root, seal.digest)).valid
    with tarfile.open(archive, "a") as tar:
        info = tarfile.TarInfo(f"{seal_copy.name}/signatures/run.py")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"x=1"))
    with pytest.raises(UnsafeArchiveError, match="signatures/run.py' is not listed"):
        open_seal(archive)


def test_checking_signatures_without_cryptography_says_what_to_install(
    seal_copy: Path, ecdsa_key: KeyPair
) -> None:
    """An unsigned seal needs no cryptography; trusted keys do, and say how to get it."""
    sign_seal(seal_copy, ecdsa_key.private_key)
    blocked = (
        "import sys; sys.modules['cryptography'] = None; "
        "from modelseal.cli import main; sys.argv[0] = 'modelseal'; main()"
    )

    def modelseal_without_cryptography(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", blocked, *args],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    inspected = modelseal_without_cryptography("inspect", "--json", str(seal_copy))
    assert inspected.returncode == 0, inspected.stderr
    signature = only([FoundSignature(**s) for s in json.loads(inspected.stdout)["signatures"]])
    assert not signature.valid
    assert "the cryptography package is missing (pip install 'modelseal[sign]')" in (
        signature.problem or ""
    )
    refused = modelseal_without_cryptography(
        "inspect", str(seal_copy), "--trusted-key", str(ecdsa_key.public_key)
    )
    assert refused.returncode == 2
    assert "needs the cryptography package, which is not installed here" in refused.stderr


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:*") as tar:
        return {
            member.name: (tar.extractfile(member) or io.BytesIO()).read()
            for member in tar.getmembers()
            if member.isfile()
        }
