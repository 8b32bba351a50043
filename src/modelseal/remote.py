"""Offline vs online: the golden inputs sent to a running server, compared under the seal's
tolerance policy, before a deploy is promoted (``modelseal verify SEAL --url URL``).

A plain Open Inference Protocol v2 client on the standard library, so CI needs nothing else.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from pydantic import BaseModel, Field

from modelseal.errors import (
    DriftError,
    ServerAnsweredError,
    SourceError,
    UsageError,
    WrongSealError,
)
from modelseal.golden.store import Golden
from modelseal.oip import DTYPES, json_tensors
from modelseal.seal.artifact import Seal
from modelseal.types import NamedArrays
from modelseal.verify import (
    REPORT_SCHEMA_VERSION,
    Failure,
    OutputReplay,
    SealSummary,
    Verdict,
    Verification,
    compare_replay,
    verdict_of,
)

TIMEOUT_SECONDS = 60.0
DEFAULT_BATCH_SIZE = 64
URL_SCHEMES = ("http", "https")
NOT_FOUND = 404


class RemoteVerifyReport(BaseModel):
    """What ``modelseal verify --url`` found. ``--json`` prints exactly this (schema in docs/)."""

    schema_version: int = REPORT_SCHEMA_VERSION
    seal: SealSummary
    url: str
    server_seal_digest: str | None = Field(
        description="the digest the server reports on /seal, when it is a modelseal server"
    )
    verdict: Verdict = Field(
        description="consistent, drift, run-failed (the server answered an error), or "
        "wrong-seal (it serves another seal, or not this model at all)"
    )
    golden: list[OutputReplay]
    golden_rows: int
    failure: Failure | None = None
    timings: dict[str, float]

    @property
    def consistent(self) -> bool:
        return self.verdict is Verdict.CONSISTENT

    def check(self) -> None:
        """Raise ``WrongSealError`` or ``DriftError`` (carrying this report) unless consistent."""
        if self.consistent:
            return
        title = f"{self.seal.title} at {self.url}"
        if self.verdict is Verdict.WRONG_SEAL:
            served = self.server_seal_digest
            detail = f"it serves seal {served[:12]}" if served else "it does not serve this model"
            raise WrongSealError(f"{title}: wrong seal: {detail}", report=self)
        if self.failure is not None:
            raise DriftError(f"{title}: the server answered an error", report=self)
        failed = sorted({r.comparison.name for r in self.golden if not r.comparison.passed})
        raise DriftError(f"{title}: drifted beyond tolerance on {', '.join(failed)}", report=self)


def verify_server(
    seal: Seal,
    url: str,
    *,
    tolerance: Sequence[str] = (),
    batch_sizes: Sequence[int] | None = None,
) -> RemoteVerifyReport:
    """Send the golden inputs to the server at ``url`` and compare what comes back.

    ``url`` is the server's base URL; without a scheme it is taken as ``http://``. A server
    that reports another seal digest on ``/seal``, or answers 404 for this model's name and
    version, is a ``wrong-seal`` verdict and gets no golden inputs; any other HTTP error is
    ``run-failed``. Raises ``SourceError`` when the server cannot be reached at all and
    ``UsageError`` for a URL that is not an http(s) base URL or a bad batch size.
    """
    base = server_base_url(url)
    sizes = list(batch_sizes or (DEFAULT_BATCH_SIZE,))
    verification = Verification.start(seal, tolerance=tolerance, batch_sizes=sizes)
    started = time.perf_counter()
    server_digest = _server_digest(base)
    replays: list[OutputReplay] = []
    failure: Failure | None = None
    if server_digest is not None and server_digest != seal.digest:
        verdict, failure = Verdict.WRONG_SEAL, _another_seal(seal, server_digest)
    else:
        verdict, failure, replays = _replay(base, verification, sorted(set(sizes)))
    return RemoteVerifyReport(
        seal=SealSummary.of(seal),
        url=base,
        server_seal_digest=server_digest,
        verdict=verdict,
        golden=replays,
        golden_rows=verification.golden.rows,
        failure=failure,
        timings={"remote_replay": round(time.perf_counter() - started, 6)},
    )


def _another_seal(seal: Seal, server_digest: str) -> Failure:
    return Failure(
        error_type="WrongSeal",
        message=f"the server serves seal {server_digest}, not {seal.name} {seal.version} "
        f"(seal {seal.digest}); point --url at the deployment of this seal, or verify the "
        "seal it serves",
    )


def _replay(
    base: str, verification: Verification, sizes: list[int]
) -> tuple[Verdict, Failure | None, list[OutputReplay]]:
    seal, golden = verification.seal, verification.golden
    replays: list[OutputReplay] = []
    try:
        for size in sizes:
            outputs = _infer_all(base, seal, golden, size)
            replays += compare_replay(golden, outputs, verification.policies, size)
    except ServerAnsweredError as exc:
        if exc.status != NOT_FOUND:
            return Verdict.RUN_FAILED, Failure(error_type="HTTPError", message=str(exc)), []
        message = (
            f"{exc}; the server does not serve {seal.name} version {seal.version}: point "
            "--url at the deployment of this seal"
        )
        return Verdict.WRONG_SEAL, Failure(error_type="HTTPError", message=message), []
    return verdict_of(replays), None, replays


def server_base_url(url: str) -> str:
    """``url`` as an http(s) base URL without a trailing slash; ``HOST:PORT`` means http."""
    text = url.strip()
    candidate = text if "://" in text else f"http://{text}"
    parts = urlsplit(candidate)
    malformed = any(character.isspace() for character in text) or bool(parts.query)
    if parts.scheme.lower() not in URL_SCHEMES or not parts.hostname or malformed:
        raise UsageError(
            f"--url {url!r}: expected the server's base URL, http://HOST:PORT or "
            "https://HOST[:PORT] (HOST:PORT alone means http)"
        )
    try:
        parts.port  # noqa: B018 - reading it validates the port
    except ValueError as exc:
        raise UsageError(f"--url {url!r}: {exc}; expected http://HOST:PORT") from None
    return candidate.rstrip("/")


def _infer_all(base: str, seal: Seal, golden: Golden, batch_size: int) -> NamedArrays:
    endpoint = f"{base}/v2/models/{seal.name}/versions/{seal.version}/infer"
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, golden.rows, batch_size):
        batch = golden.input_rows(start, start + batch_size)
        for name, array in _infer(endpoint, batch, seal).items():
            parts.setdefault(name, []).append(array)
    return {name: np.concatenate(arrays) for name, arrays in parts.items()}


def _infer(endpoint: str, inputs: NamedArrays, seal: Seal) -> NamedArrays:
    body = {"inputs": json_tensors(inputs, seal.signature)}
    reply = _request(endpoint, json.dumps(body).encode())
    try:
        return {
            output["name"]: np.asarray(output["data"], dtype=DTYPES[output["datatype"]]).reshape(
                output["shape"]
            )
            for output in reply["outputs"]
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceError(
            f"{endpoint}: the answer is not an Open Inference Protocol v2 inference response "
            f"({type(exc).__name__}: {exc}); is --url the base URL of a v2 server?"
        ) from exc


def _server_digest(base: str) -> str | None:
    try:
        document = _request(f"{base}/seal", None)
    except ServerAnsweredError:
        return None
    digest = document.get("manifest", {}).get("digest")
    return digest if isinstance(digest, str) else None


def _request(url: str, body: bytes | None) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=body,
        headers={"content-type": "application/json"},
        method="POST" if body else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            document = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise ServerAnsweredError(f"{url}: HTTP {exc.code}: {detail}", status=exc.code) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise SourceError(f"{url}: cannot reach the server: {exc}") from exc
    except ValueError as exc:
        raise SourceError(f"{url}: the server's answer is not JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise SourceError(f"{url}: the server's answer is not a JSON object")
    return document
