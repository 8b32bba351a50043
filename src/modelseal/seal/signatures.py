"""Detached signatures over a seal's manifest digest, under ``signatures/`` in the seal.

A seal's digests prove that nothing changed since ``seal.json`` was written, not who wrote
it: anyone who can rewrite the files can restamp every digest. A signature by a key the
operator trusts says who vouched for the digest, and so for every file it covers.

Format (``docs/signatures.md`` is the reference). Each signer adds one pair of files:

- ``signatures/key-<16 hex>.sig``: the signature of the signed message. ECDSA P-256: DER
  (``openssl dgst -sha256 -sign`` writes the same); Ed25519: the 64 raw bytes.
- ``signatures/key-<16 hex>.json``: the descriptor (``SignatureDescriptor``): format, kind
  (``key``; keyless ``sigstore-bundle`` descriptors may come later), algorithm, the key's
  fingerprint and PEM, the signed message and when it was signed.

The signed message is the ASCII line ``modelseal-seal-v1 sha256:<digest>\\n``; the prefix keeps
a signature over a seal from meaning anything else to whoever holds the key. A key's
fingerprint is ``sha256:`` and the sha256 of its DER SubjectPublicKeyInfo
(``openssl pkey -pubin -in PUB.pem -outform DER | sha256sum``).

``signatures/`` lies outside what the digest covers (a signature cannot sign itself), so
opening a seal accepts exactly the well-formed names there (``is_signature_path``) and
nothing else unlisted. ``cryptography`` is imported only to sign or check a signature.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelseal.errors import SealFormatError, StorageError, UsageError
from modelseal.seal.digests import SIGNATURES_DIR, is_signature_path
from modelseal.seal.manifest import MANIFEST_FILE

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import (
        EllipticCurvePrivateKey,
        EllipticCurvePublicKey,
    )
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    PublicKey = EllipticCurvePublicKey | Ed25519PublicKey
    PrivateKey = EllipticCurvePrivateKey | Ed25519PrivateKey

MESSAGE_PREFIX = "modelseal-seal-v1"
MAX_SIGNATURE_FILE_BYTES = 64 << 10
MAX_SIGNATURES = 64
KEY_PASSWORD_VARIABLE = "MODELSEAL_KEY_PASSWORD"
SIGN_EXTRA = "pip install 'modelseal[sign]'"
Algorithm = Literal["ecdsa-p256-sha256", "ed25519"]
_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")


class SignatureDescriptor(BaseModel):
    """``signatures/<name>.json``: what one signature is, by whom, over what."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal[1] = 1
    kind: Literal["key"] = "key"
    algorithm: Algorithm
    key_fingerprint: str = Field(pattern=_FINGERPRINT.pattern)
    public_key: str = Field(description="the signer's public key, PEM (SubjectPublicKeyInfo)")
    message: str = Field(description="the signed bytes, as ASCII text")
    signature_file: str = Field(description="the signature's file name in signatures/")
    created: str

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


class FoundSignature(BaseModel):
    """One signature found in a seal, checked against the seal's digest."""

    model_config = ConfigDict(frozen=True)

    file: str = Field(description="the descriptor (or lone signature file) under signatures/")
    kind: str | None
    algorithm: str | None
    fingerprint: str | None = Field(description="sha256 of the key's DER SubjectPublicKeyInfo")
    created: str | None
    valid: bool = Field(description="the signature verifies over this seal's digest")
    trusted: bool = Field(
        default=False, description="valid, and by one of the keys the operator trusts"
    )
    problem: str | None = Field(default=None, description="why it is not valid")


@dataclass(frozen=True)
class TrustedKey:
    """A public key the operator trusts, by fingerprint."""

    fingerprint: str
    algorithm: Algorithm
    source: str
    """The file it was read from, for messages."""


@dataclass(frozen=True)
class SignedSeal:
    """What ``sign_seal`` wrote: the descriptor, and the two files (relative to the seal)."""

    source: str
    digest: str
    descriptor: SignatureDescriptor
    files: tuple[str, str]


def signed_message(digest: str) -> bytes:
    """The bytes a signature signs: ``modelseal-seal-v1 sha256:<digest>\\n`` in ASCII."""
    return f"{MESSAGE_PREFIX} sha256:{digest}\n".encode("ascii")


