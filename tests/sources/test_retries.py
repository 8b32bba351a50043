"""Transient failures are retried (and logged); permanent ones fail at once. A real loopback
proxy in front of the real S3 server resets connections, cuts responses short mid-body and
answers error statuses."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from modelseal import SourceError, open_seal
from modelseal.sources import resolve
from modelseal.sources.publish import push
from tests.sources.servers import Faults, FaultyProxy, MotoServer, s3_error_response


@pytest.fixture
def pushed(demo_seal_path: Path, bucket: str, s3_env: dict[str, str]) -> str:
    return push(demo_seal_path, f"s3://{bucket}/", progress=lambda _: None).uri


def _through(moto: MotoServer, faults: Faults, monkeypatch: pytest.MonkeyPatch) -> FaultyProxy:
    upstream = urlsplit(moto.url)
    proxy = FaultyProxy((upstream.hostname or "", upstream.port or 0), faults).start()
    monkeypatch.setenv("MODELSEAL_S3_ENDPOINT", proxy.url)
    return proxy


def test_resets_and_a_body_cut_short_are_retried_and_logged(
    pushed: str,
    demo_seal_path: Path,
    moto: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    proxies: list[FaultyProxy],
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxies.append(_through(moto, Faults(reset_first=2, cut=2, cut_after=20_000), monkeypatch))
    with caplog.at_level(logging.INFO, logger="modelseal.sources"):
        seal = resolve(pushed, progress=lambda _: None)
    assert seal.digest == open_seal(demo_seal_path).digest
    retries = [r for r in caplog.records if r.levelno == logging.WARNING and "retry" in r.message]
    assert len(retries) == 4, caplog.text
    errors = " ".join(str(getattr(record, "error", "")) for record in retries)
    assert "Connection" in errors  # reset by peer / closed
    assert errors.count("IncompleteRead") == 2  # the probe's and the download's bodies
    assert "4 retries" in caplog.text


def test_server_errors_and_throttling_are_retried(
    pushed: str,
    moto: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    proxies: list[FaultyProxy],
    caplog: pytest.LogCaptureFixture,
) -> None:
    slow_down = s3_error_response(503, "Slow Down", "SlowDown")
    proxies.append(_through(moto, Faults(answer_next=2, answer=slow_down), monkeypatch))
    resolve(pushed, progress=lambda _: None)
    assert caplog.text.count("HTTP 503 from the server") == 2


def test_access_denied_fails_at_once_without_retrying(
    pushed: str,
    moto: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    proxies: list[FaultyProxy],
    caplog: pytest.LogCaptureFixture,
) -> None:
    denied = s3_error_response(403, "Forbidden", "AccessDenied")
    proxy = _through(moto, Faults(answer_next=10, answer=denied), monkeypatch)
    proxies.append(proxy)
    with pytest.raises(SourceError, match=r"access denied .* \(HTTP 403\)"):
        resolve(pushed)
    assert proxy.accepted == 1
    assert "retry" not in caplog.text


def test_the_deadline_bounds_the_retries(
    pushed: str,
    moto: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    proxies: list[FaultyProxy],
) -> None:
    proxies.append(_through(moto, Faults(reset_first=10_000), monkeypatch))
    monkeypatch.setenv("MODELSEAL_FETCH_DEADLINE", "2")
    with pytest.raises(SourceError, match=r"gave up .* attempts .*MODELSEAL_FETCH_DEADLINE"):
        resolve(pushed)
