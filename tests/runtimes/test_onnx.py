"""The ONNX runtime on real onnxruntime sessions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelseal import DeviceError, RuntimeLoadError, UsageError, open_seal, pack
from modelseal.golden import load_golden
from modelseal.runtimes.onnx import OnnxRuntime, SessionSettings
from modelseal.types import OutputKind
from tests.cli_process import run_modelseal
from tests.conftest import mlp_forward, mlp_weights, onnx_mlp

EXAMPLE = np.zeros((2, 16), dtype=np.float32)


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    path = tmp_path / "mlp.onnx"
    path.write_bytes(onnx_mlp(mlp_weights(0)))
    return path


def test_signature_comes_from_the_graph(onnx_file: Path, tmp_path: Path) -> None:
    signature = OnnxRuntime().save(onnx_file, tmp_path / "model", EXAMPLE)
    (features,) = signature.inputs
    (scores,) = signature.outputs
    assert (features.name, features.dtype, features.shape) == ("features", "float32", (-1, 16))
    assert (scores.name, scores.dtype, scores.shape, scores.kind) == (
        "scores",
        "float32",
        (-1, 8),
        OutputKind.SCORES,
    )


def test_round_trip_matches_an_independent_numpy_forward(onnx_file: Path, tmp_path: Path) -> None:
    features = np.random.default_rng(1).standard_normal((32, 16)).astype(np.float32)
    seal = pack(
        onnx_file, runtime="onnx", name="mlp", version="1", golden=features,
        output=tmp_path / "mlp.seal",
    )  # fmt: skip
    golden = load_golden(open_seal(seal.root).golden_path)
    np.testing.assert_allclose(
        np.asarray(golden.outputs["scores"], dtype=np.float32),
        mlp_forward(mlp_weights(0), features),
        rtol=1e-5,
        atol=1e-5,
    )
    assert {line.split("==")[0] for line in seal.lock_lines()} >= {"numpy", "onnxruntime"}
    assert "scikit-learn" not in {line.split("==")[0] for line in seal.lock_lines()}


def test_session_settings_are_sealed_and_applied(onnx_file: Path, tmp_path: Path) -> None:
    runtime = OnnxRuntime(SessionSettings(intra_op_num_threads=1, graph_optimization_level="basic"))
    runtime.save(onnx_file, tmp_path / "model", EXAMPLE)
    recorded = json.loads((tmp_path / "model" / "runtime.json").read_text())
    assert recorded["session"] == {
        "intra_op_num_threads": 1,
        "inter_op_num_threads": 0,
        "graph_optimization_level": "basic",
    }
    loaded = OnnxRuntime().load(tmp_path / "model", "cpu")
    options = loaded.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert str(options.graph_optimization_level).endswith("ORT_ENABLE_BASIC")
    assert set(loaded.load_timings) == {"import", "session"}


def test_cuda_without_a_cuda_provider_fails_fast(onnx_file: Path, tmp_path: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider; the GPU path is tested on a GPU machine")
    OnnxRuntime().save(onnx_file, tmp_path / "model", EXAMPLE)
    with pytest.raises(DeviceError, match="no CUDA provider .* install onnxruntime-gpu"):
        OnnxRuntime().load(tmp_path / "model", "cuda:0")


def test_not_an_onnx_model_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="expected a .onnx path"):
        OnnxRuntime().save(12345, tmp_path / "model", EXAMPLE)


def test_a_model_file_of_another_runtime_is_refused_naming_both(tmp_path: Path) -> None:
    """``pack model.joblib -r onnx`` once failed with a protobuf error about a temp path."""
    model = tmp_path / "model.joblib"
    model.write_bytes(b"\x80\x04 a pickle, not a protobuf")
    np.save(tmp_path / "golden.npy", EXAMPLE)
    result = run_modelseal(
        "pack", str(model), "-r", "onnx", "--name", "mlp", "--version", "1",
        "--golden", str(tmp_path / "golden.npy"), "-o", str(tmp_path / "mlp.seal"),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {model}: the onnx runtime expected an ONNX model file (.onnx), not a .joblib "
        "file (.joblib files are read by --runtime sklearn)"
    )
    assert not (tmp_path / "mlp.seal").exists()


def test_a_broken_onnx_file_is_named_as_given_not_by_its_temporary_copy(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf at all")
    with pytest.raises(RuntimeLoadError) as raised:
        pack(broken, runtime="onnx", name="mlp", version="1", golden=EXAMPLE,
             output=tmp_path / "out" / "mlp.seal")  # fmt: skip
    message = str(raised.value)
    assert message.startswith(f"{broken}: onnxruntime cannot load it as an ONNX model")
    assert ".modelseal-pack-" not in message
    assert "model.onnx" not in message
