"""The acceptance pipeline sealed in a real pandas 2 / scikit-learn 1.3 environment and
verified here (pandas 3): pandas is in the diff with its risk, the replay runs on DataFrames."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest
import sklearn

from modelseal import open_seal
from modelseal.environment.risk import Risk
from modelseal.golden import load_golden
from modelseal.runtimes import get_runtime
from modelseal.seal.trust import TrustPolicy
from modelseal.types import ColumnKind
from modelseal.verify import Verdict, VerifyReport, verify
from tests.cli_process import run_modelseal as modelseal
from tests.envs.builder import REPO

pytestmark = [
    pytest.mark.slow,
    # Unpickling scikit-learn 1.3 estimators under a newer one warns about the version.
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.InconsistentVersionWarning"),
]
SCRIPT = Path(__file__).parent / "legacy_seal_pipeline.py"
FEATURE_NAME_WARNINGS_FAIL = {
    "PYTHONWARNINGS": "error:X does not have valid feature names:UserWarning,"
    "error:X has feature names:UserWarning"
}


def run(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), *args], capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
    )  # fmt: skip


@pytest.fixture(scope="module")
def legacy_seal(legacy_tabular_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    versions = run(
        legacy_tabular_python, "-c",
        "import numpy, pandas, sklearn; print(numpy.__version__, pandas.__version__, "
        "sklearn.__version__)",
    )  # fmt: skip
    assert versions.stdout.split() == ["1.26.4", "2.2.3", "1.3.2"], versions.stderr
    out = tmp_path_factory.mktemp("legacy-tabular")
    sealed = run(legacy_tabular_python, str(SCRIPT), str(out))
    assert sealed.returncode == 0, sealed.stderr
    return out / "patients.seal"


@pytest.fixture(scope="module")
def report(legacy_seal: Path) -> VerifyReport:
    # the legacy environment has no skops: the model is a joblib pickle, vouched for by its pin
    return verify(legacy_seal, trust=TrustPolicy(expect_digest=pinned_digest(legacy_seal)))


def pinned_digest(seal_path: Path) -> str:
    with open_seal(seal_path) as seal:
        return f"sha256:{seal.digest}"


def test_the_legacy_seal_records_pandas_2s_object_text_columns(legacy_seal: Path) -> None:
    seal = open_seal(legacy_seal)
    table = seal.signature.table
    assert table is not None
    assert (table.column("size_band").kind, table.column("size_band").dtype) == (
        ColumnKind.STRING,
        "object",
    )
    assert seal.environment().packages["pandas"] == "2.2.3"
    pins = dict(line.split("==") for line in seal.lock_lines())
    assert (pins["pandas"], pins["pyarrow"], pins["scikit-learn"]) == ("2.2.3", "17.0.0", "1.3.2")


def test_pandas_is_in_the_diff_as_critical_with_why(report: VerifyReport) -> None:
    rows = {row.subject: row for row in report.environment}
    pandas_row = rows["pandas"]
    assert (pandas_row.packed, pandas_row.current) == ("2.2.3", pd.__version__)
    assert pandas_row.risk is Risk.CRITICAL
    assert "object up to pandas 2, str from pandas 3" in pandas_row.why
    assert rows["scikit-learn"].risk is Risk.CRITICAL
    assert rows["scikit-learn"].current == sklearn.__version__
    # Text columns are object columns here, so pyarrow only reads the golden file.
    assert rows["pyarrow"].risk is Risk.WARNING


def test_the_replay_verdict_is_computed_on_dataframes(report: VerifyReport) -> None:
    assert report.verdict is Verdict.CONSISTENT, report.failure
    assert {replay.batch_size for replay in report.golden} == {1, 48}
    # Unpickling a scikit-learn 1.3 model warns about the version; nothing about feature names.
    assert all("feature names" not in warning for warning in report.load_warnings)


def test_the_model_gets_the_object_columns_it_was_trained_on(legacy_seal: Path) -> None:
    seal = open_seal(legacy_seal)
    loaded = get_runtime("sklearn").load(seal.model_dir, "cpu")
    columns = load_golden(seal.golden_path).input_rows(0, 4)
    encoder = loaded.estimator.steps[0][1]  # type: ignore[attr-defined]
    seen: list[Any] = []
    original = encoder.transform

    def spy(frame: Any) -> Any:
        seen.append(frame)
        return original(frame)

    encoder.transform = spy
    loaded.predict(columns)
    assert seen and all(isinstance(frame, pd.DataFrame) for frame in seen)
    assert {str(frame["size_band"].dtype) for frame in seen} == {"object"}


def test_verify_in_a_fresh_process_prints_the_pandas_row(legacy_seal: Path) -> None:
    pin = pinned_digest(legacy_seal)
    result = modelseal(
        "verify", "--json", "--expect-digest", pin, str(legacy_seal),
        extra_env=FEATURE_NAME_WARNINGS_FAIL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["verdict"] == "consistent"
    (pandas_row,) = [row for row in printed["environment"] if row["subject"] == "pandas"]
    assert pandas_row["risk"] == "critical"
