"""Structured logs: JSON lines whose time is UTC whatever the machine's time zone."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest

from modelseal.serving.logs import JsonFormatter

NOON_UTC = 1_750_000_000.25  # 2025-06-15T15:06:40.250Z


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30 all year
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_json_log_time_is_utc_in_any_time_zone(far_from_utc: None) -> None:
    assert time.localtime(NOON_UTC).tm_hour != time.gmtime(NOON_UTC).tm_hour
    record = logging.makeLogRecord({"msg": "ready", "levelname": "INFO", "name": "modelseal"})
    record.created, record.msecs = NOON_UTC, 250.0
    entry = json.loads(JsonFormatter().format(record))
    assert entry["time"] == "2025-06-15T15:06:40.250Z"
    assert entry["message"] == "ready" and entry["level"] == "info"
