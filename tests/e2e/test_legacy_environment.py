"""modelseal in an old training environment (numpy 1.26, scikit-learn 1.3), for real."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from modelseal import open_seal

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent


def run(python: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), *args], capture_output=True, text=True, timeout=300, cwd=cwd, check=False
    )


def test_env_pack_and_inspect_work_with_numpy_1(legacy_python: Path, tmp_path: Path) -> None:
    versions = run(
        legacy_python, "-c", "import numpy, sklearn; print(numpy.__version__, sklearn.__version__)"
    )
    assert versions.stdout.split() == ["1.26.4", "1.3.2"]

    env = run(legacy_python, "-m", "modelseal", "env", "--json")
    assert env.returncode == 0, env.stderr
    record = json.loads(env.stdout)
    assert record["numpy_version"] == "1.26.4"
    assert record["packages"]["scikit-learn"] == "1.3.2"
    assert "torch" not in record["packages"] and record["torch"] is None

    trained = run(legacy_python, str(HERE / "legacy_train.py"), str(tmp_path))
    assert trained.returncode == 0, trained.stderr
    seal_dir = tmp_path / "digits-legacy.seal"
    packed = run(
        legacy_python, "-m", "modelseal", "pack", str(tmp_path / "digits_logreg.joblib"),
        "--runtime", "sklearn", "--name", "digits", "--version", "legacy",
        "--golden", str(tmp_path / "golden.npy"), "-o", str(seal_dir),
    )  # fmt: skip
    assert packed.returncode == 0, packed.stderr

    inspected = run(legacy_python, "-m", "modelseal", "inspect", "--json", str(seal_dir))
    assert inspected.returncode == 0, inspected.stderr
    report = json.loads(inspected.stdout)
    assert report["environment"]["numpy"] == "1.26.4"
    assert {"numpy==1.26.4", "scikit-learn==1.3.2", "scipy==1.11.4"} <= set(report["lock"])
    assert "joblib==1.3.2" in report["lock"]

    # The same seal opens and checks in this (numpy 2.x) environment.
    seal = open_seal(seal_dir)
    assert seal.digest == report["digest"]
    assert seal.environment().numpy_version == "1.26.4"
