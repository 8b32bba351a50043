"""``modelseal keygen``: a new signing key pair, as PEM files.

``KEY.pem`` holds the private key (PKCS#8, unencrypted, mode 0600: keep it where only the
signer can read it, a CI secret for example); ``KEY.pub.pem`` the public key
(SubjectPublicKeyInfo), which goes to whoever serves or verifies seals (``--trusted-key``).
ECDSA P-256 is the default: ``openssl dgst -sha256 -verify`` checks its signatures, and
cloud KMSs and HSMs sign with it. Ed25519 is the other choice.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelseal.errors import StorageError, UsageError
from modelseal.seal.signatures import key_fingerprint, require_cryptography

KeyType = Literal["ecdsa-p256", "ed25519"]
DEFAULT_KEY_TYPE: KeyType = "ecdsa-p256"
PRIVATE_SUFFIX = ".pem"
PUBLIC_SUFFIX = ".pub.pem"


@dataclass(frozen=True)
class KeyPair:
    """The files ``generate_key_pair`` wrote."""

    private_key: Path
    public_key: Path
    key_type: KeyType
    fingerprint: str


def generate_key_pair(output: Path, key_type: KeyType = DEFAULT_KEY_TYPE) -> KeyPair:
    """Write a new key pair to ``OUTPUT.pem`` (0600) and ``OUTPUT.pub.pem``.

    ``output`` may end in ``.pem`` (it is dropped). Existing files are never overwritten.
    """
    crypto = require_cryptography()
    base = output.with_name(output.name.removesuffix(PRIVATE_SUFFIX))
    private_path = base.with_name(base.name + PRIVATE_SUFFIX)
    public_path = base.with_name(base.name + PUBLIC_SUFFIX)
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise UsageError(f"{path}: already exists; remove it or choose another -o")
    if key_type == "ed25519":
        private_key = crypto.ed25519.Ed25519PrivateKey.generate()
    else:
        private_key = crypto.ec.generate_private_key(crypto.ec.SECP256R1())
    encoding = crypto.serialization.Encoding.PEM
    private_pem = private_key.private_bytes(
        encoding, crypto.serialization.PrivateFormat.PKCS8, crypto.serialization.NoEncryption()
    )
    public_key = private_key.public_key()
    public_pem = public_key.public_bytes(
        encoding, crypto.serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(private_path, private_pem, 0o600)
    try:
        _write_new(public_path, public_pem, 0o644)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    return KeyPair(private_path, public_path, key_type, key_fingerprint(public_key))


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start (never readable by others meanwhile)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        raise UsageError(f"{path}: already exists; remove it or choose another -o") from exc
    except OSError as exc:
        raise StorageError(f"{path}: cannot create the key file ({exc})") from exc
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        path.chmod(mode)  # the umask may have taken bits off
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        raise StorageError(f"{path}: cannot write the key file ({exc})") from exc
