"""A small HTTP client on the standard library that never raises: triage needs the status
code, the body and the time of every answer, errors included."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Reply:
    """``status`` is None when no HTTP answer came back (``error`` says why)."""

    url: str
    status: int | None
    body: bytes
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def json_object(self) -> dict[str, Any]:
        document = self.json()
        return document if isinstance(document, dict) else {}

    def text(self, limit: int = 300) -> str:
        return self.body.decode(errors="replace").strip()[:limit]

    def summary(self) -> str:
        if self.status is None:
            return f"no answer ({self.error})"
        return f"HTTP {self.status}"


def get(url: str, timeout: float = TIMEOUT_SECONDS) -> Reply:
    return _send(urllib.request.Request(url, method="GET"), timeout)


def post_json(url: str, document: Any, timeout: float = TIMEOUT_SECONDS) -> Reply:
    request = urllib.request.Request(
        url,
        data=json.dumps(document).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    return _send(request, timeout)


def _send(request: urllib.request.Request, timeout: float) -> Reply:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return Reply(request.full_url, exc.code, exc.read(), time.perf_counter() - started)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Reply(request.full_url, None, b"", time.perf_counter() - started, str(reason))
    return Reply(request.full_url, status, body, time.perf_counter() - started)
