"""The seal cache: keyed by digest, checked on every use, LRU-bounded, never trusting an
entry that was not completed, and used in place (never written) when read-only."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelseal import UsageError, open_seal
from modelseal.sources import SealCache, resolve
from modelseal.sources.cache import parse_max_bytes
from modelseal.sources.publish import push
from tests.sources.test_local import needs_read_only_mount, read_only


def _install(cache: SealCache, seal: Path) -> str:
    digest = open_seal(seal).digest
    staged = cache.root / "incoming"
    shutil.copytree(seal, staged)
    cache.install(staged, digest, str(seal))
    return digest


def test_an_entry_is_checked_on_every_use_and_fetched_again_if_it_changed(
    mlp_seal_path: Path, bucket: str, s3_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    pushed = push(mlp_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    seal = resolve(pushed.uri, progress=lambda _: None)
    weights = seal.root / "model" / "weights.npz"
    original = weights.read_bytes()
    weights.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
    again = resolve(pushed.uri, progress=lambda _: None)
    assert "failed its check" in caplog.text and "fetching it again" in caplog.text
    assert (again.root / "model" / "weights.npz").read_bytes() == original


def test_an_entry_without_its_completion_marker_is_not_trusted(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    cache = SealCache(tmp_path / "cache")
    digest = open_seal(demo_seal_path).digest
    # What a process killed between the rename and the marker leaves: a folder, no marker.
    shutil.copytree(demo_seal_path, cache.entry_path(digest))
    (cache.entry_path(digest) / "golden.npz").write_bytes(b"half written")
    assert cache.lookup(digest, "test") is None
    _install(cache, demo_seal_path)
    seal = cache.lookup(digest, "test")
    assert seal is not None and all(check.ok for check in seal.file_checks)


def test_least_recently_used_seals_go_first_and_never_one_in_use(
    demo_seal_path: Path, mlp_seal_path: Path, marker_seal_path: Path, tmp_path: Path
) -> None:
    cache = SealCache(tmp_path / "cache")
    digests = [_install(cache, seal) for seal in (demo_seal_path, mlp_seal_path, marker_seal_path)]
    for digest in digests:
        cache.release(digest)
    for age, digest in enumerate(reversed(digests)):  # demo used last, marker first
        marker = cache.root / "seals" / f"{digest}.json"
        os.utime(marker, (1_000_000 + age, 1_000_000 + age))
    sizes = {entry.digest: entry.size for entry in cache.entries()}
    in_use = os.open(cache.root / "locks" / f"{digests[2]}.use.lock", os.O_RDWR)
    fcntl.flock(in_use, fcntl.LOCK_SH)  # as another process using the marker seal would
    try:
        # Room for two: the in-use marker seal (least recently used) stays, the mlp goes.
        bounded = SealCache(cache.root, max_bytes=sizes[digests[0]] + sizes[digests[2]])
        assert bounded.evict() == [digests[1]]
    finally:
        os.close(in_use)
    assert SealCache(cache.root, max_bytes=sizes[digests[0]]).evict() == [digests[2]]
    assert [entry.digest for entry in cache.entries()] == [digests[0]]


def test_staging_left_by_a_dead_process_is_swept(demo_seal_path: Path, tmp_path: Path) -> None:
    cache = SealCache(tmp_path / "cache")
    script = (
        "import os, sys\nfrom pathlib import Path\nfrom modelseal.sources import SealCache\n"
        "with SealCache(Path(sys.argv[1])).staging() as folder:\n"
        "    (folder / 'half').write_bytes(b'x')\n    os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(cache.root)], check=False)
    assert len(list((cache.root / "tmp").glob("staging-*"))) == 2  # the folder and its lock
    with cache.staging() as mine:
        assert [p for p in (cache.root / "tmp").glob("staging-*") if p.is_dir()] == [mine]


@pytest.mark.parametrize(
    ("text", "expected"), [("2048", 2048), ("10G", 10 << 30), ("512MiB", 512 << 20), ("", None)]
)
def test_cache_sizes_read_as_people_write_them(text: str, expected: int | None) -> None:
    assert parse_max_bytes(text) == expected


def test_a_cache_size_that_is_not_one_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="cache size 'lots'"):
        parse_max_bytes("lots")


@needs_read_only_mount
def test_a_read_only_cache_is_used_in_place_and_never_written(
    demo_seal_path: Path, bucket: str, s3_env: dict[str, str]
) -> None:
    pushed = push(demo_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    cache = Path(s3_env["MODELSEAL_CACHE_DIR"])
    resolve(pushed.uri, progress=lambda _: None)
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("*")}
    fetch = [sys.executable, "-m", "modelseal", "fetch", pushed.uri, "--json"]
    environment = {**os.environ, **s3_env}
    result = subprocess.run(
        read_only(cache, *fetch), capture_output=True, text=True, env=environment, check=False
    )
    assert result.returncode == 0, result.stderr
    assert str(cache / "seals" / pushed.digest) in result.stdout
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*")} == before
    other = push(demo_seal_path, f"s3://{bucket}/other.seal.tar", progress=lambda _: None)
    shutil.rmtree(cache / "seals")
    (cache / "seals").mkdir()
    refused = subprocess.run(
        read_only(cache, *fetch[:-2], other.uri), capture_output=True, text=True,
        env=environment, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "is read-only and does not hold this seal" in refused.stderr
