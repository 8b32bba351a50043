"""`modelseal serve` of a remote seal binds first and fetches in the background (state
`fetching`), through a real S3-protocol server (moto) and a loopback proxy that forwards the
download only as fast as the test lets it."""

from __future__ import annotations

import asyncio
import json
import signal
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelseal import IntegrityError, SealError, SourceError
from modelseal.seal.archive import create_seal_archive
from modelseal.seal.trust import TrustPolicy
from modelseal.serving.app import create_app
from modelseal.serving.config import ServeConfig
from modelseal.serving.fetching import SealFetch
from modelseal.serving.repository import ModelRepository
from modelseal.serving.runner import preflight
from modelseal.sources import SealCache
from modelseal.sources.publish import push
from tests.cli_process import run_modelseal
from tests.serving.server import RunningServer, wait_until
from tests.sources.conftest import SECRET_KEY, client
from tests.sources.processes import launch, wait_for_log, wait_ready
from tests.sources.servers import Faults, FaultyProxy, MotoServer

pytestmark = pytest.mark.slow
CHUNK = 256 << 10
WEIGHTS = "model/weights.npz"
WAIT_S = 120.0


def _held_download(
    moto: MotoServer, s3_env: dict[str, str], proxies: list[FaultyProxy], pause_after: int
) -> tuple[FaultyProxy, dict[str, str]]:
    """A proxy that pauses the download after ``pause_after`` bytes, and the environment of a
    server fetching through it in small chunks."""
    upstream = urlsplit(moto.url)
    faults = Faults(pause_after=pause_after)
    proxy = FaultyProxy((upstream.hostname or "", upstream.port or 0), faults).start()
    proxies.append(proxy)
    env = {
        **s3_env,
        "MODELSEAL_S3_ENDPOINT": proxy.url,
        "MODELSEAL_DOWNLOAD_CHUNK_BYTES": str(CHUNK),
        "MODELSEAL_DOWNLOAD_WORKERS": "2",
    }
    return proxy, env


def _health(server: RunningServer) -> dict[str, Any] | None:
    try:
        body: dict[str, Any] = httpx.get(server.url + "/health", timeout=10).json()
    except httpx.TransportError:
        return None
    return body


def _downloading(server: RunningServer) -> dict[str, Any] | None:
    """The /health body once the server is fetching and the download itself has begun."""
    body = _health(server)
    if body is None or body["state"] != "fetching" or body["fetch"]["phase"] != "downloading":
        return None
    return body


def _cache_entries(cache: Path) -> list[str]:
    seals = cache / "seals"
    return sorted(p.name for p in seals.iterdir() if p.is_dir()) if seals.exists() else []


def _partial_chunks(cache: Path) -> int:
    """Whole chunks the partial download in ``cache`` records (0 when there is none)."""
    states = list((cache / "downloads").glob("*/archive.part.state"))
    return max((len(state.read_text().splitlines()) - 1 for state in states), default=0)


