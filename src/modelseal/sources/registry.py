"""``models:/NAME/VERSION`` and ``models:/NAME@ALIAS``: a seal registered in MLflow's registry.

The registered version's artifact is the seal folder (``modelseal register`` logs it to a
run and registers ``runs:/RUN/seal``). mlflow is imported only here (extra
``modelseal[mlflow]``); the tracking server comes from ``MLFLOW_TRACKING_URI`` and its
credentials from MLflow's own variables. MLflow downloads the files itself, so they are
hashed once it has written them, before the seal is kept.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelseal.errors import SourceError
from modelseal.seal.archive import SIGNATURES_DIR, ExtractedSeal
from modelseal.seal.digests import check_files, raise_on_failures
from modelseal.seal.manifest import MANIFEST_FILE, SealManifest, parse_manifest
from modelseal.sources.fetch import FetchContext
from modelseal.sources.locations import RegistrySource
from modelseal.sources.redact import redact
from modelseal.sources.retry import Retrier, TransientFetchError

log = logging.getLogger("modelseal.sources")
ARTIFACT_PATH = "seal"
DIGEST_TAG = "modelseal.digest"
POLL_S = 0.5


def mlflow_client(tracking_uri: str | None = None) -> Any:
    """A client of the tracking server ``tracking_uri`` (else ``MLFLOW_TRACKING_URI``)."""
    if not (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")):
        raise SourceError(
            "no MLflow tracking server given: set MLFLOW_TRACKING_URI (or --tracking-uri) "
            "to the server that holds the registry"
        )
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise SourceError(
            "models:/ sources need mlflow, which is not installed: pip install 'modelseal[mlflow]'"
        ) from None
    return MlflowClient(tracking_uri=tracking_uri)


@dataclass
class RegistryFetcher:
    """Fetches one registered model version (resolving an alias to its version first)."""

    source: RegistrySource
    client: Any
    _version: str | None = None
    _manifest_text: bytes | None = None

    @property
    def description(self) -> str:
        return self.source.display

    @property
    def key(self) -> str:
        version = self._version or self.source.version or self.source.alias or ""
        identity = f"{self.client.tracking_uri}|{self.source.name}|{version}"
        return "mlflow-" + hashlib.sha256(identity.encode()).hexdigest()[:32]

    def probe(self, retrier: Retrier) -> SealManifest:
        version = retrier.call(self._resolve_version, "looking up")
        uri = retrier.call(lambda: self._download_uri(version), "looking up")
        with tempfile.TemporaryDirectory(prefix="modelseal-registry-") as folder:
            path = retrier.call(
                lambda: _download(f"{uri}/{MANIFEST_FILE}", Path(folder), self.description),
                "reading",
            )
            self._manifest_text = Path(path).read_bytes()
        return parse_manifest(
            self._manifest_text.decode("utf-8"), f"{self.description}:{MANIFEST_FILE}"
        )

    def fetch(self, work: Path, staging: Path, context: FetchContext) -> ExtractedSeal:
        if self._manifest_text is None:
            self.probe(context.retrier)
        assert self._manifest_text is not None
        manifest = parse_manifest(self._manifest_text.decode("utf-8"), self.description)
        context.on_manifest(manifest)
        version = self._version or ""
        uri = context.retrier.call(lambda: self._download_uri(version), "looking up")
        context.meter.start(sum(entry.size for entry in manifest.files.values()))
        with _watch_folder(work, context):
            root = context.retrier.call(lambda: self._download_all(uri, work), "downloading")
        checks = [
            check
            for check in check_files(root, manifest.files)
            if check.ok
            or not check.path.startswith(f"{SIGNATURES_DIR}/")
            or check.path in manifest.files
        ]
        raise_on_failures(checks, Path(self.description))
        signatures = tuple(
            sorted(p.relative_to(root).as_posix() for p in (root / SIGNATURES_DIR).glob("*"))
        )
        return ExtractedSeal(root, manifest, tuple(c for c in checks if c.ok), signatures)

    def _download_all(self, uri: str, work: Path) -> Path:
        """Download the version's folder; where MLflow put it (it may add a subfolder)."""
        target = work / "download"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        return Path(_download(uri, target, self.description))

    def _resolve_version(self) -> str:
        with _registry_errors(self.description, self.client.tracking_uri):
            if self.source.alias:
                found = self.client.get_model_version_by_alias(self.source.name, self.source.alias)
            elif self.source.version == "latest":
                found = max(
                    self.client.search_model_versions(f"name='{self.source.name}'"),
                    key=lambda candidate: int(candidate.version),
                    default=None,
                )
                if found is None:
                    raise SourceError(f"{self.description}: the model has no versions")
            else:
                found = self.client.get_model_version(self.source.name, self.source.version)
        self._version = str(found.version)
        if self.source.alias or self.source.version == "latest":
            log.info(
                "%s is version %s", self.description, self._version,
                extra={"source": self.description, "model_version": self._version},
            )  # fmt: skip
        return self._version

    def _download_uri(self, version: str) -> str:
        with _registry_errors(self.description, self.client.tracking_uri):
            uri: str = self.client.get_model_version_download_uri(self.source.name, version)
        return uri.rstrip("/")


def _download(uri: str, destination: Path, what: str) -> str:
    import mlflow.artifacts

    with _registry_errors(what, None):
        path: str = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(destination))
    return path


@contextmanager
def _registry_errors(what: str, tracking_uri: str | None) -> Iterator[None]:
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        status = int(exc.get_http_status_code())  # type: ignore[no-untyped-call]
        message = redact(exc.message if hasattr(exc, "message") else str(exc))
        if status >= 500 or status in (408, 429):
            raise TransientFetchError(f"HTTP {status} from MLflow: {message}") from None
        where = f" at {redact(tracking_uri)}" if tracking_uri else ""
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST" or status == 404:
            raise SourceError(
                f"{what}: not found in the MLflow registry{where} ({message}); check the name "
                "and version, and MLFLOW_TRACKING_URI"
            ) from None
        raise SourceError(f"{what}: the MLflow registry{where} refused: {message}") from None
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise TransientFetchError(f"{type(exc).__name__}: {redact(str(exc))}") from None


@contextmanager
def _watch_folder(root: Path, context: FetchContext) -> Iterator[None]:
    """Report MLflow's download progress by polling how much it has written."""
    stop = threading.Event()

    def poll() -> None:
        reported = 0
        while not stop.wait(POLL_S):
            written = _bytes_under(root)
            context.meter.add(written - reported)
            reported = written

    watcher = threading.Thread(target=poll, name="modelseal-registry-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def _bytes_under(root: Path) -> int:
    total = 0
    for item in root.rglob("*"):
        with suppress(OSError):
            total += item.stat().st_size if item.is_file() else 0
    return total
