"""Packing: golden outputs come from the sealed bytes, the lock is the runtime's closure."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from modelseal import InputError, Seal, UsageError, open_seal, pack
from modelseal.demo import DemoModel
from modelseal.golden import load_golden
from modelseal.runtimes import get_runtime
from modelseal.seal.manifest import check_identity
from tests.cli_process import run_modelseal


class Where:
    """An ``os.PathLike`` that is not a ``pathlib.Path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return str(self.path)


def test_golden_outputs_are_what_the_sealed_model_file_produces(demo_seal: Seal) -> None:
    golden = load_golden(demo_seal.golden_path)
    reloaded = get_runtime("sklearn").load(demo_seal.model_dir, "cpu")
    replay = reloaded.predict(golden.inputs)
    assert set(golden.outputs) == {"label", "probabilities", "scores"}
    for name, expected in golden.outputs.items():
        np.testing.assert_array_equal(replay[name], expected)


def test_golden_outputs_match_the_trained_estimator(demo_seal: Seal, demo_model: DemoModel) -> None:
    golden = load_golden(demo_seal.golden_path)
    np.testing.assert_array_equal(golden.inputs["input"], demo_model.golden_inputs)
    np.testing.assert_allclose(
        np.asarray(golden.outputs["probabilities"], dtype=np.float64),
        demo_model.estimator.predict_proba(demo_model.golden_inputs),
        rtol=0,
        atol=0,
    )
    assert golden.outputs["label"].dtype == np.int64


def test_the_lock_is_the_runtime_closure_at_installed_versions(demo_seal: Seal) -> None:
    pins = dict(line.split("==") for line in demo_seal.lock_lines())
    for name in ("scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl"):
        assert pins[name] == metadata.version(name), name
    for tool in ("pytest", "ruff", "mypy", "jupyter", "torch", "mlflow", "onnxruntime"):
        assert tool not in pins


def test_the_environment_record_is_this_environment(demo_seal: Seal) -> None:
    record = demo_seal.environment()
    assert record.numpy_version == np.__version__
    assert record.packages["scikit-learn"] == metadata.version("scikit-learn")


def test_pack_to_a_gzip_archive(demo_model: DemoModel, tmp_path: Path) -> None:
    archive = tmp_path / "digits.seal.tar.gz"
    with pack(
        demo_model.estimator,
        runtime="sklearn",
        name="digits",
        version="2",
        golden=demo_model.golden_inputs[:8],
        output=archive,
    ) as seal:
        assert seal.source == str(archive)
        assert seal.manifest.version == "2"
    assert list(tmp_path.iterdir()) == [archive]
    with open_seal(archive, extract_to=tmp_path / "x") as reopened:
        assert reopened.digest == seal.digest
    assert list(tmp_path.iterdir()) == [archive]


def test_tolerance_options_are_recorded(demo_model: DemoModel, tmp_path: Path) -> None:
    seal = pack(
        demo_model.estimator,
        runtime="sklearn",
        name="digits",
        version="1",
        golden=demo_model.golden_inputs[:4],
        output=tmp_path / "d.seal",
        tolerance=["allclose:0.001,0.0001", "scores=topk:3,0.5"],
    )
    manifest = json.loads((seal.root / "seal.json").read_text())
    assert manifest["tolerance"]["probabilities"] == "allclose:0.001,0.0001"
    assert manifest["tolerance"]["scores"] == "topk:3,0.5"


def test_existing_output_is_never_overwritten(demo_seal: Seal, demo_model: DemoModel) -> None:
    with pytest.raises(UsageError, match="already exists"):
        pack(
            demo_model.estimator,
            runtime="sklearn",
            name="digits",
            version="1",
            golden=demo_model.golden_inputs,
            output=demo_seal.root,
        )


def test_golden_inputs_of_the_wrong_width_are_refused_and_nothing_is_left(
    demo_model: DemoModel, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match=r"shape \[4, 3\] does not match the signature \[-1, 64\]"):
        pack(
            demo_model.estimator,
            runtime="sklearn",
            name="digits",
            version="1",
            golden=np.zeros((4, 3)),
            output=tmp_path / "bad.seal",
        )
    assert list(tmp_path.iterdir()) == []


def test_an_unfitted_estimator_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="fit it before sealing"):
        pack(
            LinearRegression(),
            runtime="sklearn",
            name="lr",
            version="1",
            golden=np.zeros((2, 3)),
            output=tmp_path / "lr.seal",
        )


def test_an_unknown_runtime_lists_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(
        UsageError, match=r"unknown runtime 'tensorflow'; available runtimes: .*sklearn"
    ):
        pack(object(), runtime="tensorflow", name="x", version="1", golden=np.zeros((1, 1)))


# --- the documented forms of every argument ------------------------------------------------


