"""Where a seal comes from: a local folder or archive, ``file://``, ``s3://``, ``models:/``
(MLflow registry) or ``https://``, every file checked, remote seals cached by digest.

``resolve(source, expect_digest=None) -> Seal`` is the one entry point; the rest is for
callers that report progress (``ProgressObserver``), manage the cache, or publish seals.
"""

from __future__ import annotations

from pathlib import Path

from modelseal.sources.cache import SealCache
from modelseal.sources.locations import parse_source
from modelseal.sources.progress import (
    FetchProgress,
    LogProgress,
    ProgressObserver,
    RichProgressBar,
    terminal_progress,
)
from modelseal.sources.resolve import parse_pin, resolve

__all__ = [
    "FetchProgress",
    "LogProgress",
    "ProgressObserver",
    "RichProgressBar",
    "SealCache",
    "parse_pin",
    "parse_source",
    "resolve",
    "resolve_source",
    "terminal_progress",
]


def resolve_source(source: str) -> Path:
    """A local path holding the seal ``source`` names (remote seals are fetched into the
    cache first). Prefer ``resolve``, which also returns the checked ``Seal``."""
    from modelseal.sources.locations import LocalSource

    location = parse_source(source)
    if isinstance(location, LocalSource):
        if not location.path.exists():
            from modelseal.errors import SourceError

            raise SourceError(f"{source}: no seal there (no such file or folder)")
        return location.path
    return resolve(source).root
