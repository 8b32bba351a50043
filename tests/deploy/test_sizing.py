"""Start-up and memory sizing: measured in a fresh interpreter, then the stated formulas."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelseal.deploy.sizing import (
    MIB,
    STARTUP_FLOOR_SECONDS,
    STARTUP_SAFETY_FACTOR,
    StartupMeasurement,
    size,
    startup_budget,
)
from modelseal.errors import UsageError
from modelseal.seal.artifact import Seal
from tests.conftest import seal_of_a_vanished_module


def test_a_measurement_covers_every_step_of_a_start_up_verification(
    demo_measurement: StartupMeasurement,
) -> None:
    assert demo_measurement.verdict == "consistent"
    assert {"open", "load", "environment", "replay"} <= set(demo_measurement.steps)
    # The wall clock of the whole process includes the steps it reports.
    assert demo_measurement.seconds > sum(demo_measurement.steps.values())
    # numpy, scipy and scikit-learn loaded: tens of MiB at least, far from a leak.
    assert 50 * MIB < demo_measurement.peak_rss_bytes < 4096 * MIB


@pytest.mark.parametrize(
    ("measured", "budget"),
    [(0.0, STARTUP_FLOOR_SECONDS), (2.0, 30), (10.2, 31), (20.0, 60), (100.0, 300)],
)
def test_the_budget_is_the_measurement_times_the_factor_above_a_floor(
    measured: float, budget: int
) -> None:
    assert (STARTUP_SAFETY_FACTOR, STARTUP_FLOOR_SECONDS) == (3.0, 30)
    assert startup_budget(measured) == budget


def test_given_numbers_skip_the_measurement_and_follow_the_memory_formula(
    demo_seal: Seal,
) -> None:
    sizing = size(demo_seal, startup_seconds=12.0, memory_request_bytes=512 * MIB)
    assert sizing.measured is None
    assert sizing.startup_budget_seconds == 36
    model = sum(e.size for p, e in demo_seal.manifest.files.items() if p.startswith("model/"))
    assert sizing.model_bytes == model
    expected_limit = -(-(512 * MIB + 2 * model + 128 * MIB) // (16 * MIB)) * 16 * MIB
    assert sizing.memory_limit_bytes == expected_limit
    with pytest.raises(UsageError, match="cannot be negative"):
        startup_budget(-1.0)


def test_a_model_that_cannot_load_here_cannot_be_measured_and_says_what_to_pass(
    tmp_path: Path,
) -> None:
    seal = seal_of_a_vanished_module(tmp_path)
    with pytest.raises(UsageError, match=r"load-failed.*--startup-seconds"):
        size(seal)