def sign_seal(
    path: str | os.PathLike[str], key: str | os.PathLike[str], *, created: datetime | None = None
) -> SignedSeal:
    """Sign the seal at ``path`` (a folder or an archive) with the private key file ``key``.

    The seal is opened first, so only a seal whose files all match its manifest is signed.
    A folder gains ``signatures/key-<id>.sig`` and ``.json``; an archive is rewritten with
    them, in one rename. Signing again with the same key replaces that key's pair; other
    signers' pairs stay. Raises ``UsageError`` for a key that cannot sign.
    """
    from modelseal.seal.archive import is_seal_archive
    from modelseal.seal.artifact import open_seal

    private_key = load_private_key(Path(key))
    location = Path(path)
    with open_seal(location) as seal:
        digest = seal.digest
    descriptor, signature = _sign(private_key, digest, created or datetime.now(timezone.utc))
    stem = PurePosixPath(descriptor.signature_file).stem
    members = {
        f"{stem}.sig": signature,
        f"{stem}.json": descriptor.to_json().encode("ascii"),
    }
    if location.is_dir():
        _write_into_folder(location / SIGNATURES_DIR, members)
    elif is_seal_archive(location):
        _rewrite_archive(location, members)
    files = tuple(f"{SIGNATURES_DIR}/{name}" for name in members)
    return SignedSeal(str(location), digest, descriptor, (files[0], files[1]))


def read_signatures(root: Path, digest: str) -> list[FoundSignature]:
    """Every signature under ``root/signatures``, each checked over ``digest``.

    Never raises for a bad signature: each one found says whether it is valid and, if not,
    why. ``trusted`` is left False (the caller knows which keys it trusts).
    """
    folder = root / SIGNATURES_DIR
    if not folder.is_dir():
        return []
    names = sorted(
        path.name for path in folder.iterdir() if is_signature_path(f"{SIGNATURES_DIR}/{path.name}")
    )
    if len(names) > 2 * MAX_SIGNATURES:
        raise SealFormatError(
            f"{folder}: {len(names)} signature files, at most {2 * MAX_SIGNATURES} are read "
            f"({MAX_SIGNATURES} signers); remove the ones nobody needs"
        )
    found, referenced = [], set()
    for name in names:
        if name.endswith(".json"):
            signature, signature_file = _check_descriptor(folder, name, digest)
            found.append(signature)
            referenced.add(signature_file)
    found += [
        _lone_signature(name) for name in names if name.endswith(".sig") and name not in referenced
    ]
    return found


def load_trusted_keys(paths: Sequence[Path]) -> tuple[TrustedKey, ...]:
    """The public keys in ``paths``: PEM files, or folders whose ``*.pem`` files are read.

    Raises ``UsageError`` naming the file for anything that is not a P-256 or Ed25519
    public key (a private key included: only public keys belong with the operator).
    """
    keys: dict[str, TrustedKey] = {}
    for path in paths:
        for file in _key_files(path):
            public_key = load_public_key(file)
            fingerprint = key_fingerprint(public_key)
            keys.setdefault(
                fingerprint, TrustedKey(fingerprint, key_algorithm(public_key), str(file))
            )
    return tuple(keys.values())


def load_public_key(path: Path) -> PublicKey:
    data = _read_key_file(path)
    serialization = require_cryptography().serialization
    if b"PRIVATE KEY" in data:
        raise UsageError(
            f"{path} is a private key; a trusted key is the public half (KEY.pub.pem from "
            "`modelseal keygen`, or `openssl pkey -in KEY.pem -pubout -out KEY.pub.pem`)"
        )
    try:
        public_key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise UsageError(
            f"{path}: not a PEM public key ({exc}); expected -----BEGIN PUBLIC KEY-----"
        ) from exc
    key_algorithm(public_key, where=str(path))
    return cast("PublicKey", public_key)


