"""Where a seal comes from: resolving a SOURCE to a local seal folder or archive.

Today: a local path (folder or .tar/.tar.gz) or a ``file://`` URI. Object storage
(``s3://``), the MLflow registry (``models:/``) and ``https://`` plug in here, each behind
``resolve_source``, with digest checks, caching and atomic downloads.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from modelseal.errors import SourceError

LOCAL_SCHEMES = ("", "file")
PLANNED_SCHEMES = ("s3", "models", "runs", "https", "http")


def resolve_source(source: str) -> Path:
    """A local path holding the seal named by ``source``."""
    parsed = urlparse(source)
    scheme = parsed.scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = ""
    if scheme in PLANNED_SCHEMES:
        raise SourceError(
            f"{source}: {scheme}:// sources are not supported by this version of modelseal; "
            "copy the seal to a local path or mounted volume and serve that"
        )
    if scheme not in LOCAL_SCHEMES:
        raise SourceError(
            f"{source}: unknown source scheme {scheme!r}; expected a path or file:// URI"
        )
    path = Path(unquote(parsed.path)) if scheme == "file" else Path(source)
    if not path.exists():
        raise SourceError(f"{source}: no seal there (no such file or folder)")
    return path
