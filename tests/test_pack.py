"""Packing: golden outputs come from the sealed bytes, the lock is the runtime's closure."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from modelseal import InputError, Seal, UsageError, open_seal, pack
from modelseal.demo import DemoModel
from modelseal.golden import load_golden
from modelseal.runtimes import get_runtime


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
    seal = pack(
        demo_model.estimator,
        runtime="sklearn",
        name="digits",
        version="2",
        golden=demo_model.golden_inputs[:8],
        output=archive,
    )
    assert seal.source == str(archive)
    assert list(tmp_path.iterdir()) == [archive]
    assert open_seal(archive, extract_to=tmp_path / "x").manifest.version == "2"


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
