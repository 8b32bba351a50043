"""modelseal: a model and the environment it was validated in, as one verifiable artifact.

The public API is what this module exports; everything else is an implementation detail.
"""

from modelseal._version import __version__
from modelseal.environment.fingerprint import capture_environment
from modelseal.environment.record import EnvironmentRecord
from modelseal.errors import (
    DeviceError,
    DriftError,
    InputError,
    IntegrityError,
    RuntimeLoadError,
    SealError,
    SealFormatError,
    SourceError,
    UnsafeArchiveError,
    UnsignedPickleError,
    UntrustedSealError,
    UsageError,
)
from modelseal.pack import pack
from modelseal.seal.artifact import Seal, open_seal
from modelseal.seal.signatures import sign_seal as sign
from modelseal.seal.trust import Trust, TrustPolicy
from modelseal.types import NamedArrays, OutputKind, Signature, TensorSpec
from modelseal.verify import Verdict, VerifyReport, verify

__all__ = [
    "DeviceError",
    "DriftError",
    "EnvironmentRecord",
    "InputError",
    "IntegrityError",
    "NamedArrays",
    "OutputKind",
    "RuntimeLoadError",
    "Seal",
    "SealError",
    "SealFormatError",
    "Signature",
    "SourceError",
    "TensorSpec",
    "Trust",
    "TrustPolicy",
    "UnsafeArchiveError",
    "UnsignedPickleError",
    "UntrustedSealError",
    "UsageError",
    "Verdict",
    "VerifyReport",
    "__version__",
    "capture_environment",
    "open_seal",
    "pack",
    "sign",
    "verify",
]
