"""Who vouches for a seal: the operator's trust policy, and what it found in one seal.

Digests prove a seal did not change after its manifest was written; they cannot say who wrote
it. The operator says whom they trust (``TrustPolicy``: public keys, a pinned digest, and
whether an unsigned pickle may run); ``authenticate`` checks a seal's signatures against it,
refuses the seal when trusted keys are configured and none of them signed it, and records
what vouched for it (``Trust``) on the seal, where the load step reads it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelseal.errors import UntrustedSealError, UsageError
from modelseal.seal.signatures import FoundSignature, TrustedKey, load_trusted_keys, read_signatures

if TYPE_CHECKING:
    from modelseal.seal.artifact import Seal

TRUSTED_KEYS_VARIABLE = "MODELSEAL_TRUSTED_KEYS"
ALLOW_UNSIGNED_PICKLE_VARIABLE = "MODELSEAL_ALLOW_UNSIGNED_PICKLE"
_PIN = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")


@dataclass(frozen=True)
class TrustPolicy:
    """What the operator trusts. The default trusts no key, pins nothing, and refuses to
    unpickle a model nobody vouched for."""

    trusted_keys: tuple[TrustedKey, ...] = ()
    """With any, a seal must carry a valid signature by one of them, or it is refused."""
    expect_digest: str | None = None
    """A digest the operator pinned (``sha256:HEX``, ``--expect-digest``): a seal with exactly
    this digest is vouched for by the pin."""
    allow_unsigned_pickle: bool = False
    """Load pickled models from seals nobody vouched for (logged as a warning)."""

    def __post_init__(self) -> None:
        if self.expect_digest is not None and _PIN.match(self.expect_digest.strip()) is None:
            raise UsageError(
                f"--expect-digest {self.expect_digest!r}: expected sha256: and 64 hex digits, "
                "as `modelseal inspect SEAL` prints the digest"
            )

    @classmethod
    def from_options(
        cls,
        trusted_keys: Sequence[str | os.PathLike[str]] = (),
        *,
        expect_digest: str | None = None,
        allow_unsigned_pickle: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> TrustPolicy:
        """The policy of a command line: ``--trusted-key`` files or folders, else those in
        ``MODELSEAL_TRUSTED_KEYS`` (separated by ``os.pathsep``)."""
        values = os.environ if environ is None else environ
        listed = values.get(TRUSTED_KEYS_VARIABLE, "").split(os.pathsep)
        paths = [Path(path) for path in trusted_keys] or [Path(entry) for entry in listed if entry]
        return cls(load_trusted_keys(paths), expect_digest, allow_unsigned_pickle)

    @property
    def pinned_digest(self) -> str | None:
        """The pinned digest as bare lower-case hex, or None."""
        if self.expect_digest is None:
            return None
        match = _PIN.match(self.expect_digest.strip())
        return match.group(1).lower() if match else None


@dataclass(frozen=True)
class Trust:
    """What vouched for one seal when it was admitted; the default: nothing did."""

    signatures: tuple[FoundSignature, ...] = ()
    """Every signature the seal carries, each marked valid and trusted or not."""
    trusted_keys: tuple[TrustedKey, ...] = ()
    """The keys the operator trusted."""
    digest_pinned: bool = False
    """The seal's digest is the one the operator pinned."""
    unsigned_pickle_allowed: bool = False
    """The operator accepted loading a pickle from a seal nobody vouched for."""

    @property
    def signed_by(self) -> tuple[str, ...]:
        """Fingerprints of the trusted keys whose signatures over this seal verified."""
        return tuple(
            found.fingerprint for found in self.signatures if found.trusted and found.fingerprint
        )

    @property
    def vouched(self) -> bool:
        """Someone trusted vouched for this exact seal: a trusted key signed it, or its
        digest is the pinned one."""
        return bool(self.signed_by) or self.digest_pinned

    def describe_vouching(self) -> str:
        """Who vouched for the seal, or why nobody did, in a few words for messages."""
        if self.signed_by:
            return f"signed by trusted key {', '.join(self.signed_by)}"
        if self.digest_pinned:
            return "its digest is the pinned one"
        valid = [
            found.fingerprint for found in self.signatures if found.valid and found.fingerprint
        ]
        if valid and not self.trusted_keys:
            return (
                f"it is signed by {', '.join(valid)}, but no key is trusted here "
                "(--trusted-key / MODELSEAL_TRUSTED_KEYS)"
            )
        return "it is not signed by a trusted key and its digest is not pinned"


def authenticate(seal: Seal, policy: TrustPolicy) -> Trust:
    """Check the seal's signatures against ``policy`` and record the ``Trust`` on the seal.

    Raises ``UntrustedSealError`` when the policy has trusted keys and no valid signature by
    one of them covers the seal's digest (unsigned, signed only by other keys, or a
    signature that does not match), naming the fingerprints found and expected. Loads
    nothing but the signature files.
    """
    trusted = {key.fingerprint for key in policy.trusted_keys}
    found = tuple(
        signature.model_copy(update={"trusted": signature.fingerprint in trusted})
        if signature.valid
        else signature
        for signature in read_signatures(seal.root, seal.digest)
    )
    trust = Trust(
        signatures=found,
        trusted_keys=policy.trusted_keys,
        digest_pinned=policy.pinned_digest == seal.digest,
        unsigned_pickle_allowed=policy.allow_unsigned_pickle,
    )
    if policy.trusted_keys and not trust.signed_by:
        raise UntrustedSealError(_refusal(seal, trust))
    seal.record_trust(trust)
    return trust


def _refusal(seal: Seal, trust: Trust) -> str:
    if trust.signatures:
        found = "signatures found: " + "; ".join(_describe(found) for found in trust.signatures)
    else:
        found = "it carries no signatures (signatures/ is empty or absent)"
    expected = ", ".join(f"{key.fingerprint} ({key.source})" for key in trust.trusted_keys)
    return (
        f"{seal.source}: seal {seal.name} {seal.version} (sha256:{seal.digest}) is not signed "
        f"by a trusted key; {found}; trusted keys: {expected}. Refusing it before loading "
        "anything: sign it with a trusted key (`modelseal sign SEAL --key KEY.pem`), or trust "
        f"its signer's public key (--trusted-key PUB.pem / {TRUSTED_KEYS_VARIABLE})"
    )


def _describe(found: FoundSignature) -> str:
    who = found.fingerprint or "an unknown key"
    if not found.valid:
        return f"{found.file} by {who}: invalid, {found.problem}"
    return f"{found.file} by {who} ({found.algorithm}): valid, but not a trusted key"
