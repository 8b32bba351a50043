"""``serve --device cuda`` blames what is really wrong: a CPU-only build of the runtime's
library is named as such, before any count of visible GPUs blames the container."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelseal import pack
from tests.conftest import mlp_weights, onnx_mlp
from tests.serving.test_server_lifecycle import serve_command


def test_cuda_with_a_cpu_only_torch_build_blames_the_build_not_the_container(
    tmp_path: Path,
) -> None:
    torch = pytest.importorskip("torch")
    if torch.version.cuda is not None:
        pytest.skip(f"torch {torch.__version__} is a CUDA build: nothing to blame on the build")
    from tests.fixtures.torch_models import TinyMLP, golden_features, scripted

    seal = pack(
        scripted(TinyMLP()), runtime="torch", name="tiny", version="1",
        golden=golden_features(), output=tmp_path / "torch.seal",
    )  # fmt: skip
    result = serve_command(
        seal.root, "--device", "cuda", "--expect-digest", f"sha256:{seal.digest}"
    )
    assert result.returncode == 1, result.stderr
    assert "--device cuda" in result.stderr and "CPU-only build" in result.stderr
    assert torch.__version__ in result.stderr
    assert "NVIDIA Container Toolkit" not in result.stderr


def test_cuda_with_an_onnxruntime_lacking_its_cuda_provider_names_onnxruntime_gpu(
    tmp_path: Path,
) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has its CUDA provider: nothing to blame on the build")
    features = np.random.default_rng(1).standard_normal((8, 16)).astype(np.float32)
    seal = pack(
        onnx_mlp(mlp_weights(0)), runtime="onnx", name="mlp", version="1", golden=features,
        output=tmp_path / "onnx.seal",
    )  # fmt: skip
    result = serve_command(seal.root, "--device", "cuda:0")
    assert result.returncode == 1, result.stderr
    assert "--device cuda:0" in result.stderr and "no CUDA provider" in result.stderr
    assert "onnxruntime-gpu" in result.stderr
    assert "NVIDIA Container Toolkit" not in result.stderr


def test_auto_with_a_cpu_only_build_serves_on_the_cpu(tmp_path: Path) -> None:
    from modelseal.serving.device import choose_device

    onnxruntime = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has its CUDA provider")
    assert choose_device("auto", "onnx", 0).device == "cpu"
