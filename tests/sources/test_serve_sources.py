"""`modelseal serve s3://...` for real: through a faulty network, two at once, killed
mid-download. The servers, the S3 server and the proxy are real processes or sockets."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

from modelseal import open_seal
from modelseal.golden.store import load_golden
from modelseal.sources import resolve
from modelseal.sources.publish import push
from tests.cli_process import run_modelseal
from tests.serving.server import RunningServer
from tests.sources.conftest import SECRET_KEY
from tests.sources.processes import launch, log_records, wait_for_log, wait_ready
from tests.sources.servers import Faults, FaultyProxy, MotoServer

pytestmark = pytest.mark.slow
CHUNK = 256 << 10


def _proxy(moto: MotoServer, faults: Faults, proxies: list[FaultyProxy]) -> FaultyProxy:
    upstream = urlsplit(moto.url)
    proxy = FaultyProxy((upstream.hostname or "", upstream.port or 0), faults).start()
    proxies.append(proxy)
    return proxy


def _assert_serves_golden(server: RunningServer, seal: Path) -> None:
    """The server answers the golden inputs as the seal recorded (under its tolerance)."""
    result = run_modelseal("verify", str(seal), "--url", server.url)
    assert result.returncode == 0, result.stdout + result.stderr


def _cache_entries(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "seals").iterdir() if p.is_dir())


def test_serve_from_s3_survives_resets_and_cut_bodies_and_never_shows_the_secret(
    demo_seal_path: Path,
    bucket: str,
    s3_env: dict[str, str],
    moto: MotoServer,
    tmp_path: Path,
    servers: list[RunningServer],
    proxies: list[FaultyProxy],
) -> None:
    pushed = push(demo_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    proxy = _proxy(moto, Faults(reset_first=2, cut=2, cut_after=20_000), proxies)
    server = launch(pushed.uri, tmp_path / "logs", {**s3_env, "MODELSEAL_S3_ENDPOINT": proxy.url})
    servers.append(server)
    wait_ready(server)

    golden = load_golden(demo_seal_path / "golden.npz")
    rows = golden.inputs["input"]
    answer = httpx.post(f"{server.url}/predict", json={"instances": rows.tolist()}).json()
    np.testing.assert_array_equal(answer["predictions"]["label"], golden.outputs["label"])
    documents = {
        path: httpx.get(server.url + path).text
        for path in ("/seal", "/health", "/metrics", "/v2/health/ready", "/v2/models/digits")
    }
    assert pushed.uri in documents["/seal"]

    retries = [
        r for r in log_records(server) if r["level"] == "warning" and "retry" in r["message"]
    ]
    assert len(retries) == 4, server.logs()
    assert {r["attempt"] for r in retries} == {1, 2}
    cli = run_modelseal("verify", pushed.uri, extra_env=s3_env)
    assert cli.returncode == 0, cli.stderr
    missing = run_modelseal("verify", f"s3://{bucket}/absent.seal.tar", extra_env=s3_env)
    assert missing.returncode == 2
    outputs = [server.logs(), *documents.values(), cli.stdout, cli.stderr, missing.stderr]
    assert not [text for text in outputs if SECRET_KEY in text]


def test_two_servers_starting_at_once_share_one_download_and_one_cache_entry(
    mlp_seal_path: Path,
    bucket: str,
    s3_env: dict[str, str],
    moto: MotoServer,
    tmp_path: Path,
    servers: list[RunningServer],
    proxies: list[FaultyProxy],
) -> None:
    pushed = push(mlp_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    proxy = _proxy(moto, Faults(pause_after=1 << 20), proxies)
    small_chunks = {**s3_env, "MODELSEAL_DOWNLOAD_CHUNK_BYTES": str(CHUNK)}
    first = launch(pushed.uri, tmp_path / "a", {**small_chunks, "MODELSEAL_S3_ENDPOINT": proxy.url})
    servers.append(first)
    assert proxy.paused.wait(120), first.logs()  # the first is mid-download, holding the lock
    second = launch(pushed.uri, tmp_path / "b", small_chunks)
    servers.append(second)
    wait_for_log(second, "another process is fetching")
    proxy.release()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(wait_ready, [first, second]))

    for server in (first, second):
        _assert_serves_golden(server, mlp_seal_path)
    assert "fetched and checked" in first.logs()
    assert "found in the cache" in second.logs()
    assert "fetched and checked" not in second.logs()
    cache = Path(s3_env["MODELSEAL_CACHE_DIR"])
    assert _cache_entries(cache) == [pushed.digest]
    assert open_seal(cache / "seals" / pushed.digest).digest == pushed.digest


def _kill_mid_download(
    pushed_uri: str,
    moto: MotoServer,
    env: dict[str, str],
    log_dir: Path,
    proxies: list[FaultyProxy],
) -> Path:
    """Start a server, SIGKILL it once part of the archive has arrived; the partial file."""
    proxy = _proxy(moto, Faults(pause_after=1_200_000), proxies)
    victim = launch(pushed_uri, log_dir, {**env, "MODELSEAL_S3_ENDPOINT": proxy.url})
    try:
        assert proxy.paused.wait(120), victim.logs()
        state = _wait_for_state(Path(env["MODELSEAL_CACHE_DIR"]), victim)
    finally:
        os.killpg(victim.process.pid, signal.SIGKILL)
        victim.process.wait(30)
    proxy.release()
    return state


def _wait_for_state(cache: Path, server: RunningServer) -> Path:
    """The partial's state file, once it records a whole chunk."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for state in (cache / "downloads").glob("*/archive.part.state"):
            if len(state.read_text().splitlines()) > 1:
                return state
        time.sleep(0.05)
    raise AssertionError(f"no chunk recorded:\n{server.logs()}")


