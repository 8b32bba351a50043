"""s3:// sources against a real S3-protocol server (moto) on loopback."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from modelseal import IntegrityError, SourceError, open_seal, pack
from modelseal.runtimes.numpy_function import NumpyFunction
from modelseal.seal.archive import create_seal_archive
from modelseal.sources import SealCache, resolve
from modelseal.sources.publish import push
from tests.cli_process import run_modelseal
from tests.sources.conftest import MLP_FUNCTION, client


def _upload_folder(seal: Path, bucket: str, prefix: str) -> None:
    for path in sorted(seal.rglob("*")):
        if path.is_file():
            client().upload_file(str(path), bucket, prefix + path.relative_to(seal).as_posix())


def _cached_digests(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "seals").glob("*") if p.is_dir())


def _leftovers(cache: Path) -> list[str]:
    """Anything of a download left behind: partial files, staging folders."""
    places = [cache / "downloads", cache / "tmp"]
    return sorted(str(p) for place in places if place.exists() for p in place.rglob("*"))


def _one_byte_changed(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1 :]


def test_a_pushed_seal_resolves_and_two_sources_of_it_share_one_copy(
    demo_seal_path: Path, bucket: str, s3_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    pushed = push(demo_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    assert pushed.uri == f"s3://{bucket}/digits/1.0.0/digits-1.0.0.seal.tar"
    seal = resolve(f"s3://{bucket}/digits/1.0.0/", progress=lambda _: None)
    original = open_seal(demo_seal_path)
    assert seal.digest == original.digest == pushed.digest
    assert seal.source == f"s3://{bucket}/digits/1.0.0/"
    for check in original.file_checks:
        assert (seal.root / check.path).read_bytes() == (demo_seal_path / check.path).read_bytes()

    _upload_folder(demo_seal_path, bucket, "as-folder/")
    with caplog.at_level(logging.INFO, logger="modelseal.sources"):
        again = resolve(f"s3://{bucket}/as-folder/", progress=lambda _: None)
    assert again.root == seal.root
    assert "found in the cache" in caplog.text
    cache = Path(s3_env["MODELSEAL_CACHE_DIR"])
    assert _cached_digests(cache) == [original.digest]
    assert _leftovers(cache) == []


def test_a_seal_folder_under_a_prefix_resolves(
    mlp_seal_path: Path, bucket: str, s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELSEAL_DOWNLOAD_CHUNK_BYTES", str(256 << 10))
    _upload_folder(mlp_seal_path, bucket, "models/mlp/2/")
    seal = resolve(f"s3://{bucket}/models/mlp/2", progress=lambda _: None)
    assert seal.digest == open_seal(mlp_seal_path).digest
    assert all(check.ok for check in seal.file_checks)
    weights = "model/weights.npz"
    assert (seal.root / weights).read_bytes() == (mlp_seal_path / weights).read_bytes()


@pytest.mark.parametrize("layout", ["archive", "folder"])
def test_a_corrupted_object_is_refused_naming_the_file_and_nothing_is_cached(
    mlp_seal_path: Path, bucket: str, s3_env: dict[str, str], tmp_path: Path, layout: str
) -> None:
    weights = "model/weights.npz"
    if layout == "archive":
        archive = create_seal_archive(mlp_seal_path, tmp_path / "mlp.seal.tar")
        data = archive.read_bytes()
        offset = data.index((mlp_seal_path / weights).read_bytes()[:4096]) + 100_000
        key = "mlp.seal.tar"
        client().put_object(Bucket=bucket, Key=key, Body=_one_byte_changed(data, offset))
    else:
        _upload_folder(mlp_seal_path, bucket, "mlp/")
        data = (mlp_seal_path / weights).read_bytes()
        key = "mlp/"
        client().put_object(
            Bucket=bucket, Key=f"mlp/{weights}", Body=_one_byte_changed(data, len(data) // 2)
        )
    with pytest.raises(IntegrityError, match=f"{weights}: sha256 is [0-9a-f]{{64}}, manifest says"):
        resolve(f"s3://{bucket}/{key}", progress=lambda _: None)
    cache = Path(s3_env["MODELSEAL_CACHE_DIR"])
    assert _cached_digests(cache) == []
    assert _leftovers(cache) == []


def test_a_missing_key_and_a_missing_bucket_fail_at_once(
    bucket: str, s3_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(SourceError, match=rf"no object s3://{bucket}/absent.seal.tar") as missing:
        resolve(f"s3://{bucket}/absent.seal.tar")
    assert "modelseal push" in str(missing.value)
    with pytest.raises(SourceError, match="s3://no-such-bucket-here: no such bucket"):
        resolve("s3://no-such-bucket-here/x.seal.tar")
    assert "retry" not in caplog.text


def test_a_pinned_digest_is_checked_from_the_manifest_before_the_download(
    mlp_seal_path: Path, bucket: str, s3_env: dict[str, str]
) -> None:
    pushed = push(mlp_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    wrong = "sha256:" + "ab" * 32
    with pytest.raises(IntegrityError) as refused:
        resolve(pushed.uri, wrong, progress=lambda _: None)
    assert f"sha256:{pushed.digest}" in str(refused.value)
    assert wrong in str(refused.value)
    cache = Path(s3_env["MODELSEAL_CACHE_DIR"])
    assert not (cache / "downloads").exists() or not any((cache / "downloads").iterdir())
    pinned = resolve(pushed.uri, f"sha256:{pushed.digest}", progress=lambda _: None)
    assert pinned.digest == pushed.digest


def test_an_archive_made_by_hand_with_the_manifest_last_still_resolves(
    demo_seal_path: Path, bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    archive = tmp_path / "by-hand.tar.gz"
    names = sorted(p.name for p in demo_seal_path.iterdir())
    subprocess.run(["tar", "czf", str(archive), "-C", str(demo_seal_path), *names], check=True)
    with tarfile.open(archive) as tar:
        assert tar.getnames()[-1] == "seal.json"
    client().upload_file(str(archive), bucket, "by-hand.tar.gz")
    seal = resolve(f"s3://{bucket}/by-hand.tar.gz", progress=lambda _: None)
    assert seal.digest == open_seal(demo_seal_path).digest


def test_a_prefix_with_two_archives_asks_which(
    demo_seal_path: Path, bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    archive = create_seal_archive(demo_seal_path, tmp_path / "a.seal.tar")
    for key in ("two/a.seal.tar", "two/b.seal.tar"):
        client().upload_file(str(archive), bucket, key)
    with pytest.raises(SourceError, match=r"several archives \(a.seal.tar, b.seal.tar\)"):
        resolve(f"s3://{bucket}/two/")


def test_the_model_source_convention_reads_the_bucket_and_the_layout(
    demo_seal_path: Path, bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    pushed = run_modelseal("push", str(demo_seal_path), f"s3://{bucket}/team/", extra_env=s3_env)
    assert pushed.returncode == 0, pushed.stderr
    assert f"pushed s3://{bucket}/team/digits/1.0.0/digits-1.0.0.seal.tar" in pushed.stdout
    convention = {
        "MODEL_SOURCE": "s3",
        "MODEL_S3_BUCKET": bucket,
        "MODEL_S3_PREFIX": "team",
        "MODEL_NAME": "digits",
        "MODEL_VERSION": "1.0.0",
    }
    result = run_modelseal("inspect", "s3", "--json", extra_env={**s3_env, **convention})
    assert result.returncode == 0, result.stderr
    assert f"s3://{bucket}/team/digits/1.0.0/" in result.stdout


def test_a_full_cache_evicts_the_least_recently_used_seal_but_not_the_one_in_use(
    demo_seal_path: Path, mlp_seal_path: Path, bucket: str, s3_env: dict[str, str]
) -> None:
    first = push(demo_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    second = push(mlp_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    cache_dir = Path(s3_env["MODELSEAL_CACHE_DIR"])
    # One process fills the cache with the first seal and keeps using it (by its lock):
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_SEAL, first.uri], env={**s3_env}, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == first.digest.encode()
        small = SealCache(cache_dir, max_bytes=1)
        resolve(second.uri, cache=small, progress=lambda _: None)
        assert _cached_digests(cache_dir) == sorted([first.digest, second.digest])
    finally:
        holder.kill()
        holder.wait()
    third = SealCache(cache_dir, max_bytes=1)
    assert third.evict() == [first.digest]
    assert _cached_digests(cache_dir) == [second.digest]


_HOLD_SEAL = """
import sys, time
from modelseal.sources import resolve
print(resolve(sys.argv[1], progress=lambda _: None).digest, flush=True)
time.sleep(600)
"""


def test_a_large_seal_is_pushed_in_parts_by_the_command(
    bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    """Over 64 MiB, `modelseal push` uploads in parts (the ETag of a multipart object ends
    in -PARTS); the archive keeps the seal's files and resolves to the same digest."""
    weights = np.random.default_rng(3).standard_normal((16, 1_200_000), dtype=np.float32)
    sealed = pack(
        NumpyFunction(source=MLP_FUNCTION, weights={"a": weights}),
        runtime="numpy", name="wide", version="1", golden=np.ones((2, 16), np.float32),
        output=tmp_path / "wide.seal",
    )  # fmt: skip
    result = run_modelseal("push", str(sealed.root), f"s3://{bucket}/", "--json", extra_env=s3_env)
    assert result.returncode == 0, result.stderr
    pushed = json.loads(result.stdout)
    assert pushed["uri"] == f"s3://{bucket}/wide/1/wide-1.seal.tar"
    assert pushed["bytes"] > 64 << 20
    head = client().head_object(Bucket=bucket, Key="wide/1/wide-1.seal.tar")
    assert head["ETag"].strip('"').endswith("-2")
    assert head["Metadata"]["modelseal-digest"] == sealed.digest
    assert resolve(pushed["uri"], progress=lambda _: None).digest == sealed.digest


@pytest.mark.parametrize(
    ("module", "source", "extra"),
    [("boto3", "s3://bucket/m.seal.tar", "s3"), ("mlflow", "models:/m/1", "mlflow")],
)
def test_a_missing_extra_is_named(module: str, source: str, extra: str) -> None:
    """Without the extra's package, the source fails with the pip command that adds it."""
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from modelseal.cli import run\n"
        f"sys.exit(run(['verify', {source!r}]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False,
        env={**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"pip install 'modelseal[{extra}]'" in result.stderr
