"""verify and diff: verdicts, ranking-aware tolerances, load failures, and the JSON schemas."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from modelseal import open_seal, pack
from modelseal.environment.fingerprint import capture_environment
from modelseal.errors import DriftError, UsageError
from modelseal.golden.compare import compare_output
from modelseal.golden.tolerance import parse_policy
from modelseal.runtimes.numpy_function import NumpyFunction
from modelseal.verify import (
    OutputReplay,
    Verdict,
    Verification,
    explain_failures,
    verify,
)
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
    assert report.passes(strict_env=True)
    report.check(strict_env=True)
    manifest = json.loads((demo_seal_path / "seal.json").read_text())
    # Every output replayed at both default batch sizes under the seal's own policy.
    replayed = {(r.comparison.name, r.batch_size): r.comparison for r in report.golden}
    assert set(replayed) == {(name, size) for name in manifest["tolerance"] for size in (1, 64)}
    for (name, _), comparison in replayed.items():
        assert comparison.policy == manifest["tolerance"][name]
        assert comparison.passed and comparison.rows == 64
    # The report lists every sealed file with the sha256 of its bytes on disk.
    on_disk = {
        path.relative_to(demo_seal_path).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in demo_seal_path.rglob("*")
        if path.is_file() and path.name != "seal.json"
    }
    assert {f.path: f.sha256 for f in report.files} == on_disk
    assert {f.path for f in report.files} == set(manifest["files"])


def test_the_steps_fill_one_verification_by_name(demo_seal_path: Path) -> None:
    seal = open_seal(demo_seal_path)
    verification = Verification.start(seal, tolerance=["label=exact"], batch_sizes=[8])
    assert str(verification.policies["label"]) == "exact"
    with pytest.raises(ValueError, match="load"):
        verification.report()
    with pytest.raises(ValueError, match="load"):
        verification.replay()

    loaded = verification.load()
    assert loaded is not None and loaded is verification.loaded
    assert verification.failure is None
    with pytest.raises(ValueError, match="replay"):
        verification.report()
    here = capture_environment()
    assert verification.diff_environment(here) == verification.environment
    replays = verification.replay()
    assert {r.batch_size for r in replays} == {8}

    report = verification.report()
    assert report.verdict is Verdict.CONSISTENT
    assert report.golden == replays and report.environment == verification.environment
    assert set(report.timings) == {"load", "environment", "replay"}
    assert report.device == loaded.device


def test_a_model_that_cannot_load_is_a_verdict_of_its_verification(tmp_path: Path) -> None:
    seal = seal_of_a_vanished_module(tmp_path)
    verification = Verification.start(seal)
    assert verification.load() is None
    assert verification.failure is not None
    assert verification.failure.error_type == "ModuleNotFoundError"
    report = verification.report()
    assert report.verdict is Verdict.LOAD_FAILED and report.golden == []
    with pytest.raises(DriftError, match="cannot load here") as raised:
        report.check(strict_env=False)
    assert raised.value.report is report


@pytest.mark.parametrize("sizes", [[0], [4, -1]])
def test_a_batch_size_below_one_is_a_usage_error_before_loading(
    demo_seal_path: Path, sizes: list[int]
) -> None:
    with pytest.raises(UsageError, match=r"batch size -?\d+: .* >= 1"):
        verify(demo_seal_path, batch_sizes=sizes)


def test_verify_batch_size_0_exits_2_naming_the_option(demo_seal_path: Path) -> None:
    result = modelseal("verify", str(demo_seal_path), "--batch-size", "0")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "batch size 0" in result.stderr and ">= 1" in result.stderr
    assert "range()" not in result.stdout + result.stderr


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
    from docs.schemas.generate import SCHEMAS as GENERATED
    from docs.schemas.generate import render

    committed = {path.name for path in SCHEMAS.glob("*.schema.json")}
    assert set(GENERATED) == committed
    assert {"verify-report.schema.json", "diff-report.schema.json"} <= committed
    for name, model in GENERATED.items():
        assert (SCHEMAS / name).read_text() == render(model), name


def test_verify_json_of_a_corrupt_seal_prints_an_error_document(seal_copy: Path) -> None:
    with (seal_copy / "golden.npz").open("ab") as golden:
        golden.write(b"x")
    result = modelseal("verify", "--json", str(seal_copy))
    assert result.returncode == 2
    document = json.loads(result.stdout)
    jsonschema.validate(document, schema("error-report.schema.json"))
    assert document["exit_code"] == 2
    assert document["error"]["type"] == "IntegrityError"
    assert "golden.npz" in document["error"]["message"]
    assert "golden.npz" in result.stderr and "Traceback" not in result.stderr


def test_verify_json_of_drift_prints_the_report_and_no_error_document(
    drifted_ranker: Path,
) -> None:
    result = modelseal("verify", "--json", str(drifted_ranker))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    jsonschema.validate(report, schema("verify-report.schema.json"))
    assert report["verdict"] == "drift"
    assert "drifted beyond tolerance on scores" in result.stderr


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
    header = next(line for line in human.stdout.splitlines() if "risk" in line)
    assert "old.json" in header and "here.json" in header
    assert "sealed" not in header
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


def test_diff_of_a_seal_against_here_in_its_own_venv_has_no_blas_noise(
    demo_seal_path: Path,
) -> None:
    # The seal was packed in this process, which loaded scikit-learn and so scipy's BLAS;
    # `diff` runs in a fresh one that imports neither.
    as_json = modelseal("diff", "--json", str(demo_seal_path), "-")
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)["rows"]
    assert [row for row in rows if row["category"] == "blas"] == []
    verified = verify(demo_seal_path)
    assert [row for row in verified.environment if row.category == "blas"] == []


def test_diff_strict_exits_1_on_a_critical_row(tmp_path: Path) -> None:
    here = json.loads(modelseal("env", "--json").stdout)
    old = {**here, "numpy_version": "1.26.4", "packages": {**here["packages"], "numpy": "1.26.4"}}
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "here.json").write_text(json.dumps(here))
    files = (str(tmp_path / "old.json"), str(tmp_path / "here.json"))

    assert modelseal("diff", *files).returncode == 0
    strict = modelseal("diff", "--strict", *files)
    assert strict.returncode == 1
    assert "critical" in strict.stdout and "numpy" in strict.stderr
    as_json = modelseal("diff", "--strict", "--json", *files)
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["highest_risk"] == "critical"
    same = modelseal("diff", "--strict", files[1], files[1])
    assert same.returncode == 0, same.stdout + same.stderr


def test_diff_labels_a_seal_against_here_sealed_and_here(demo_seal_path: Path) -> None:
    result = modelseal(
        "diff",
        str(demo_seal_path),
        "-",
        extra_env={"MKL_CBWR": "AVX2"},
    )
    assert result.returncode == 0
    assert "MKL_CBWR" in result.stdout
    header = next(line for line in result.stdout.splitlines() if "risk" in line)
    assert "sealed" in header and "here" in header


def test_a_bad_tolerance_override_is_a_usage_error(demo_seal_path: Path) -> None:
    result = modelseal("verify", "--tolerance", "nearly:3", str(demo_seal_path))
    assert result.returncode == 2
    assert "nearly" in result.stderr


# --- exact between batch sizes ---------------------------------------------------------------

BATCH_ROUNDING = """
import numpy as np


