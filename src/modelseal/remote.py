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

import numpy as np
from pydantic import BaseModel, Field

from modelseal.errors import SourceError
from modelseal.golden.compare import compare_output
from modelseal.golden.store import Golden, load_golden
from modelseal.oip import DTYPES, datatype_of
from modelseal.seal.artifact import Seal
from modelseal.types import NamedArrays
from modelseal.verify import (
    REPORT_SCHEMA_VERSION,
    Failure,
    OutputReplay,
    SealSummary,
    Verdict,
    seal_policies,
)

TIMEOUT_SECONDS = 60.0


class ServerAnsweredError(Exception):
    """The server answered with an HTTP error status (it is reachable but refused)."""


class RemoteVerifyReport(BaseModel):
    """What ``modelseal verify --url`` found."""

    schema_version: int = REPORT_SCHEMA_VERSION
    seal: SealSummary
    url: str
    server_seal_digest: str | None = Field(
        description="the digest the server reports on /seal, when it is a modelseal server"
    )
    verdict: Verdict
    golden: list[OutputReplay]
    golden_rows: int
    failure: Failure | None = None
    timings: dict[str, float]

    @property
    def consistent(self) -> bool:
        return self.verdict is Verdict.CONSISTENT


def verify_server(
    seal: Seal, url: str, *, tolerance: Sequence[str] = (), batch_size: int = 64
) -> RemoteVerifyReport:
    """Send the golden inputs to the server at ``url`` and compare what comes back.

    Raises ``SourceError`` when the server cannot be reached at all; a server that answers
    with an error (for example 404: it serves another model) is a ``run-failed`` verdict.
    """
    base = url.rstrip("/")
    golden = load_golden(seal.golden_path)
    policies = seal_policies(seal, tolerance)
    started = time.perf_counter()
    server_digest = _server_digest(base)
    replays: list[OutputReplay] = []
    failure: Failure | None = None
    try:
        outputs = _infer_all(base, seal, golden, batch_size)
        for name, expected in golden.outputs.items():
            actual = outputs.get(name, np.empty((0,)))
            comparison = compare_output(name, expected, actual, policies[name])
            replays.append(OutputReplay(batch_size=batch_size, comparison=comparison))
    except ServerAnsweredError as exc:
        failure = Failure(error_type="HTTPError", message=str(exc))
    verdict = Verdict.RUN_FAILED if failure else _verdict(replays)
    return RemoteVerifyReport(
        seal=SealSummary.of(seal),
        url=base,
        server_seal_digest=server_digest,
        verdict=verdict,
        golden=replays,
        golden_rows=golden.rows,
        failure=failure,
        timings={"remote_replay": round(time.perf_counter() - started, 6)},
    )


def _verdict(replays: list[OutputReplay]) -> Verdict:
    passed = all(replay.comparison.passed for replay in replays)
    return Verdict.CONSISTENT if passed else Verdict.DRIFT


def _infer_all(base: str, seal: Seal, golden: Golden, batch_size: int) -> NamedArrays:
    endpoint = f"{base}/v2/models/{seal.name}/versions/{seal.version}/infer"
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, golden.rows, batch_size):
        batch = golden.input_rows(start, start + batch_size)
        for name, array in _infer(endpoint, batch).items():
            parts.setdefault(name, []).append(array)
    return {name: np.concatenate(arrays) for name, arrays in parts.items()}


def _infer(endpoint: str, inputs: NamedArrays) -> NamedArrays:
    body = {
        "inputs": [
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": datatype_of(array.dtype),
                "data": array.ravel().tolist(),
            }
            for name, array in inputs.items()
        ]
    }
    reply = _request(endpoint, json.dumps(body).encode())
    return {
        output["name"]: np.asarray(output["data"], dtype=DTYPES[output["datatype"]]).reshape(
            output["shape"]
        )
        for output in reply["outputs"]
    }


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
            document: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise ServerAnsweredError(f"{url}: HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise SourceError(f"{url}: cannot reach the server: {exc}") from exc
    return document
