"""``s3://bucket/key``: an archive object, or a prefix holding a seal folder (or one archive).

boto3 is imported only here and only when an ``s3://`` source is used (extra
``modelseal[s3]``). Endpoint, region and credentials come from the standard AWS variables,
profiles and instance roles, plus ``MODELSEAL_S3_ENDPOINT`` for S3-compatible stores. botocore
does not retry on its own here: every retry goes through ``Retrier``, so it is logged and
bounded by one deadline.
"""

from __future__ import annotations

import http.client
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelseal.errors import SourceError
from modelseal.seal.manifest import MANIFEST_FILE
from modelseal.sources.download import ObjectInfo
from modelseal.sources.locations import ARCHIVE_SUFFIXES, S3Source
from modelseal.sources.redact import redact
from modelseal.sources.retry import Retrier, TransientFetchError

PIECE_BYTES = 256 << 10
MANIFEST_LIMIT = 16 << 20
TRANSIENT_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling",
     "ThrottlingException", "RequestTimeTooSkewed", "OperationAborted"}
)  # fmt: skip
DENIED_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
     "InvalidToken", "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem"}
)  # fmt: skip


def s3_client(environ: Mapping[str, str] | None = None, pool: int = 16) -> Any:
    """A boto3 S3 client configured from the environment, without botocore's own retries."""
    values = os.environ if environ is None else environ
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise SourceError(
            "s3:// sources need boto3, which is not installed: pip install 'modelseal[s3]'"
        ) from None
    endpoint = values.get("MODELSEAL_S3_ENDPOINT") or None
    session = boto3.session.Session()
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=pool,
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": "path"} if endpoint else None,
    )
    return session.client(
        "s3",
        endpoint_url=endpoint,
        region_name=session.region_name or "us-east-1",
        config=config,
    )


