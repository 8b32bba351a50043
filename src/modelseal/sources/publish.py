"""Publishing a seal: ``push`` to S3 as one archive, ``register`` in MLflow's registry.

Both check every file of the seal first, so nothing corrupt is published, and both keep the
seal's ``signatures/``. ``push`` writes ``seal.json`` first in the archive, so downloads can
check the digest pin and sizes before the rest arrives.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelseal.errors import SourceError, UsageError
from modelseal.seal.archive import create_seal_archive
from modelseal.seal.artifact import Seal, open_seal
from modelseal.sources.locations import ARCHIVE_SUFFIXES, S3Source, layout_prefix, parse_source
from modelseal.sources.progress import ProgressMeter, ProgressObserver, terminal_progress
from modelseal.sources.retry import Retrier, RetryPolicy

ARCHIVE_SUFFIX = ".seal.tar"


@dataclass(frozen=True)
class PushResult:
    uri: str
    digest: str
    bytes: int
    seconds: float


@dataclass(frozen=True)
class RegisterResult:
    name: str
    version: str
    alias: str | None
    digest: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def push(
    seal_path: str | os.PathLike[str],
    destination: str,
    *,
    progress: ProgressObserver | None = None,
    environ: Mapping[str, str] | None = None,
) -> PushResult:
    """Upload the seal as one archive to ``destination``: ``s3://BUCKET/KEY.seal.tar[.gz]``,
    or a bucket or ``PREFIX/`` under which it goes to ``NAME/VERSION/NAME-VERSION.seal.tar``."""
    from modelseal.sources.s3 import s3_client, upload

    seal = open_seal(Path(seal_path))
    target = _push_target(destination, seal, environ)
    client = s3_client(environ)
    retrier = Retrier(RetryPolicy.from_environment(environ), target.display)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="modelseal-push-") as work:
        archive = create_seal_archive(seal.root, Path(work) / Path(target.key).name)
        size = archive.stat().st_size
        metadata = {"modelseal-digest": seal.digest, "modelseal-name": seal.name}

        def attempt() -> None:
            meter = ProgressMeter(
                target.display, terminal_progress() if progress is None else progress
            )
            meter.start(size)
            upload(client, archive, target.bucket, target.key, metadata, meter.add)
            meter.finish()

        retrier.call(attempt, "uploading")
    return PushResult(target.display, seal.digest, size, time.monotonic() - started)


def register(
    seal_path: str | os.PathLike[str],
    name: str,
    *,
    alias: str | None = None,
    tracking_uri: str | None = None,
) -> RegisterResult:
    """Log the seal folder to an MLflow run and register it as a new version of ``name``."""
    from modelseal.sources.registry import mlflow_client

    seal = open_seal(Path(seal_path))
    client = mlflow_client(tracking_uri)
    # MLflow writes run links to stdout, which is for our --json: send them to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        return _register(seal, client, name, alias)


def _register(seal: Seal, client: Any, name: str, alias: str | None) -> RegisterResult:
    from mlflow.exceptions import MlflowException

    from modelseal.sources.registry import ARTIFACT_PATH, DIGEST_TAG

    try:
        experiment = client.get_experiment_by_name("modelseal")
        experiment_id = (
            experiment.experiment_id if experiment else client.create_experiment("modelseal")
        )
        tags = {DIGEST_TAG: seal.digest, "modelseal.name": seal.name}
        run = client.create_run(experiment_id, tags=tags, run_name=f"{seal.name}-{seal.version}")
        run_id = run.info.run_id
        client.log_artifacts(run_id, str(seal.root), artifact_path=ARTIFACT_PATH)
        client.set_terminated(run_id)
        _ensure_registered_model(client, name)
        version = client.create_model_version(
            name, source=f"runs:/{run_id}/{ARTIFACT_PATH}", run_id=run_id,
            tags={**tags, "modelseal.version": seal.version},
        )  # fmt: skip
        if alias:
            client.set_registered_model_alias(name, alias, version.version)
    except MlflowException as exc:
        raise SourceError(f"registering {seal.name} as {name!r} in MLflow failed: {exc}") from None
    return RegisterResult(name, str(version.version), alias, seal.digest, run_id)


def _ensure_registered_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
            raise


def _push_target(destination: str, seal: Seal, environ: Mapping[str, str] | None) -> S3Source:
    location = parse_source(destination, environ)
    if not isinstance(location, S3Source):
        raise UsageError(f"push {destination}: expected an s3:// destination")
    if location.key.endswith(ARCHIVE_SUFFIXES):
        return location
    if not location.is_prefix:
        raise UsageError(
            f"push {destination}: end the key in .seal.tar or .seal.tar.gz for an archive, "
            "or in / for the NAME/VERSION/ layout under a prefix"
        )
    folder = layout_prefix(seal.name, seal.version, location.key)
    return S3Source(location.bucket, f"{folder}{seal.name}-{seal.version}{ARCHIVE_SUFFIX}")
