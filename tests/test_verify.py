"""verify and diff: verdicts, ranking-aware tolerances, load failures, and the JSON schemas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from modelseal.verify import DiffReport, Verdict, VerifyReport, verify
from tests.cli_process import run_modelseal as modelseal
from tests.conftest import seal_of_a_vanished_module

REPO = Path(__file__).parents[1]
SCHEMAS = REPO / "docs" / "schemas"
RANKER = Path(__file__).parent / "fixtures" / "ranker_function.py"


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return loaded


def test_the_demo_seal_verifies_consistent_here(demo_seal_path: Path) -> None:
    report = verify(demo_seal_path)
    assert report.verdict is Verdict.CONSISTENT
    assert {r.batch_size for r in report.golden} == {1, 64}
    assert all(r.comparison.bitwise_equal for r in report.golden if r.batch_size == 64)
    assert all(f.ok for f in report.files)
    assert report.passes(strict_env=True)


def test_topk_catches_a_reordering_that_a_loose_allclose_lets_through(drifted_ranker: Path) -> None:
    loose = verify(drifted_ranker, tolerance=["allclose:0.01,0.01"])
    assert loose.verdict is Verdict.CONSISTENT
    ranked = verify(drifted_ranker, tolerance=["topk:10,0.9"])
    assert ranked.verdict is Verdict.DRIFT
    comparison = next(r.comparison for r in ranked.golden if r.batch_size == 64)
    assert comparison.topk_k == 10
    assert comparison.topk_overlap_min is not None and comparison.topk_overlap_min < 0.9
    # The same overlap, computed independently of modelseal.
    golden = np.load(drifted_ranker / "golden.npz")
    queries, expected = golden["inputs/input"], golden["outputs/scores"]
    actual = queries @ np.load(drifted_ranker / "model" / "weights.npz")["items"]

    def top(scores: np.ndarray) -> np.ndarray:
        return np.argsort(-scores, axis=1, kind="stable")[:, :10]

    overlaps = [len(set(a) & set(b)) / 10 for a, b in zip(top(expected), top(actual), strict=True)]
    assert comparison.topk_overlap_min == pytest.approx(min(overlaps))
    assert comparison.topk_overlap_mean == pytest.approx(np.mean(overlaps))


def test_the_default_policy_of_the_ranker_flags_the_swap(drifted_ranker: Path) -> None:
    report = verify(drifted_ranker)
    assert report.verdict is Verdict.DRIFT
    result = modelseal("verify", str(drifted_ranker))
    assert result.returncode == 1
    assert result.stdout.startswith("DRIFT")
    assert "top-k" in result.stdout


def test_a_pickle_of_a_module_that_no_longer_exists_is_load_failed(tmp_path: Path) -> None:
    seal = seal_of_a_vanished_module(tmp_path)
    result = modelseal("verify", "--json", str(seal.root))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["verdict"] == "load-failed"
    assert report["failure"]["error_type"] == "ModuleNotFoundError"
    assert "vanishing_models" in report["failure"]["message"]
    assert "Traceback" not in result.stderr


def test_verify_json_validates_against_the_documented_schema(demo_seal_path: Path) -> None:
    result = modelseal("verify", "--json", str(demo_seal_path))
    assert result.returncode == 0, result.stderr
    jsonschema.validate(json.loads(result.stdout), schema("verify-report.schema.json"))


def test_the_committed_schemas_are_the_report_models() -> None:
    sys.path.insert(0, str(REPO))
    from docs.schemas.generate import render

    assert (SCHEMAS / "verify-report.schema.json").read_text() == render(VerifyReport)
    assert (SCHEMAS / "diff-report.schema.json").read_text() == render(DiffReport)


def test_diff_of_two_environment_files_is_ranked(legacy_python: Path, tmp_path: Path) -> None:
    old = subprocess.run(
        [str(legacy_python), "-m", "modelseal", "env", "--json"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    (tmp_path / "old.json").write_text(old.stdout)
    (tmp_path / "here.json").write_text(modelseal("env", "--json").stdout)

    as_json = modelseal("diff", "--json", str(tmp_path / "old.json"), str(tmp_path / "here.json"))
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    jsonschema.validate(report, schema("diff-report.schema.json"))
    ranks = {"critical": 0, "warning": 1, "info": 2}
    assert [ranks[row["risk"]] for row in report["rows"]] == sorted(
        ranks[row["risk"]] for row in report["rows"]
    )
    critical = {row["subject"] for row in report["rows"] if row["risk"] == "critical"}
    assert {"numpy", "scipy", "scikit-learn"} <= critical
    assert report["lock_from"] is None

    human = modelseal("diff", str(tmp_path / "old.json"), str(tmp_path / "here.json"))
    assert human.returncode == 0
    lines = human.stdout.splitlines()
    first_warning = next(i for i, line in enumerate(lines) if "warning" in line)
    last_critical = max(i for i, line in enumerate(lines) if "critical" in line)
    assert last_critical < first_warning
    assert "numpy" in human.stdout and "1.26.4" in human.stdout


def test_diff_against_here_uses_the_seal_lock(demo_seal_path: Path) -> None:
    result = modelseal("diff", "--json", str(demo_seal_path), "-")
    report = json.loads(result.stdout)
    assert report["lock_from"] == str(demo_seal_path)
    assert report["highest_risk"] in (None, "info", "warning")


def test_a_bad_tolerance_override_is_a_usage_error(demo_seal_path: Path) -> None:
    result = modelseal("verify", "--tolerance", "nearly:3", str(demo_seal_path))
    assert result.returncode == 2
    assert "nearly" in result.stderr
