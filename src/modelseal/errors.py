"""The one exception hierarchy of modelseal.

The CLI maps these to exit codes (in ``cli.py``) and the server maps them to HTTP statuses
(in ``serving``), each in exactly one place. Every message carries the fact and the fix.
"""

from __future__ import annotations

from pydantic import BaseModel


class SealError(Exception):
    """Base of every error modelseal raises on purpose."""


class SealFormatError(SealError):
    """A seal (or a file in it) cannot be read as format 1: missing, malformed or unknown."""


class IntegrityError(SealError):
    """A file does not match the manifest, or the manifest does not match its digest."""


class UnsafeArchiveError(IntegrityError):
    """A seal archive holds a member that would escape or pollute the extraction folder."""


class DriftError(SealError):
    """The model does not reproduce here: its outputs drifted beyond the seal's tolerance, it
    cannot load or run in this environment, or (when asked to be strict) the environment
    drifted critically. ``report`` is the verification report that says how."""

    def __init__(self, message: str, report: BaseModel | None = None) -> None:
        super().__init__(message)
        self.report = report


class SourceError(SealError):
    """A seal source (path, URI, registry) cannot be resolved or fetched."""


class RuntimeLoadError(SealError):
    """The runtime cannot save, load or run the model in this environment."""


class InputError(SealError):
    """Input data does not match what the model's signature expects."""


class MalformedRequestError(InputError):
    """A request body that cannot be parsed at all (not JSON, not an object, bad framing)."""


class DeviceError(SealError):
    """The requested device (a GPU) is not usable here."""


class OverloadedError(SealError):
    """The server's queue is full: it is at capacity (HTTP 503 with Retry-After)."""


class NotAcceptingError(SealError):
    """The server takes no requests now: not ready yet, failed, or past its drain window."""


class UnknownModelError(SealError):
    """A request names a model or version this server does not serve (HTTP 404)."""


class RequestTooLargeError(SealError):
    """A request body is larger than the server accepts (HTTP 413)."""


class UsageError(SealError):
    """The caller asked for something that cannot be done as asked (bad option, bad value)."""


class WrongSealError(SealError):
    """A server serves another seal (or not this model at all) than the one it was checked
    against. ``report`` is the remote verification report that says which."""

    def __init__(self, message: str, report: BaseModel | None = None) -> None:
        super().__init__(message)
        self.report = report


class ServerAnsweredError(SealError):
    """A server was reached but answered with an HTTP error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class IllegalTransitionError(SealError):
    """A state change the server's health state machine does not allow (a bug in the caller)."""


class StorageError(SealError):
    """Files cannot be written where asked: a full disk, no permission, a read-only file system."""


class DestinationBusyError(UsageError):
    """Another ``pack`` is writing the same destination right now."""


class ChecksFailedError(SealError):
    """``modelseal doctor`` found at least one check that failed; ``report`` says which."""

    def __init__(self, message: str, report: BaseModel | None = None) -> None:
        super().__init__(message)
        self.report = report


class NoCulpritError(SealError):
    """``modelseal bisect`` could not isolate the change that breaks the replay."""

    def __init__(self, message: str, report: BaseModel | None = None) -> None:
        super().__init__(message)
        self.report = report


class UnknownRouteError(SealError):
    """A request for a path the server has no route for (HTTP 404)."""


class MethodNotAllowedError(SealError):
    """A request with a method its path's route does not take (HTTP 405)."""


class FetchCancelledError(SealError):
    """A fetch stopped because its caller asked it to (a server told to shut down while it
    was fetching); the partial download is kept, to resume at the next start."""


class UntrustedSealError(IntegrityError):
    """Trusted keys are configured, and no valid signature by one of them covers the seal's
    digest: it is unsigned, signed only by other keys, or its signature does not match."""


class UnsignedPickleError(UntrustedSealError):
    """Loading the model would unpickle (which runs whatever code the bytes name), and nobody
    trusted vouched for the seal (no trusted signature, no pinned digest), nor did the
    operator accept the risk (``--allow-unsigned-pickle``)."""


class ManifestNotFirstError(SealFormatError):
    """A streamed archive does not start with ``seal.json``, so it cannot be checked as it
    streams; nothing was written. Local files fall back to reading the manifest first."""
