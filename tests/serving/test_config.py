"""Server settings refuse what cannot be served, naming the value and what is expected."""

from __future__ import annotations

import re

import pytest

from modelseal.errors import UsageError
from modelseal.serving.config import ServeConfig


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_devices_that_name_a_device(device: str) -> None:
    assert ServeConfig(device=device).device == device


@pytest.mark.parametrize("device", ["cuda:abc", "cuda:", "cuda:-1", "cuda:٣", "gpu", "cuda0"])
def test_other_devices_are_usage_errors_naming_the_value(device: str) -> None:
    expected = f"--device {device!r}: expected auto, cpu, cuda or cuda:N"
    with pytest.raises(UsageError, match=re.escape(expected)):
        ServeConfig(device=device)


@pytest.mark.parametrize(
    "setting", ["header_timeout_s", "body_timeout_s", "max_connections", "max_queue"]
)
def test_limits_must_be_positive(setting: str) -> None:
    with pytest.raises(UsageError, match=f"{setting} must be above 0, got 0"):
        ServeConfig(**{setting: 0})  # type: ignore[arg-type]