def predict(inputs, weights):
    # Batches of more than one row round differently, by construction: what a BLAS does when
    # it blocks a matrix product differently for another batch size. Elementwise products
    # only, so the bits are the same in every process and on every machine.
    x = inputs["input"]
    factor = np.float32(1) + (np.float32(2) ** -22 if len(x) > 1 else np.float32(0))
    return {"scores": x * weights["w"] * factor}
"""


@pytest.fixture(scope="module")
def batch_rounding_seal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("batch-rounding")
    (folder / "model.py").write_text(BATCH_ROUNDING)
    rng = np.random.default_rng(5)
    weights = {"w": rng.uniform(1, 2, size=4).astype(np.float32)}
    seal = pack(
        NumpyFunction(source=folder / "model.py", weights=weights),
        runtime="numpy", name="rounding", version="1",
        golden=rng.uniform(1, 2, size=(16, 4)).astype(np.float32), output=folder / "r.seal",
    )  # fmt: skip
    return seal.root


def test_exact_failing_between_batch_sizes_is_explained(batch_rounding_seal: Path) -> None:
    assert verify(batch_rounding_seal).verdict is Verdict.CONSISTENT, "the default tolerates it"
    result = modelseal("verify", str(batch_rounding_seal), "--tolerance", "exact")
    assert result.returncode == 1
    text = " ".join(result.stdout.split())
    assert "bits differ between batch sizes 1 and 16" in text
    assert "blocking" in text and "ulp:" in text and "allclose" in text

    report = verify(batch_rounding_seal, tolerance=["exact"])
    assert report.verdict is Verdict.DRIFT
    (note,) = report.notes
    suggested = note.split("--tolerance scores=", 1)[1].split(";", 1)[0]
    assert verify(batch_rounding_seal, tolerance=[suggested]).verdict is Verdict.CONSISTENT


def _replay(batch_size: int, expected: np.ndarray, actual: np.ndarray, policy: str) -> OutputReplay:
    comparison = compare_output("scores", expected, actual, parse_policy(policy))
    return OutputReplay(batch_size=batch_size, comparison=comparison)


def test_explanations_name_the_cause_only_for_rounding_sized_exact_failures() -> None:
    golden = np.linspace(1, 2, 12, dtype=np.float32).reshape(3, 4)
    one_ulp = np.nextafter(golden, np.float32(3))
    changed = golden * np.float32(1.01)

    everywhere = explain_failures(
        [_replay(1, golden, one_ulp, "exact"), _replay(3, golden, one_ulp, "exact")], 3
    )
    assert len(everywhere) == 1
    assert "at batch sizes 1, 3" in everywhere[0] and "thread count" in everywhere[0]
    assert explain_failures([_replay(1, golden, changed, "exact")], 3) == []
    assert explain_failures([_replay(1, golden, one_ulp, "allclose:0,0")], 3) == []
    assert explain_failures([_replay(1, golden, golden, "exact")], 3) == []
