"""Progress: a rich bar on a terminal, log lines with bytes, rate and ETA otherwise, and
snapshots any observer (a server's health state) can take."""

from __future__ import annotations

import io
import logging
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from modelseal.sources import FetchProgress, LogProgress, RichProgressBar
from modelseal.sources.progress import ProgressMeter
from modelseal.sources.publish import push


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_meter_reports_rate_and_eta_and_counts_kept_bytes_outside_the_rate() -> None:
    clock, seen = Clock(), list[FetchProgress]()
    meter = ProgressMeter("s3://b/k", seen.append, clock=clock)
    meter.start(1000)
    meter.skip(200)  # kept from an earlier attempt
    clock.now = 2.0
    meter.add(100)
    latest = seen[-1]
    assert (latest.bytes_done, latest.bytes_total) == (300, 1000)
    assert latest.rate_bytes_per_s == pytest.approx(50.0)
    assert latest.eta_s == pytest.approx(14.0)
    meter.finish()
    assert seen[-1].phase == "done"


def test_log_lines_come_every_few_seconds_with_bytes_rate_and_eta(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    progress = LogProgress(interval_s=5.0, clock=clock)
    snapshot = FetchProgress("s3://b/k", "downloading", 0, 2_000_000_000, None, None)
    with caplog.at_level(logging.INFO, logger="modelseal.sources"):
        progress(snapshot)
        for second in (1.0, 2.0, 6.0):
            clock.now = second
            progress(FetchProgress("s3://b/k", "downloading", 500_000_000, 2_000_000_000, 1e8, 15))
        progress(FetchProgress("s3://b/k", "done", 2_000_000_000, 2_000_000_000, 1e8, 0))
    lines = [record for record in caplog.records if record.name == "modelseal.sources"]
    assert len(lines) == 3
    middle = lines[1]
    assert middle.getMessage() == "fetching s3://b/k: 500.0 MB of 2.0 GB (100.0 MB/s, ETA 15 s)"
    assert (middle.bytes_done, middle.bytes_total, middle.eta_s) == (500_000_000, 2_000_000_000, 15)  # type: ignore[attr-defined]
    assert lines[2].getMessage().startswith("fetching s3://b/k: done")


def test_the_bar_draws_on_a_terminal() -> None:
    screen = io.StringIO()
    bar = RichProgressBar(Console(file=screen, force_terminal=True, width=120))
    bar(FetchProgress("s3://b/model.seal.tar", "downloading", 0, 10_000_000, None, None))
    bar(FetchProgress("s3://b/model.seal.tar", "done", 10_000_000, 10_000_000, 5e6, 0))
    assert "fetching s3://b/model.seal.tar" in screen.getvalue()
    assert "10.0 MB" in screen.getvalue() or "10.0/10.0 MB" in screen.getvalue()


def test_fetch_draws_a_bar_on_a_terminal_and_writes_log_lines_elsewhere(
    mlp_seal_path: Path, bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    pushed = push(mlp_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    command = [sys.executable, "-m", "modelseal", "fetch", pushed.uri]
    environment = {**os.environ, **s3_env}
    piped = subprocess.run(command, capture_output=True, text=True, env=environment, check=True)
    assert f"fetching {pushed.uri}: 0 B of 3.3 MB" in piped.stderr
    assert f"fetching {pushed.uri}: done, 3.3 MB of 3.3 MB" in piped.stderr
    assert "━" not in piped.stderr

    environment["MODELSEAL_CACHE_DIR"] = str(tmp_path / "terminal-cache")
    leader, follower = pty.openpty()
    with subprocess.Popen(
        command, stderr=follower, stdout=subprocess.DEVNULL, env=environment
    ) as process:
        os.close(follower)
        screen = _read_all(leader)
    assert process.returncode == 0
    assert f"fetching {pushed.uri}" in screen and "━" in screen


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal's other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")
