"""What a SOURCE string names, including the MODEL_SOURCE convention; and the retry policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelseal import SourceError, UsageError
from modelseal.sources.locations import (
    DEFAULT_BAKED_PATH,
    HttpSource,
    LocalSource,
    RegistrySource,
    S3Source,
    parse_source,
)
from modelseal.sources.redact import display_url, redact
from modelseal.sources.retry import Retrier, RetryPolicy, TransientFetchError


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("model.seal", LocalSource(Path("model.seal"))),
        ("file:///srv/m%20x.seal", LocalSource(Path("/srv/m x.seal"))),
        ("s3://bucket/team/m.seal.tar", S3Source("bucket", "team/m.seal.tar")),
        ("s3://bucket", S3Source("bucket", "")),
        ("models:/digits/3", RegistrySource("digits", version="3")),
        ("models:/digits/latest", RegistrySource("digits", version="latest")),
        ("models:/digits@champion", RegistrySource("digits", alias="champion")),
        ("https://h.example/m.seal.tar?sig=1", HttpSource("https://h.example/m.seal.tar?sig=1")),
    ],
)
def test_sources_parse(source: str, expected: object) -> None:
    assert parse_source(source, {}) == expected


@pytest.mark.parametrize(
    ("source", "refusal"),
    [
        ("s3:///key", "no bucket"),
        ("models:/digits", "expected models:/NAME/VERSION"),
        ("models:/digits/beta", "expected models:/NAME/VERSION"),
        ("runs:/abc/model", "register the seal"),
        ("ftp://h/x", "unknown source scheme 'ftp'"),
    ],
)
def test_bad_sources_say_what_is_expected(source: str, refusal: str) -> None:
    with pytest.raises(SourceError, match=refusal):
        parse_source(source, {})


def test_the_model_source_convention() -> None:
    assert parse_source("baked", {}) == LocalSource(Path(DEFAULT_BAKED_PATH))
    assert parse_source("baked", {"MODEL_BAKED_PATH": "/m"}) == LocalSource(Path("/m"))
    volume = {"MODEL_VOLUME_PATH": "/mnt/models", "MODEL_NAME": "digits", "MODEL_VERSION": "2"}
    assert parse_source("volume", volume) == LocalSource(Path("/mnt/models/digits/2"))
    assert parse_source("volume", {"MODEL_VOLUME_PATH": "/v"}) == LocalSource(Path("/v"))
    s3 = {"MODEL_S3_BUCKET": "b", "MODEL_NAME": "digits", "MODEL_VERSION": "2"}
    assert parse_source("s3", s3) == S3Source("b", "digits/2/")
    assert parse_source("s3", {**s3, "MODEL_S3_PREFIX": "/team/"}) == S3Source(
        "b", "team/digits/2/"
    )
    assert parse_source("s3", {"MODEL_S3_BUCKET": "b", "MODEL_S3_KEY": "k.tar"}) == S3Source(
        "b", "k.tar"
    )
    with pytest.raises(SourceError, match="MODEL_SOURCE=s3 needs MODEL_S3_BUCKET"):
        parse_source("s3", {})
    with pytest.raises(SourceError, match="needs MODEL_NAME"):
        parse_source("s3", {"MODEL_S3_BUCKET": "b"})


def test_urls_are_shown_without_credentials_or_queries() -> None:
    url = "https://user:hunter22@h.example:8443/a/m.seal.tar?X-Amz-Signature=abc&t=1"
    assert display_url(url) == "https://h.example:8443/a/m.seal.tar?***"
    text = f"GET {url} failed; key ms-secret-value"
    shown = redact(text, {"AWS_SECRET_ACCESS_KEY": "ms-secret-value"})
    assert "hunter22" not in shown and "abc" not in shown and "ms-secret-value" not in shown


class FakeTime:
    """A clock that sleeping advances, so backoff can be checked without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_backoff_grows_exponentially_with_jitter_up_to_a_cap_and_a_deadline() -> None:
    policy = RetryPolicy(initial_s=0.5, multiplier=2.0, max_backoff_s=4.0, deadline_s=20.0)
    assert [policy.backoff_cap(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    time = FakeTime()
    retrier = Retrier(policy, "s3://b/k", clock=time.clock, sleep=time.sleep, jitter=lambda c: c)
    attempts = []

    def always_failing() -> None:
        attempts.append(time.now)
        raise TransientFetchError("HTTP 503 from the server")

    with pytest.raises(SourceError, match=r"gave up downloading after \d+ attempts"):
        retrier.call(always_failing, "downloading")
    assert time.sleeps[:4] == [0.5, 1.0, 2.0, 4.0]
    assert sum(time.sleeps) <= 20.0
    assert len(attempts) == len(time.sleeps) + 1


def test_a_transient_error_then_success_returns_the_result() -> None:
    time = FakeTime()
    retrier = Retrier(RetryPolicy(), "x", clock=time.clock, sleep=time.sleep)
    failures = [TransientFetchError("reset")]

    def flaky() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    assert retrier.call(flaky, "reading") == "ok"
    assert retrier.retries == 1


def test_a_bad_deadline_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="MODELSEAL_FETCH_DEADLINE='soon'"):
        RetryPolicy.from_environment({"MODELSEAL_FETCH_DEADLINE": "soon"})