def test_every_path_may_be_a_str_or_any_os_pathlike(demo_model: DemoModel, tmp_path: Path) -> None:
    rows = demo_model.golden_inputs[:4]
    np.save(tmp_path / "golden.npy", rows)
    joblib.dump(demo_model.estimator, tmp_path / "digits.joblib")
    as_str = pack(
        str(tmp_path / "digits.joblib"), runtime="sklearn", name="digits", version="1",
        golden=str(tmp_path / "golden.npy"), output=str(tmp_path / "a.seal"),
    )  # fmt: skip
    assert as_str.root == tmp_path / "a.seal"
    with pack(
        Where(tmp_path / "digits.joblib"), runtime="sklearn", name="digits", version="1",
        golden=Where(tmp_path / "golden.npy"), output=Where(tmp_path / "b.seal.tar"),
    ) as as_pathlike:  # fmt: skip
        assert as_pathlike.source == str(tmp_path / "b.seal.tar")
    with open_seal(Where(tmp_path / "b.seal.tar"), extract_to=Where(tmp_path / "x")) as seal:
        np.testing.assert_array_equal(load_golden(seal.golden_path).inputs["input"], rows)
        assert seal.root == tmp_path / "x"


@pytest.mark.parametrize("form", ["array", "nested list", "mapping of lists", ".npz path"])
def test_golden_inputs_in_every_documented_form(
    demo_model: DemoModel, tmp_path: Path, form: str
) -> None:
    rows = demo_model.golden_inputs[:4]
    np.savez(tmp_path / "golden.npz", input=rows)
    golden: dict[str, Any] = {
        "array": rows,
        "nested list": rows.tolist(),
        "mapping of lists": {"input": rows.tolist()},
        ".npz path": str(tmp_path / "golden.npz"),
    }
    seal = pack(
        demo_model.estimator, runtime="sklearn", name="digits", version="1",
        golden=golden[form], output=tmp_path / "d.seal",
    )  # fmt: skip
    np.testing.assert_array_equal(load_golden(seal.golden_path).inputs["input"], rows)


def test_ragged_golden_rows_are_an_input_error(demo_model: DemoModel, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot be one array.*rows of unequal length"):
        pack(
            demo_model.estimator, runtime="sklearn", name="digits", version="1",
            golden=[[0.0] * 64, [0.0] * 63], output=tmp_path / "d.seal",
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("tolerance", "expected"),
    [
        ("exact", {"label": "exact", "probabilities": "exact", "scores": "exact"}),
        (["exact", "scores=topk:3,0.5"], {"probabilities": "exact", "scores": "topk:3,0.5"}),
    ],
)
def test_tolerance_is_one_string_or_a_list_of_them(
    demo_model: DemoModel, tmp_path: Path, tolerance: str | list[str], expected: dict[str, str]
) -> None:
    seal = pack(
        demo_model.estimator, runtime="sklearn", name="digits", version="1",
        golden=demo_model.golden_inputs[:4], output=tmp_path / "d.seal", tolerance=tolerance,
    )  # fmt: skip
    assert expected.items() <= dict(seal.manifest.tolerance).items()


def test_a_bad_tolerance_is_refused_before_the_model_is_touched(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="tolerance policy 'bogus'"):
        pack(
            object(), runtime="sklearn", name="x", version="1", golden=np.zeros((1, 1)),
            output=tmp_path / "x.seal", tolerance="bogus",
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


# --- names and versions go into URL paths --------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "team/bc"),
        ("name", ""),
        ("name", "-bc"),
        ("name", "my model"),
        ("name", "x" * 129),
        ("version", "1/2"),
        ("version", "v1?debug"),
        ("version", ".."),
    ],
)
def test_a_name_or_version_that_is_no_url_path_segment_is_refused(
    tmp_path: Path, field: str, value: str
) -> None:
    identity: dict[str, Any] = {"name": "digits", "version": "1", field: value}
    with pytest.raises(UsageError, match=rf"--{field} .*only letters, digits, '\.', '_' and '-'"):
        pack(object(), runtime="sklearn", golden=np.zeros((1, 1)), output=tmp_path / "x.seal",
             **identity)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "value", ["digits", "team-bc", "team_bc.v2", "1.0.0", "2026-12-01", "X" * 128]
)
def test_a_name_or_version_of_url_safe_characters_is_accepted(value: str) -> None:
    check_identity(value, value)
    assert quote(value, safe="") == value


def test_pack_name_with_a_slash_exits_2_with_a_suggestion(tmp_path: Path) -> None:
    np.save(tmp_path / "golden.npy", np.zeros((2, 64)))
    result = run_modelseal(
        "pack", str(tmp_path / "absent.joblib"), "--runtime", "sklearn", "--name", "team/bc",
        "--version", "1", "--golden", str(tmp_path / "golden.npy"), "-o", str(tmp_path / "t.seal"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "--name 'team/bc': a model name goes into URL paths" in result.stderr
    assert "(for example 'team-bc')" in result.stderr
    assert not (tmp_path / "t.seal").exists()