def _metric(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and (labels is None or sample.labels == labels):
                return float(sample.value)
    raise AssertionError(f"no sample {name} {labels or ''} in:\n{text}")


def _assert_serves_golden(server: RunningServer, seal: Path) -> None:
    """The server answers the golden inputs as the seal recorded (under its tolerance)."""
    result = run_modelseal("verify", str(seal), "--url", server.url)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_server_fetching_is_live_not_ready_shows_growing_progress_then_serves_golden(
    mlp_seal_path: Path,
    bucket: str,
    s3_env: dict[str, str],
    moto: MotoServer,
    tmp_path: Path,
    servers: list[RunningServer],
    proxies: list[FaultyProxy],
) -> None:
    pushed = push(mlp_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    proxy, env = _held_download(moto, s3_env, proxies, pause_after=400_000)
    server = launch(pushed.uri, tmp_path / "logs", env)
    servers.append(server)
    first = wait_until(lambda: _downloading(server), "the download to begin", WAIT_S)

    def grown() -> dict[str, Any] | None:
        body = _health(server)
        assert body is not None and body["state"] == "fetching", body
        if body["fetch"]["bytes_done"] > first["fetch"]["bytes_done"]:
            return body
        if proxy.paused.is_set():
            proxy.allow(16 << 10)  # the download goes on only as the test lets it
        return None

    later = wait_until(grown, "the bytes fetched to grow", WAIT_S)
    assert later["ready"] is False
    assert later["fetch"]["source"] == pushed.uri
    assert later["fetch"]["bytes_total"] == pushed.bytes
    assert 0 < later["fetch"]["percent"] < 100
    assert later["reason"].startswith(f"fetching {pushed.uri}: ")
    assert [entry["state"] for entry in later["history"]] == ["fetching"]
    assert later["model"] is None and later["seal_digest"] is None

    answers = {
        path: httpx.get(server.url + path, timeout=10)
        for path in ("/health", "/v2/health/live", "/v2/health/ready", "/v2/models/mlp", "/seal")
    }
    answers["/predict"] = httpx.post(server.url + "/predict", json={"features": [0.0] * 16})
    answers["infer"] = httpx.post(server.url + "/v2/models/mlp/infer", json={"inputs": []})
    assert answers["/v2/health/live"].status_code == 200
    statuses = {path: answer.status_code for path, answer in answers.items() if "live" not in path}
    assert set(statuses.values()) == {503}, statuses
    assert answers["/v2/health/ready"].json()["reason"].startswith(f"fetching {pushed.uri}: ")
    assert "is not known yet" in answers["/v2/models/mlp"].json()["error"]
    assert "fetching" in answers["/predict"].json()["error"]
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    assert _metric(metrics, "modelseal_state", {"modelseal_state": "fetching"}) == 1
    assert _metric(metrics, "modelseal_fetch_bytes") > 0
    assert _metric(metrics, "modelseal_fetch_size_bytes") == pushed.bytes
    assert _metric(metrics, "modelseal_fetch_seconds") > 0

    proxy.release()
    wait_ready(server)
    _assert_serves_golden(server, mlp_seal_path)
    ready = httpx.get(server.url + "/health", timeout=10).json()
    states = [entry["state"] for entry in ready["history"]]
    assert states == ["fetching", "loading", "verifying", "warming", "ready"]
    assert ready["fetch"]["phase"] == "done"
    assert ready["fetch"]["bytes_done"] == pushed.bytes
    assert ready["seal_digest"] == pushed.digest
    documents = [answer.text for answer in answers.values()] + [json.dumps(ready), metrics]
    assert not [text for text in [*documents, server.logs()] if SECRET_KEY in text]


def _corrupt_archive(seal: Path, bucket: str, work: Path) -> str:
    """An archive of ``seal`` with one byte of its weights changed, uploaded; its URI."""
    archive = create_seal_archive(seal, work / "mlp.seal.tar")
    data = archive.read_bytes()
    offset = data.index((seal / WEIGHTS).read_bytes()[:4096]) + 100_000
    changed = data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1 :]
    client().put_object(Bucket=bucket, Key="corrupt/mlp.seal.tar", Body=changed)
    return f"s3://{bucket}/corrupt/mlp.seal.tar"


@pytest.mark.parametrize("drift", ["fail", "exit"])
def test_a_corrupt_remote_seal_fails_the_server_after_it_bound_and_exits_2_naming_the_file(
    mlp_seal_path: Path, bucket: str, s3_env: dict[str, str], tmp_path: Path, drift: str
) -> None:
    source = _corrupt_archive(mlp_seal_path, bucket, tmp_path)
    result = run_modelseal(
        "serve", source, "--port", "0", "--log-format", "json", "--drift", drift,
        extra_env=s3_env,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"{WEIGHTS}: sha256 is" in result.stderr.splitlines()[-1]  # the CLI's error line
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    messages = [record["message"] for record in records]
    bound = next(i for i, m in enumerate(messages) if m.startswith("listening on"))
    failed = next(i for i, m in enumerate(messages) if m.startswith("the seal could not be"))
    assert bound < failed, messages
    assert WEIGHTS in messages[failed]
    assert _cache_entries(Path(s3_env["MODELSEAL_CACHE_DIR"])) == []
    assert "Traceback" not in result.stderr


def test_the_device_is_chosen_once_the_seal_arrived_and_a_missing_gpu_exits_1(
    marker_seal_path: Path, bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    pushed = push(marker_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    marker = tmp_path / "loaded"
    result = run_modelseal(
        "serve", pushed.uri, "--port", "0", "--require-gpu", "99",
        extra_env={**s3_env, "MODELSEAL_TEST_LOAD_MARKER": str(marker)},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "--require-gpu 99:" in result.stderr and "refusing to run on the CPU" in result.stderr
    assert _cache_entries(Path(s3_env["MODELSEAL_CACHE_DIR"])) == [pushed.digest]
    assert not marker.exists()  # refused before the model was loaded


@pytest.mark.parametrize("fault", ["corrupt", "wrong pin", "missing"])
def test_a_fetch_that_fails_turns_the_server_failed_with_the_reason_on_health_and_seal(
    mlp_seal_path: Path, bucket: str, s3_env: dict[str, str], tmp_path: Path, fault: str
) -> None:
    pin, expected = None, f"{WEIGHTS}: sha256 is"
    error: type[SealError] = IntegrityError
    if fault == "corrupt":
        source = _corrupt_archive(mlp_seal_path, bucket, tmp_path)
    elif fault == "wrong pin":
        source = push(mlp_seal_path, f"s3://{bucket}/", progress=lambda _: None).uri
        pin, expected = "sha256:" + "ab" * 32, "ab" * 32 + " is expected"
    else:
        source, expected, error = f"s3://{bucket}/absent.seal.tar", "no object", SourceError
    config = ServeConfig()
    checks = partial(
        preflight,
        source,
        config,
        TrustPolicy(expect_digest=pin),
        cache=SealCache(tmp_path / "cache"),
    )
    models = ModelRepository(fetches=[SealFetch(source, config, checks)])
    app = create_app(models).asgi

    async def main() -> tuple[SealError | None, dict[str, httpx.Response]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            models.begin_startup()
            failure = await asyncio.wait_for(models.settled(), WAIT_S)
            paths = ("/health", "/seal", "/v2/health/ready", "/v2/health/live")
            answers = {path: await http.get(path) for path in paths}
            answers["/predict"] = await http.post("/predict", json={"features": [0.0] * 16})
            return failure, answers

    failure, answers = asyncio.run(main())
    assert isinstance(failure, error) and failure is models.fetch_failure
    health = answers["/health"].json()
    assert answers["/health"].status_code == 503
    assert health["state"] == "failed" and health["ready"] is False
    assert expected in health["reason"] and health["reason"].startswith("the seal could not be")
    assert [entry["state"] for entry in health["history"]] == ["fetching", "failed"]
    assert health["fetch"]["phase"] == "failed"
    assert answers["/seal"].status_code == 503 and expected in answers["/seal"].json()["error"]
    assert answers["/v2/health/ready"].json()["reason"].startswith("failed: ")
    assert answers["/v2/health/live"].status_code == 200
    assert answers["/predict"].status_code == 503
    assert _cache_entries(tmp_path / "cache") == []


def test_sigterm_while_fetching_stops_the_download_exits_0_and_the_next_start_resumes(
    mlp_seal_path: Path,
    bucket: str,
    s3_env: dict[str, str],
    moto: MotoServer,
    tmp_path: Path,
    servers: list[RunningServer],
    proxies: list[FaultyProxy],
) -> None:
    pushed = push(mlp_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    proxy, env = _held_download(moto, s3_env, proxies, pause_after=1_200_000)
    cache = Path(s3_env["MODELSEAL_CACHE_DIR"])
    server = launch(pushed.uri, tmp_path / "stopped", env)
    servers.append(server)
    wait_until(lambda: _downloading(server), "the download to begin", WAIT_S)
    wait_until(lambda: _partial_chunks(cache) > 0, "a whole chunk to arrive", WAIT_S)

    server.process.send_signal(signal.SIGTERM)
    wait_for_log(server, "readiness is 503")  # the drain has begun: the fetch is told to stop
    proxy.release()  # the next piece that arrives stops the download
    assert server.process.wait(WAIT_S) == 0, server.logs()
    logs = server.logs()
    assert "its partial download is kept for the next start" in logs
    assert "did not stop within" not in logs
    assert _cache_entries(cache) == []
    assert _partial_chunks(cache) > 0

    direct = {**env, "MODELSEAL_S3_ENDPOINT": moto.url}  # same chunks, so the partial fits
    restarted = launch(pushed.uri, tmp_path / "restarted", direct)
    servers.append(restarted)
    wait_ready(restarted)
    assert "resuming a partial download" in restarted.logs()
    _assert_serves_golden(restarted, mlp_seal_path)


def test_sigterm_while_the_network_is_silent_exits_0_without_waiting_for_the_read(
    mlp_seal_path: Path,
    bucket: str,
    s3_env: dict[str, str],
    moto: MotoServer,
    tmp_path: Path,
    servers: list[RunningServer],
    proxies: list[FaultyProxy],
) -> None:
    pushed = push(mlp_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    # The manifest's probe (256 KiB and a few headers) passes; not one byte of the download.
    _proxy, env = _held_download(moto, s3_env, proxies, pause_after=(256 << 10) + 8_000)
    server = launch(pushed.uri, tmp_path / "logs", env)
    servers.append(server)
    wait_until(lambda: _downloading(server), "the download to begin", WAIT_S)

    server.process.send_signal(signal.SIGTERM)  # the proxy never forwards another byte
    assert server.process.wait(WAIT_S) == 0, server.logs()
    assert "did not stop within" in server.logs()
    assert "Finished server process" in server.logs()  # the drain ran to its end first
    assert _cache_entries(Path(s3_env["MODELSEAL_CACHE_DIR"])) == []


def test_serve_fetches_into_cache_dir_and_cache_max_bytes_keeps_only_the_served_seal(
    demo_seal_path: Path,
    mlp_seal_path: Path,
    bucket: str,
    s3_env: dict[str, str],
    tmp_path: Path,
    servers: list[RunningServer],
) -> None:
    digits = push(demo_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    mlp = push(mlp_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    cache = tmp_path / "given-cache"
    fetched = run_modelseal("fetch", digits.uri, "--cache-dir", str(cache), extra_env=s3_env)
    assert fetched.returncode == 0, fetched.stderr  # in another process: no lease held here
    assert _cache_entries(cache) == [digits.digest]

    server = launch(
        mlp.uri, tmp_path / "logs", s3_env, "--cache-dir", str(cache), "--cache-max-bytes", "1M"
    )
    servers.append(server)
    wait_ready(server)
    # The served seal alone is over 1 MiB: the least recently used goes, the served one stays.
    assert _cache_entries(cache) == [mlp.digest]
    assert f"evicted seal {digits.digest}" in server.logs()
    assert _cache_entries(Path(s3_env["MODELSEAL_CACHE_DIR"])) == []
    _assert_serves_golden(server, mlp_seal_path)
