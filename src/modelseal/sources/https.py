"""``https://`` (and ``http://``): a seal archive on a web server, fetched by byte ranges.

The standard library only (urllib, the system's CA store; ``SSL_CERT_FILE`` names another).
Credentials come from the URL's user info (sent as basic auth) or ``MODELSEAL_HTTP_TOKEN``
(a bearer token); neither is sent on to a redirect's target, nor shown anywhere.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from modelseal.errors import SourceError
from modelseal.sources.download import ObjectInfo
from modelseal.sources.redact import display_url, redact
from modelseal.sources.retry import TransientFetchError

PIECE_BYTES = 256 << 10
TIMEOUT_S = 60.0
_CONTENT_RANGE = re.compile(r"bytes\s+\d+-\d+/(\d+)")


@dataclass(frozen=True)
class HttpObject:
    """One URL, read by byte ranges when the server allows them (a ``RemoteObject``)."""

    url: str
    authorization: str | None = None

    @classmethod
    def from_url(cls, url: str, environ: Mapping[str, str] | None = None) -> HttpObject:
        values = os.environ if environ is None else environ
        parts = urlsplit(url)
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode()
            host = parts.hostname or ""
            netloc = f"{host}:{parts.port}" if parts.port is not None else host
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        elif token := values.get("MODELSEAL_HTTP_TOKEN"):
            authorization = f"Bearer {token}"
        return cls(url, authorization)

    @property
    def description(self) -> str:
        return display_url(self.url)

    def stat(self) -> ObjectInfo:
        """Size and identity, and whether the server answers byte ranges."""
        with self._open(0, 1, ranged=True, doing="looking up") as response:
            etag = response.headers.get("ETag") or response.headers.get("Last-Modified") or ""
            if response.status == 206:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if match:
                    return ObjectInfo(int(match.group(1)), etag, ranged=True)
            length = response.headers.get("Content-Length")
            if response.status != 200 or length is None or not length.isdigit():
                raise SourceError(
                    f"{self.description}: the server said neither the size (Content-Length) "
                    "nor byte ranges; serve the archive as a static file"
                )
            return ObjectInfo(int(length), etag, ranged=False)

    def read_range(self, start: int, end: int, info: ObjectInfo) -> Iterator[bytes]:
        with self._open(start, end, ranged=info.ranged, doing="downloading") as response:
            if info.ranged and response.status != 206:
                raise SourceError(
                    f"{self.description}: asked for bytes {start}-{end - 1}, the server sent "
                    f"HTTP {response.status}; it stopped honouring byte ranges"
                )
            try:
                while piece := response.read(PIECE_BYTES):
                    yield piece
            except (http.client.HTTPException, OSError) as exc:
                raise TransientFetchError(f"{type(exc).__name__}: {redact(str(exc))}") from None

    def _open(self, start: int, end: int, *, ranged: bool, doing: str) -> http.client.HTTPResponse:
        request = urllib.request.Request(self.url)
        if ranged:
            request.add_header("Range", f"bytes={start}-{end - 1}")
        if self.authorization:
            request.add_unredirected_header("Authorization", self.authorization)
        try:
            response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise _status_error(exc.code, self.description, doing) from None
        except urllib.error.URLError as exc:
            raise _connection_error(exc.reason, self.description) from None
        except (http.client.HTTPException, OSError) as exc:
            raise TransientFetchError(f"{type(exc).__name__}: {redact(str(exc))}") from None
        return response


def _status_error(status: int, what: str, doing: str) -> Exception:
    if status >= 500 or status in (408, 429):
        return TransientFetchError(f"HTTP {status} from the server")
    if status in (401, 403):
        return SourceError(
            f"{what}: access denied while {doing} (HTTP {status}); check the credentials "
            "(user info in the URL, or MODELSEAL_HTTP_TOKEN)"
        )
    if status == 404:
        return SourceError(f"{what}: no such file on the server (HTTP 404); check the URL")
    if status == 416:
        return SourceError(f"{what}: the file changed while it was being downloaded; start again")
    return SourceError(f"{what}: {doing} failed with HTTP {status}")


def _connection_error(reason: object, what: str) -> Exception:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return SourceError(
            f"{what}: the server's certificate is not trusted ({reason.verify_message}); "
            "set SSL_CERT_FILE to the bundle of the CA that signed it"
        )
    # Other TLS errors (an EOF or reset in the handshake) are what a flaky network does.
    return TransientFetchError(f"{type(reason).__name__}: {redact(str(reason))}")