@dataclass(frozen=True)
class S3Object:
    """One object, read by byte ranges (a ``RemoteObject``)."""

    client: Any
    bucket: str
    key: str

    @property
    def description(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def read_range(self, start: int, end: int, info: ObjectInfo) -> Iterator[bytes]:
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if info.ranged:
            request["Range"] = f"bytes={start}-{end - 1}"
        if info.identity:
            request["IfMatch"] = info.identity
        with translated_errors(self.description, "downloading"):
            response = self.client.get_object(**request)
            with closing(response["Body"]) as body:
                while piece := body.read(PIECE_BYTES):
                    yield piece

    def read_all(self, limit: int) -> bytes:
        """The whole (small) object, refusing one larger than ``limit``."""
        with translated_errors(self.description, "reading"):
            response = self.client.get_object(Bucket=self.bucket, Key=self.key)
            with closing(response["Body"]) as body:
                data: bytes = body.read(limit + 1)
        if len(data) > limit:
            raise SourceError(f"{self.description}: larger than {limit} bytes; not a manifest")
        return data


@dataclass(frozen=True)
class S3Archive:
    object: S3Object
    info: ObjectInfo


@dataclass(frozen=True)
class S3Folder:
    """A seal folder under a prefix: each object's size and ETag, by path under the prefix."""

    client: Any
    bucket: str
    prefix: str
    objects: dict[str, ObjectInfo]

    @property
    def description(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def object(self, relative: str) -> S3Object:
        return S3Object(self.client, self.bucket, self.prefix + relative)


def locate(client: Any, source: S3Source, retrier: Retrier) -> S3Archive | S3Folder:
    """Whether ``source`` is an archive object or a seal folder; fails at once if neither."""
    if not source.is_prefix:
        archive = S3Object(client, source.bucket, source.key)
        info = retrier.call(lambda: _head(archive), "looking up")
        if info is not None:
            return S3Archive(archive, info)
    prefix = source.key if source.is_prefix else source.key + "/"
    found = retrier.call(lambda: _locate_prefix(client, source.bucket, prefix), "listing")
    if found is not None:
        return found
    retrier.call(lambda: _require_bucket(client, source.bucket), "looking up")
    listed = "" if source.is_prefix else f"no object s3://{source.bucket}/{source.key}, and "
    raise SourceError(
        f"{source.display}: {listed}no seal under s3://{source.bucket}/{prefix} (neither "
        f"{MANIFEST_FILE} nor a .seal.tar[.gz] archive); check the key, or push the seal "
        "there with `modelseal push`"
    )


def _head(target: S3Object) -> ObjectInfo | None:
    try:
        response = target.client.head_object(Bucket=target.bucket, Key=target.key)
    except Exception as exc:
        if _status(exc) == 404:
            return None
        raise s3_error(exc, target.description, "looking up") from exc
    return ObjectInfo(int(response["ContentLength"]), str(response.get("ETag", "")))


def _locate_prefix(client: Any, bucket: str, prefix: str) -> S3Archive | S3Folder | None:
    objects = _list(client, bucket, prefix)
    if MANIFEST_FILE in objects:
        return S3Folder(client, bucket, prefix, objects)
    archives = sorted(
        name for name in objects if "/" not in name and name.endswith(ARCHIVE_SUFFIXES)
    )
    if not archives:
        return None
    if len(archives) > 1:
        raise SourceError(
            f"s3://{bucket}/{prefix}: holds several archives ({', '.join(archives)}); "
            "name the one to use: s3://BUCKET/KEY"
        )
    return S3Archive(S3Object(client, bucket, prefix + archives[0]), objects[archives[0]])


def _list(client: Any, bucket: str, prefix: str) -> dict[str, ObjectInfo]:
    objects: dict[str, ObjectInfo] = {}
    with translated_errors(f"s3://{bucket}/{prefix}", "listing"):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(prefix) :]
                objects[relative] = ObjectInfo(int(item["Size"]), str(item.get("ETag", "")))
    return objects


def _require_bucket(client: Any, bucket: str) -> None:
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as exc:
        if _status(exc) == 404:
            raise SourceError(
                f"s3://{bucket}: no such bucket; check the bucket name and the endpoint "
                "(MODELSEAL_S3_ENDPOINT, AWS_ENDPOINT_URL)"
            ) from None
        raise s3_error(exc, f"s3://{bucket}", "looking up") from exc


@contextmanager
def translated_errors(what: str, doing: str) -> Iterator[None]:
    """Re-raise boto's errors as ``TransientFetchError`` or ``SourceError``."""
    try:
        yield
    except Exception as exc:
        error = s3_error(exc, what, doing)
        if error is exc:
            raise
        raise error from exc


def s3_error(error: Exception, what: str, doing: str) -> Exception:
    """``TransientFetchError`` for what a retry may fix, else a clear ``SourceError``."""
    from botocore import exceptions as boto

    if isinstance(error, (TransientFetchError, SourceError)):
        return error
    if isinstance(error, boto.ClientError):
        return _client_error(error, what, doing)
    if isinstance(error, (boto.NoCredentialsError, boto.PartialCredentialsError)):
        return SourceError(
            f"{what}: no usable AWS credentials ({error}); set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or give the pod an IAM role"
        )
    transient: tuple[type[BaseException], ...] = (
        boto.HTTPClientError,  # connection closed or reset, read and connect timeouts
        boto.EndpointConnectionError,
        boto.IncompleteReadError,
        boto.ResponseStreamingError,
        ConnectionError,
        TimeoutError,
        http.client.HTTPException,  # RemoteDisconnected, IncompleteRead
    )
    if isinstance(error, transient) or _is_urllib3_error(error):
        return TransientFetchError(f"{type(error).__name__}: {redact(str(error))}")
    if isinstance(error, boto.BotoCoreError):
        return SourceError(f"{what}: {doing} failed: {redact(str(error))}")
    return error


def _client_error(error: Any, what: str, doing: str) -> Exception:
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = _status(error)
    detail = f"HTTP {status} {code}" if code and code != str(status) else f"HTTP {status}"
    if status >= 500 or status in (408, 429) or code in TRANSIENT_CODES:
        return TransientFetchError(f"{detail} from the server")
    if code == "NoSuchBucket":
        bucket = error.response.get("Error", {}).get("BucketName") or what
        return SourceError(
            f"s3://{bucket}: no such bucket ({detail}); check the bucket name and the "
            "endpoint (MODELSEAL_S3_ENDPOINT, AWS_ENDPOINT_URL)"
        )
    if status == 404 or code == "NoSuchKey":
        return SourceError(f"{what}: no such object ({detail}); check the key")
    if status == 403 or code in DENIED_CODES:
        return SourceError(
            f"{what}: access denied while {doing} ({detail}); check the credentials "
            "(AWS_ACCESS_KEY_ID, AWS_PROFILE) and the bucket policy"
        )
    if status == 412:
        return SourceError(
            f"{what}: the object changed while it was being downloaded ({detail}); start again"
        )
    return SourceError(f"{what}: {doing} failed ({detail}: {redact(str(error))})")


def _status(error: Exception) -> int:
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return 0
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _is_urllib3_error(error: Exception) -> bool:
    try:
        from urllib3.exceptions import HTTPError
    except ImportError:  # pragma: no cover - urllib3 comes with botocore
        return False
    return isinstance(error, HTTPError)


def upload(
    client: Any,
    archive: Path,
    bucket: str,
    key: str,
    metadata: dict[str, str],
    on_bytes: Callable[[int], None],
) -> None:
    """Upload ``archive`` (multipart in parallel when large); one try of the caller's."""
    from boto3.exceptions import S3UploadFailedError
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(
        multipart_threshold=64 << 20, multipart_chunksize=64 << 20, max_concurrency=8
    )
    with translated_errors(f"s3://{bucket}/{key}", "uploading"):
        try:
            client.upload_file(
                str(archive), bucket, key,
                ExtraArgs={"Metadata": metadata}, Config=config, Callback=on_bytes,
            )  # fmt: skip
        except S3UploadFailedError as exc:
            cause = exc.__cause__ or exc.__context__
            raise cause if isinstance(cause, Exception) else exc from None
