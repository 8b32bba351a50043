"""What a SOURCE string names: a local path, an S3 object or prefix, a registry version, a URL.

Besides URIs, the widespread container convention is honoured: ``MODEL_SOURCE`` set to
``baked``, ``volume`` or ``s3`` (the serve command also reads it as its SOURCE), with
``MODEL_BAKED_PATH``, ``MODEL_VOLUME_PATH``, ``MODEL_S3_BUCKET`` and the layout
``[<MODEL_S3_PREFIX>]<MODEL_NAME>/<MODEL_VERSION>/``, the layout ``modelseal push`` writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from modelseal.errors import SourceError
from modelseal.sources.redact import display_url

CONVENTION_KEYWORDS = ("baked", "volume", "s3")
DEFAULT_BAKED_PATH = "/opt/modelseal/seal"
ARCHIVE_SUFFIXES = (".seal.tar", ".seal.tar.gz", ".seal.tgz", ".tar", ".tar.gz", ".tgz")


@dataclass(frozen=True)
class LocalSource:
    path: Path

    @property
    def display(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class S3Source:
    """An archive object, or (key empty or ending in ``/``) a prefix holding a seal."""

    bucket: str
    key: str

    @property
    def display(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")


@dataclass(frozen=True)
class RegistrySource:
    """A model version in the MLflow registry, by number or by alias."""

    name: str
    version: str | None = None
    alias: str | None = None

    @property
    def display(self) -> str:
        return (
            f"models:/{self.name}@{self.alias}"
            if self.alias
            else f"models:/{self.name}/{self.version}"
        )


@dataclass(frozen=True)
class HttpSource:
    url: str

    @property
    def display(self) -> str:
        return display_url(self.url)


SourceLocation = LocalSource | S3Source | RegistrySource | HttpSource


def parse_source(source: str, environ: Mapping[str, str] | None = None) -> SourceLocation:
    """The location ``source`` names (``baked``, ``volume``, ``s3``: see the module doc)."""
    values = os.environ if environ is None else environ
    if source in CONVENTION_KEYWORDS:
        return _convention(source, values)
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    if len(scheme) <= 1:  # no scheme, or a Windows drive letter
        return LocalSource(Path(source))
    if scheme == "file":
        return LocalSource(Path(unquote(parts.path)))
    if scheme == "s3":
        return _s3(source, parts.netloc, parts.path)
    if scheme == "models":
        return _registry(source, parts.netloc + parts.path)
    if scheme in ("https", "http"):
        if not parts.hostname:
            raise SourceError(f"{display_url(source)}: no host in the URL")
        return HttpSource(source)
    if scheme == "runs":
        raise SourceError(
            f"{source}: runs:/ URIs are not seal sources; register the seal "
            "(`modelseal register SEAL --name N`) and serve models:/N/VERSION"
        )
    raise SourceError(
        f"{display_url(source)}: unknown source scheme {scheme!r}; expected a path, file://, "
        "s3://, models:/, https:// or one of baked, volume, s3 (MODEL_SOURCE)"
    )


def layout_prefix(name: str, version: str, prefix: str = "") -> str:
    """Where a seal lives under a bucket or volume: ``[prefix/]name/version/``."""
    head = prefix.strip("/")
    return f"{head}/{name}/{version}/" if head else f"{name}/{version}/"


def _s3(source: str, bucket: str, path: str) -> S3Source:
    if not bucket:
        raise SourceError(f"{source}: no bucket; expected s3://BUCKET/KEY or s3://BUCKET/PREFIX/")
    return S3Source(bucket, unquote(path.lstrip("/")))


def _registry(source: str, path: str) -> RegistrySource:
    path = path.strip("/")
    if "@" in path:
        name, alias = path.rsplit("@", 1)
        if name and alias:
            return RegistrySource(name, alias=alias)
    elif "/" in path:
        name, version = path.rsplit("/", 1)
        if name and (version.isdigit() or version == "latest"):
            return RegistrySource(name, version=version)
    raise SourceError(
        f"{source}: expected models:/NAME/VERSION (a number or latest) or models:/NAME@ALIAS"
    )


def _convention(keyword: str, values: Mapping[str, str]) -> SourceLocation:
    if keyword == "baked":
        return LocalSource(Path(values.get("MODEL_BAKED_PATH") or DEFAULT_BAKED_PATH))
    if keyword == "volume":
        volume = _required(values, "MODEL_VOLUME_PATH", "MODEL_SOURCE=volume")
        name, version = values.get("MODEL_NAME"), values.get("MODEL_VERSION")
        if name and version:
            return LocalSource(Path(volume) / layout_prefix(name, version))
        return LocalSource(Path(volume))
    bucket = _required(values, "MODEL_S3_BUCKET", "MODEL_SOURCE=s3")
    if key := values.get("MODEL_S3_KEY"):
        return S3Source(bucket, key.lstrip("/"))
    name = _required(values, "MODEL_NAME", "MODEL_SOURCE=s3 without MODEL_S3_KEY")
    version = _required(values, "MODEL_VERSION", "MODEL_SOURCE=s3 without MODEL_S3_KEY")
    return S3Source(bucket, layout_prefix(name, version, values.get("MODEL_S3_PREFIX", "")))


def _required(values: Mapping[str, str], name: str, why: str) -> str:
    value = values.get(name)
    if not value:
        raise SourceError(f"{why} needs {name} to be set")
    return value
