"""Keeping secrets out of every message, log line and report that names a source.

Sources are shown without the userinfo and the query of a URL (where presigned signatures
and tokens live), and any text that leaves this package passes through ``redact``, which
also blanks the values of the secret variables set in the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

SECRET_VARIABLES = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "MODELSEAL_HTTP_TOKEN",
)
MASK = "***"
# Secrets shorter than this are too likely to occur by chance to be blanked everywhere.
MIN_SECRET_LENGTH = 6
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
_URL_QUERY = re.compile(r"(?P<url>https?://[^\s?#'\"]+)\?[^\s#'\"]*")


def display_url(url: str) -> str:
    """``url`` as it may be shown: no user, password or query string."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    query = MASK if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with URL credentials and queries and the environment's secret values blanked."""
    text = _URL_CREDENTIALS.sub(lambda match: f"{match['scheme']}{MASK}@", text)
    text = _URL_QUERY.sub(lambda match: f"{match['url']}?{MASK}", text)
    for secret in secret_values(environ):
        text = text.replace(secret, MASK)
    return text


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    values = os.environ if environ is None else environ
    found = (values.get(name, "") for name in SECRET_VARIABLES)
    return sorted({value for value in found if len(value) >= MIN_SECRET_LENGTH}, key=len)[::-1]
