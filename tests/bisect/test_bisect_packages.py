"""bisect on a forest sealed in a real numpy 1.26 / scikit-learn 1.3 environment.

Every claim of the report is checked apart from modelseal: the premise (the seal drifts
here) with joblib and numpy in this process, and the environments bisect kept with their
own Python and plain scikit-learn (which versions they hold, and whether their
probabilities match the golden ones).
"""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

import joblib
import jsonschema
import numpy as np
import pytest

from modelseal.environment.fingerprint import installed_packages
from tests.cli_process import run_modelseal

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent
REPO = HERE.parents[1]
KEEP_ENVS = REPO / ".cache" / "bisect-envs"
RTOL, ATOL = 1e-9, 1e-12  # the policy legacy_forest.py seals the probabilities with
BISECT_TIMEOUT_S = 1800


@pytest.fixture(scope="module")
def forest_seal(legacy_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("legacy-forest")
    result = subprocess.run(
        [str(legacy_python), str(HERE / "legacy_forest.py"), str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out / "forest.seal"


@pytest.fixture(scope="module")
def bisected(forest_seal: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    before = installed_packages()
    result = run_modelseal(
        "bisect", "--json", "--keep-envs", str(KEEP_ENVS), str(forest_seal),
        timeout=BISECT_TIMEOUT_S,
    )  # fmt: skip
    assert installed_packages() == before, "bisect changed the current environment"
    assert result.stdout, result.stderr
    return result, json.loads(result.stdout)


def golden_probabilities(seal: Path) -> tuple[np.ndarray, np.ndarray]:
    golden = np.load(seal / "golden.npz")
    return golden["inputs/input"], golden["outputs/probabilities"]


def test_the_forest_seal_really_drifts_here(forest_seal: Path) -> None:
    inputs, expected = golden_probabilities(forest_seal)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model: Any = joblib.load(forest_seal / "model" / "model.joblib")
    actual = model.predict_proba(inputs)
    assert not np.allclose(actual, expected, rtol=RTOL, atol=ATOL)


def test_bisect_names_scikit_learn_and_says_what_rides_with_it(
    bisected: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    result, report = bisected
    assert result.returncode == 0, result.stderr
    assert report["isolated"] is True
    assert report["verdict_here"] == "drift"
    roles = {c["change"]["name"]: c["role"] for c in report["culprits"]}
    assert [name for name, role in roles.items() if role == "cause"] == ["scikit-learn"]
    assert "scikit-learn 1.3.2 -> " in report["conclusion"]
    trials = {trial["index"]: trial for trial in report["trials"]}
    for culprit in report["culprits"]:
        without = trials[culprit["without_change"]["trial"]]
        if culprit["role"] == "cause":
            assert without["verdict"] == "consistent"
            continue
        # Inseparable: without it, uv refused the set, naming the package in its reason.
        assert culprit["role"] == "inseparable"
        assert without["build"] == "unresolvable"
        assert culprit["change"]["name"] in without["detail"]
        assert culprit["change"]["name"] in report["conclusion"]
        assert "cannot be separated" in report["conclusion"]


def test_every_trial_is_listed_with_its_verdict_within_the_budget(
    bisected: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    _, report = bisected
    trials = report["trials"]
    assert trials[0]["environment"] == "here" and trials[0]["verdict"] == "drift"
    ran = [t for t in trials if t["build"] in ("built", "cached")]
    assert len({t["environment"] for t in ran}) == len(ran) <= report["max_envs"]
    assert report["environments_built"] + report["environments_reused"] == len(ran)
    for trial in trials:
        if trial["build"] in ("unresolvable", "build-failed"):
            assert trial["verdict"] is None and trial["detail"]
        else:
            assert trial["verdict"] in ("consistent", "drift", "load-failed", "run-failed")
            assert trial["run_seconds"] > 0
    assert report["total_seconds"] >= sum(t["run_seconds"] for t in trials)


def test_the_kept_environments_hold_what_the_report_says(
    forest_seal: Path,
    bisected: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
    tmp_path: Path,
) -> None:
    _, report = bisected
    changes = {change["name"]: change for change in report["changes"]}
    cause = next(c for c in report["culprits"] if c["role"] == "cause")
    trials = {trial["index"]: trial for trial in report["trials"]}
    inputs, expected = golden_probabilities(forest_seal)
    np.save(tmp_path / "inputs.npy", inputs)
    for summary, reproduces in ((cause["with_change"], False), (cause["without_change"], True)):
        trial = trials[summary["trial"]]
        assert trial["environment"] != "here"
        python = KEEP_ENVS / f"env-{trial['environment']}" / "bin" / "python"
        versions, probabilities = plain_prediction(python, forest_seal, tmp_path / "inputs.npy")
        for name in ("numpy", "scikit-learn"):
            held = "here" if name in trial["at_current"] else "sealed"
            assert versions[name] == changes[name][held], (name, trial)
        assert np.allclose(probabilities, expected, rtol=RTOL, atol=ATOL) is reproduces


def plain_prediction(python: Path, seal: Path, inputs: Path) -> tuple[dict[str, str], np.ndarray]:
    """The sealed forest's probabilities computed by ``python`` with scikit-learn alone."""
    script = f"""
import json, warnings, joblib, numpy, sklearn
warnings.simplefilter("ignore")
model = joblib.load({str(seal / "model" / "model.joblib")!r})
proba = model.predict_proba(numpy.load({str(inputs)!r}))
print(json.dumps({{"numpy": numpy.__version__, "scikit-learn": sklearn.__version__,
                   "proba": proba.tolist()}}))
"""
    result = subprocess.run(
        [str(python), "-I", "-c", script], capture_output=True, text=True, timeout=300,
        check=True,
    )  # fmt: skip
    parsed = json.loads(result.stdout)
    versions = {"numpy": parsed["numpy"], "scikit-learn": parsed["scikit-learn"]}
    return versions, np.asarray(parsed["proba"])


def test_the_report_follows_its_schema(
    bisected: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    _, report = bisected
    schema = json.loads((REPO / "docs" / "schemas" / "bisect-report.schema.json").read_text())
    jsonschema.validate(report, schema)


def test_a_spent_budget_says_so_exits_1_and_leaves_no_environment_behind(
    forest_seal: Path, tmp_path: Path
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = run_modelseal(
        "bisect", "--json", "--max-envs", "1", str(forest_seal),
        extra_env={"TMPDIR": str(scratch)}, timeout=BISECT_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["isolated"] is False
    assert "--max-envs 1" in report["conclusion"]
    assert report["environments_built"] + report["environments_reused"] == 1
    assert list(scratch.iterdir()) == []


def test_without_uv_bisect_says_how_to_install_it(
    legacy_python: Path, demo_seal_path: Path
) -> None:
    # The legacy environment has modelseal but no uv; a seal packed here differs from it in
    # numpy and scikit-learn, so bisect would need to build environments.
    path = os.pathsep.join(
        folder
        for folder in os.environ.get("PATH", "").split(os.pathsep)
        if folder and not (Path(folder) / "uv").exists()
    )
    result = subprocess.run(
        [str(legacy_python), "-m", "modelseal", "bisect", str(demo_seal_path)],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PATH": path},
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "with uv, which is not installed here" in result.stderr
    assert "(pip install uv)" in result.stderr
    assert "Traceback" not in result.stderr
