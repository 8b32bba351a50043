"""https:// sources: a real TLS server on loopback serving byte ranges, with our own CA."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from modelseal import SourceError, open_seal
from modelseal.seal.archive import create_seal_archive
from modelseal.sources import resolve
from tests.cli_process import run_modelseal
from tests.sources.servers import Faults, FaultyProxy, file_server, self_signed_certificate

TOKEN = "ms-test-token-Zp4Lq8Vd"


@pytest.fixture
def served(mlp_seal_path: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "www"
    folder.mkdir()
    create_seal_archive(mlp_seal_path, folder / "mlp.seal.tar")
    return folder


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    pair = self_signed_certificate(tmp_path)
    monkeypatch.setenv("MODELSEAL_CACHE_DIR", str(tmp_path / "cache"))
    return pair


def test_an_archive_over_https_downloads_in_ranges_and_resolves(
    served: Path,
    mlp_seal_path: Path,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    monkeypatch.setenv("MODELSEAL_DOWNLOAD_CHUNK_BYTES", str(512 << 10))
    monkeypatch.setenv("MODELSEAL_HTTP_TOKEN", TOKEN)
    with (
        file_server(served, certificate=certificate, token=TOKEN) as (url, requests),
        caplog.at_level(logging.INFO, logger="modelseal.sources"),
    ):
        seal = resolve(f"{url}/mlp.seal.tar?sig=abc", progress=lambda _: None)
    assert seal.digest == open_seal(mlp_seal_path).digest
    size = (served / "mlp.seal.tar").stat().st_size
    assert len(requests) >= 2 + size // (512 << 10)  # stat, probe, then one per chunk
    assert seal.source == f"{url}/mlp.seal.tar?***"
    assert "sig=abc" not in caplog.text and TOKEN not in caplog.text


def test_an_untrusted_certificate_and_a_missing_file_fail_clearly(
    served: Path, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with file_server(served, certificate=certificate) as (url, _):
        with pytest.raises(SourceError, match="certificate is not trusted .*SSL_CERT_FILE"):
            resolve(f"{url}/mlp.seal.tar")
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        with pytest.raises(SourceError, match=r"no such file on the server \(HTTP 404\)"):
            resolve(f"{url}/absent.seal.tar")


def test_a_password_in_the_url_is_sent_but_never_shown(
    served: Path, tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    password = "ms-url-password-Kd93"
    with file_server(served, certificate=certificate, token="not-this") as (url, _):
        host = url.removeprefix("https://")
        result = run_modelseal(
            "verify", f"https://reader:{password}@{host}/mlp.seal.tar",
            extra_env={"SSL_CERT_FILE": str(certificate[0]), "MODELSEAL_CACHE_DIR": str(tmp_path)},
        )  # fmt: skip
    assert result.returncode == 2
    assert "access denied" in result.stderr and "HTTP 401" in result.stderr
    assert password not in result.stdout + result.stderr


def test_resets_and_a_cut_body_over_tls_are_retried(
    served: Path,
    mlp_seal_path: Path,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with file_server(served, certificate=certificate) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        proxy = FaultyProxy(("127.0.0.1", port), Faults(reset_first=2, cut=1, cut_after=300_000))
        proxy.start()
        try:
            seal = resolve(f"https://127.0.0.1:{proxy.port}/mlp.seal.tar", progress=lambda _: None)
        finally:
            proxy.stop()
    assert seal.digest == open_seal(mlp_seal_path).digest
    retries = [r for r in caplog.records if r.levelno == logging.WARNING and "retry" in r.message]
    assert len(retries) == 3, caplog.text