def test_a_server_killed_mid_download_leaves_a_partial_that_is_checked_not_trusted(
    mlp_seal_path: Path,
    bucket: str,
    s3_env: dict[str, str],
    moto: MotoServer,
    tmp_path: Path,
    servers: list[RunningServer],
    proxies: list[FaultyProxy],
) -> None:
    pushed = push(mlp_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    env = {
        **s3_env,
        "MODELSEAL_DOWNLOAD_CHUNK_BYTES": str(CHUNK),
        "MODELSEAL_DOWNLOAD_WORKERS": "2",
    }
    state = _kill_mid_download(pushed.uri, moto, env, tmp_path / "killed", proxies)
    part = state.with_name("archive.part")
    kept = int(state.read_text().splitlines()[1])
    # Damage a byte the state says arrived whole (in the weights' data, which fill all but
    # the first 20 kB of the archive): a resumed download must not trust it.
    offset = kept * CHUNK + CHUNK // 2
    with part.open("r+b") as damaged:
        damaged.seek(offset)
        byte = damaged.read(1)
        damaged.seek(offset)
        damaged.write(bytes([byte[0] ^ 0xFF]))

    server = launch(pushed.uri, tmp_path / "restarted", env)
    servers.append(server)
    wait_ready(server)
    _assert_serves_golden(server, mlp_seal_path)
    logs = server.logs()
    assert "resuming a partial download" in logs
    assert "failed its check" in logs and "downloading it again from the start" in logs
    cache = Path(s3_env["MODELSEAL_CACHE_DIR"])
    assert _cache_entries(cache) == [pushed.digest]
    assert not part.exists()


def test_a_fetch_killed_mid_download_resumes_from_the_chunks_that_arrived(
    mlp_seal_path: Path,
    bucket: str,
    s3_env: dict[str, str],
    moto: MotoServer,
    tmp_path: Path,
    proxies: list[FaultyProxy],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pushed = push(mlp_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    env = {
        **s3_env,
        "MODELSEAL_DOWNLOAD_CHUNK_BYTES": str(CHUNK),
        "MODELSEAL_DOWNLOAD_WORKERS": "2",
    }
    state = _kill_mid_download(pushed.uri, moto, env, tmp_path / "killed", proxies)
    kept = len(state.read_text().splitlines()) - 1
    counting = _proxy(moto, Faults(), proxies)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MODELSEAL_S3_ENDPOINT", counting.url)
    seal = resolve(pushed.uri, progress=lambda _: None)
    assert seal.digest == pushed.digest
    # Only the head (read again to check the manifest) and the missing chunks travel again.
    assert counting.forwarded < pushed.bytes - kept * CHUNK + (256 << 10) + (64 << 10)