def load_private_key(path: Path) -> PrivateKey:
    """A P-256 or Ed25519 private key from PEM (PKCS#8 or SEC1), decrypted with the password
    in ``MODELSEAL_KEY_PASSWORD`` when it is encrypted."""
    data = _read_key_file(path)
    serialization = require_cryptography().serialization
    if b"PRIVATE KEY" not in data:
        raise UsageError(
            f"{path}: not a PEM private key (expected -----BEGIN PRIVATE KEY----- or "
            "-----BEGIN EC PRIVATE KEY-----); sign with the private key, not KEY.pub.pem"
        )
    password = os.environ.get(KEY_PASSWORD_VARIABLE)
    try:
        private_key = serialization.load_pem_private_key(
            data, password=password.encode() if password else None
        )
    except TypeError as exc:
        raise UsageError(
            f"{path}: the private key is encrypted; put its password in "
            f"{KEY_PASSWORD_VARIABLE} ({exc})"
        ) from exc
    except ValueError as exc:
        raise UsageError(f"{path}: the private key cannot be read ({exc})") from exc
    key_algorithm(private_key.public_key(), where=str(path))
    return cast("PrivateKey", private_key)


def key_fingerprint(public_key: PublicKey) -> str:
    """``sha256:`` and the sha256 of the key's DER SubjectPublicKeyInfo."""
    serialization = require_cryptography().serialization
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"sha256:{hashlib.sha256(der).hexdigest()}"


def key_algorithm(public_key: object, *, where: str = "the key") -> Algorithm:
    """The signature algorithm of a key; ``UsageError`` for any other key than P-256/Ed25519."""
    crypto = require_cryptography()
    if isinstance(public_key, crypto.ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, crypto.ec.EllipticCurvePublicKey):
        if isinstance(public_key.curve, crypto.ec.SECP256R1):
            return "ecdsa-p256-sha256"
        raise UsageError(
            f"{where}: an elliptic-curve key on {public_key.curve.name}; seals are signed "
            "with ECDSA P-256 (prime256v1/secp256r1) or Ed25519 keys (`modelseal keygen`)"
        )
    raise UsageError(
        f"{where}: a {type(public_key).__name__.removeprefix('_')}; seals are signed with "
        "ECDSA P-256 or Ed25519 keys (`modelseal keygen` makes one)"
    )


def fingerprint_id(fingerprint: str) -> str:
    """The short form that names a signer's files: the first 16 hex digits."""
    return fingerprint.removeprefix("sha256:")[:16]


# --- signing --------------------------------------------------------------------------------


