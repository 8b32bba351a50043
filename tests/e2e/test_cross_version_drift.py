"""Seals made in a real numpy 1.26 / scikit-learn 1.3 environment, verified here.

For each model the test recomputes, independently of modelseal, what the replay must find:
it loads the pickle itself, predicts the golden inputs, and applies the sealed policy
(allclose with rtol=1e-6, atol=1e-9 on every output) with numpy.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from modelseal.environment.risk import Risk
from modelseal.seal.trust import TrustPolicy
from modelseal.verify import Verdict, verify
from tests.cli_process import run_modelseal

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent
MODELS = ("logreg", "knn", "tree", "forest", "boosting")
RTOL, ATOL = 1e-6, 1e-9
METHODS = {"label": "predict", "probabilities": "predict_proba", "scores": "decision_function"}
# The old training environment has no skops, so its seals are joblib pickles nobody signed:
# loading them is accepted explicitly, as a team verifying its own old seals would.
UNSIGNED_PICKLES = TrustPolicy(allow_unsigned_pickle=True)


@pytest.fixture(scope="module")
def legacy_seals(legacy_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("legacy-seals")
    result = subprocess.run(
        [str(legacy_python), str(HERE / "legacy_seal_models.py"), str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def expected_verdict(seal_dir: Path) -> tuple[Verdict, dict[str, float]]:
    """What a replay must conclude, computed with joblib and numpy alone."""
    golden = np.load(seal_dir / "golden.npz")
    inputs = golden["inputs/input"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model: Any = joblib.load(seal_dir / "model" / "model.joblib")
        except Exception:
            return Verdict.LOAD_FAILED, {}
        diffs: dict[str, float] = {}
        consistent = True
        for output, method in METHODS.items():
            key = f"outputs/{output}"
            if key not in golden.files:
                continue
            try:
                actual = np.asarray(getattr(model, method)(inputs))
            except Exception:
                return Verdict.RUN_FAILED, diffs
            expected = golden[key]
            diffs[output] = float(np.max(np.abs(actual.astype(float) - expected)))
            consistent &= bool(np.allclose(actual, expected, rtol=RTOL, atol=ATOL))
    return (Verdict.CONSISTENT if consistent else Verdict.DRIFT), diffs


@pytest.mark.parametrize("model", MODELS)
def test_replay_verdict_matches_an_independent_computation(legacy_seals: Path, model: str) -> None:
    seal_dir = legacy_seals / f"{model}.seal"
    verdict, diffs = expected_verdict(seal_dir)
    report = verify(seal_dir, trust=UNSIGNED_PICKLES)
    assert report.verdict is verdict, report.failure
    full_batch = {r.comparison.name: r.comparison for r in report.golden if r.batch_size == 64}
    for output, max_diff in diffs.items():
        # Two predictions of the same rows need not agree in their last bits: compare the
        # measured difference far below the policy's ATOL, not bitwise.
        measured = full_batch[output].max_abs_diff
        assert measured == pytest.approx(max_diff, rel=1e-6, abs=ATOL * 1e-3)
    if verdict is Verdict.LOAD_FAILED:
        assert report.failure is not None and report.golden == []


def test_environment_diff_names_each_changed_numerical_package_critical(
    legacy_seals: Path,
) -> None:
    report = verify(legacy_seals / "logreg.seal", trust=UNSIGNED_PICKLES)
    critical = {row.subject for row in report.environment if row.risk is Risk.CRITICAL}
    assert {"numpy", "scipy", "scikit-learn"} <= critical
    numpy_row = next(row for row in report.environment if row.subject == "numpy")
    assert (numpy_row.packed, numpy_row.current) == ("1.26.4", np.__version__)
    assert report.environment_risk is Risk.CRITICAL
    assert report.passes(strict_env=False) is (report.verdict is Verdict.CONSISTENT)
    assert report.passes(strict_env=True) is False


def test_the_cli_reports_load_failed_with_exit_1_and_no_traceback(legacy_seals: Path) -> None:
    if expected_verdict(legacy_seals / "boosting.seal")[0] is not Verdict.LOAD_FAILED:
        pytest.skip("this scikit-learn still loads the old boosting pickle")
    seal = legacy_seals / "boosting.seal"
    result = run_modelseal("verify", "--json", str(seal), "--allow-unsigned-pickle")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["verdict"] == "load-failed"
    assert report["failure"]["error_type"] == "ModuleNotFoundError"
    assert "No module named" in report["failure"]["message"]
    assert "Traceback" not in result.stderr


def test_the_legacy_models_cover_every_verdict(legacy_seals: Path) -> None:
    verdicts = {expected_verdict(legacy_seals / f"{model}.seal")[0] for model in MODELS}
    assert {Verdict.CONSISTENT, Verdict.DRIFT, Verdict.LOAD_FAILED} <= verdicts
