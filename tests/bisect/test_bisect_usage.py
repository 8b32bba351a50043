"""bisect where there is nothing to bisect, or it is asked for the impossible: exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from docs.schemas.generate import render

from modelseal.bisect import BisectReport
from modelseal.seal.archive import create_seal_archive
from tests.cli_process import run_modelseal

REPO = Path(__file__).parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("form", ["folder", "archive"])
def test_a_seal_that_verifies_consistent_has_nothing_to_bisect(
    demo_seal_path: Path, tmp_path: Path, form: str
) -> None:
    seal = demo_seal_path
    if form == "archive":
        seal = create_seal_archive(demo_seal_path, tmp_path / "digits.seal.tar.gz")
    verified = run_modelseal("verify", str(seal))
    assert verified.returncode == 0, verified.stdout + verified.stderr

    result = run_modelseal("bisect", "--json", str(seal))
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert document["exit_code"] == 2
    assert document["error"]["type"] == "UsageError"
    assert "verifies consistent here, so there is nothing to bisect" in result.stderr
    assert "Traceback" not in result.stderr


def test_max_envs_below_one_is_a_usage_error(demo_seal_path: Path) -> None:
    result = run_modelseal("bisect", "--max-envs", "0", str(demo_seal_path))
    assert result.returncode == 2
    assert "--max-envs must be at least 1, got 0" in result.stderr


def test_a_missing_seal_is_a_usage_error(tmp_path: Path) -> None:
    result = run_modelseal("bisect", str(tmp_path / "absent.seal"))
    assert result.returncode == 2
    assert "no seal there" in result.stderr


def test_the_committed_schema_is_the_report_model() -> None:
    schema = REPO / "docs" / "schemas" / "bisect-report.schema.json"
    assert schema.read_text() == render(BisectReport)