def _sign(
    private_key: PrivateKey, digest: str, created: datetime
) -> tuple[SignatureDescriptor, bytes]:
    crypto = require_cryptography()
    message = signed_message(digest)
    public_key = private_key.public_key()
    algorithm = key_algorithm(public_key)
    if algorithm == "ed25519":
        signature = cast("Ed25519PrivateKey", private_key).sign(message)
    else:
        ecdsa = crypto.ec.ECDSA(crypto.hashes.SHA256())
        signature = cast("EllipticCurvePrivateKey", private_key).sign(message, ecdsa)
    fingerprint = key_fingerprint(public_key)
    pem = public_key.public_bytes(
        crypto.serialization.Encoding.PEM, crypto.serialization.PublicFormat.SubjectPublicKeyInfo
    )
    descriptor = SignatureDescriptor(
        algorithm=algorithm,
        key_fingerprint=fingerprint,
        public_key=pem.decode("ascii"),
        message=message.decode("ascii"),
        signature_file=f"key-{fingerprint_id(fingerprint)}.sig",
        created=created.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return descriptor, signature


def _write_into_folder(folder: Path, members: dict[str, bytes]) -> None:
    try:
        folder.mkdir(exist_ok=True)
        for name, data in members.items():  # the .sig first: a descriptor never lacks it
            with _atomic_file(folder / name) as stream:
                stream.write(data)
    except OSError as exc:
        raise StorageError(f"{folder}: cannot write the signature there ({exc})") from exc


def _rewrite_archive(archive: Path, members: dict[str, bytes]) -> None:
    """Copy the archive's members into a new one beside it, the signer's pair replaced or
    added under the seal folder's ``signatures/``, then rename it over the old one."""
    compressed = _is_gzip(archive)
    try:
        with tarfile.open(archive, "r:*") as old, _atomic_file(archive) as stream:
            entries = old.getmembers()
            prefix = _seal_prefix(entries, archive)
            added = {str(prefix / SIGNATURES_DIR / name): data for name, data in members.items()}
            with _tar_writer(stream, compressed) as new:
                for entry in entries:
                    if str(PurePosixPath(entry.name)) in added:
                        continue
                    new.addfile(entry, old.extractfile(entry) if entry.isfile() else None)
                for name, data in added.items():
                    new.addfile(_file_entry(name, len(data)), io.BytesIO(data))
    except tarfile.TarError as exc:
        raise SealFormatError(f"{archive}: not a readable tar archive ({exc})") from exc
    except OSError as exc:
        raise StorageError(f"{archive}: cannot rewrite it with the signature ({exc})") from exc


def _seal_prefix(entries: list[tarfile.TarInfo], archive: Path) -> PurePosixPath:
    manifests = [
        PurePosixPath(entry.name)
        for entry in entries
        if entry.isfile() and PurePosixPath(entry.name).name == MANIFEST_FILE
    ]
    if not manifests:
        raise SealFormatError(f"{archive}: holds no {MANIFEST_FILE}; is this a modelseal seal?")
    return min(manifests, key=lambda name: len(name.parts)).parent


@contextlib.contextmanager
def _tar_writer(stream: Any, compressed: bool) -> Iterator[tarfile.TarFile]:
    if not compressed:
        with tarfile.open(fileobj=stream, mode="w") as tar:
            yield tar
        return
    with (
        gzip.GzipFile(fileobj=stream, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w") as tar,
    ):
        yield tar


@contextlib.contextmanager
def _atomic_file(target: Path) -> Iterator[Any]:
    """A file beside ``target`` that replaces it in one rename once written and synced."""
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
        Path(temporary).chmod(mode)
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _file_entry(name: str, size: int) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.size = size
    entry.mode = 0o644
    entry.mtime = int(datetime.now(timezone.utc).timestamp())
    return entry


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as stream:
        return stream.read(2) == b"\x1f\x8b"


# --- checking -------------------------------------------------------------------------------


def _check_descriptor(folder: Path, name: str, digest: str) -> tuple[FoundSignature, str]:
    """The signature a descriptor describes, checked; and the signature file it names."""
    shown = f"{SIGNATURES_DIR}/{name}"
    try:
        body = json.loads(_read_small(folder / name))
    except (OSError, ValueError) as exc:
        return _invalid(shown, f"the descriptor cannot be read as JSON ({exc})"), ""
    if not isinstance(body, dict):
        return _invalid(shown, "the descriptor is not a JSON object"), ""
    named = body.get("signature_file")
    signature_file = named if isinstance(named, str) else ""
    kind = body.get("kind")
    if kind != "key":
        problem = f"kind {kind!r} is not one this modelseal checks (it checks 'key' signatures)"
        return _invalid(shown, problem, kind=str(kind)), signature_file
    try:
        descriptor = SignatureDescriptor.model_validate(body)
    except ValidationError as exc:
        problem = f"malformed descriptor: {exc.errors()[0]['msg']}"
        return _invalid(shown, problem, kind="key"), signature_file
    return _check_key_signature(folder, shown, descriptor, digest), signature_file


def _check_key_signature(
    folder: Path, shown: str, descriptor: SignatureDescriptor, digest: str
) -> FoundSignature:
    crypto = _crypto_or_none()
    if crypto is None:
        return FoundSignature(
            file=shown, kind="key", algorithm=descriptor.algorithm,
            fingerprint=descriptor.key_fingerprint, created=descriptor.created, valid=False,
            problem=f"cannot be checked here: the cryptography package is missing ({SIGN_EXTRA})",
        )  # fmt: skip
    try:
        public_key = crypto.serialization.load_pem_public_key(descriptor.public_key.encode())
        algorithm = key_algorithm(public_key, where="its public key")
        fingerprint = key_fingerprint(cast("PublicKey", public_key))
    except (ValueError, UsageError) as exc:
        return _invalid(shown, f"its public key cannot be used ({exc})", kind="key")
    problem = _signature_problem(folder, descriptor, public_key, algorithm, fingerprint, digest)
    return FoundSignature(
        file=shown, kind="key", algorithm=algorithm, fingerprint=fingerprint,
        created=descriptor.created, valid=problem is None, problem=problem,
    )  # fmt: skip


def _signature_problem(
    folder: Path,
    descriptor: SignatureDescriptor,
    public_key: Any,
    algorithm: Algorithm,
    fingerprint: str,
    digest: str,
) -> str | None:
    crypto = require_cryptography()
    if descriptor.algorithm != algorithm:
        return f"it says {descriptor.algorithm}, its key is for {algorithm}"
    if descriptor.key_fingerprint != fingerprint:
        return f"it names key {descriptor.key_fingerprint}, its public key is {fingerprint}"
    expected = signed_message(digest).decode("ascii")
    if descriptor.message != expected:
        return (
            f"it signs {descriptor.message.strip()!r}, not this seal's {expected.strip()!r} "
            "(a signature of another seal, or of this one before it changed)"
        )
    if not is_signature_path(f"{SIGNATURES_DIR}/{descriptor.signature_file}") or not (
        descriptor.signature_file.endswith(".sig")
    ):
        return f"its signature_file {descriptor.signature_file!r} is not a .sig in signatures/"
    try:
        signature = _read_small(folder / descriptor.signature_file)
    except OSError as exc:
        return f"its signature file cannot be read ({exc})"
    try:
        if algorithm == "ed25519":
            public_key.verify(signature, expected.encode("ascii"))
        else:
            public_key.verify(
                signature, expected.encode("ascii"), crypto.ec.ECDSA(crypto.hashes.SHA256())
            )
    except crypto.InvalidSignature:
        return "the signature does not match the seal's digest (signed by another key, or changed)"
    return None


def _lone_signature(name: str) -> FoundSignature:
    return _invalid(
        f"{SIGNATURES_DIR}/{name}",
        "a signature without a descriptor (.json) naming it: nobody can tell whose it is",
    )


def _invalid(shown: str, problem: str, *, kind: str | None = None) -> FoundSignature:
    return FoundSignature(
        file=shown, kind=kind, algorithm=None, fingerprint=None, created=None, valid=False,
        problem=problem,
    )  # fmt: skip


def _read_small(path: Path) -> bytes:
    with path.open("rb") as stream:
        data = stream.read(MAX_SIGNATURE_FILE_BYTES + 1)
    if len(data) > MAX_SIGNATURE_FILE_BYTES:
        raise OSError(f"larger than {MAX_SIGNATURE_FILE_BYTES} bytes")
    return data


# --- keys -----------------------------------------------------------------------------------


def _key_files(path: Path) -> list[Path]:
    if path.is_dir():
        # A Kubernetes ConfigMap mount holds links into a hidden ..data folder: follow them,
        # skip the hidden names.
        files = sorted(
            entry for entry in path.iterdir()
            if not entry.name.startswith(".") and entry.suffix == ".pem" and entry.is_file()
        )  # fmt: skip
        if not files:
            raise UsageError(f"{path}: a folder of trusted keys, but it holds no .pem files")
        return files
    if not path.exists():
        raise UsageError(f"{path}: no such key file (a trusted key is a PEM public key file)")
    return [path]


def _read_key_file(path: Path) -> bytes:
    try:
        data = _read_small(path)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the key file ({exc})") from exc
    return data


class _Crypto:
    """The parts of ``cryptography`` used here, imported on first use."""

    def __init__(self) -> None:
        from cryptography import exceptions
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519

        self.InvalidSignature = exceptions.InvalidSignature
        self.hashes = hashes
        self.serialization = serialization
        self.ec = ec
        self.ed25519 = ed25519


def require_cryptography() -> _Crypto:
    crypto = _crypto_or_none()
    if crypto is None:
        raise UsageError(
            "signing seals and checking their signatures needs the cryptography package, "
            f"which is not installed here: {SIGN_EXTRA} (or pip install cryptography)"
        )
    return crypto


@functools.cache
def _crypto_or_none() -> _Crypto | None:
    try:
        return _Crypto()
    except ImportError:
        return None
