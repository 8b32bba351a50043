"""Every runtime: pack, open in a fresh process, verify, and predict through the server's
core (the adaptive batcher) on a batch; the outputs are the golden ones within the seal's
tolerance (another process may get other bits: they are never compared bitwise)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelseal import pack
from modelseal.runtimes.numpy_function import NumpyFunction
from tests.conftest import mlp_weights, onnx_mlp

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).parents[1] / "fixtures"
CHECK = FIXTURES / "serve_core_check.py"
FEATURES_32x16 = np.random.default_rng(2).standard_normal((32, 16)).astype(np.float32)


def run_check(seal: Path, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(CHECK), str(seal), *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    parsed: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return parsed


def sklearn_seal(folder: Path, demo_seal_path: Path) -> Path:
    return demo_seal_path


def onnx_seal(folder: Path, _demo: Path) -> Path:
    features = np.random.default_rng(1).standard_normal((32, 16)).astype(np.float32)
    return pack(
        onnx_mlp(mlp_weights(0)), runtime="onnx", name="mlp", version="1", golden=features,
        output=folder / "onnx.seal",
    ).root  # fmt: skip


def numpy_seal(folder: Path, _demo: Path) -> Path:
    weights = {f"layer{i}": w for i, w in enumerate(mlp_weights(2, (16, 64, 8)))}
    return pack(
        NumpyFunction(source=FIXTURES / "mlp_function.py", weights=weights), runtime="numpy",
        name="mlp", version="1", golden=FEATURES_32x16, output=folder / "numpy.seal",
    ).root  # fmt: skip


def torch_seal(folder: Path, _demo: Path) -> Path:
    from tests.fixtures.torch_models import TinyMLP, golden_features, scripted

    return pack(
        scripted(TinyMLP()), runtime="torch", name="tiny", version="1",
        golden=golden_features(), output=folder / "torch.seal",
    ).root  # fmt: skip


def mlflow_seal(folder: Path, _demo: Path) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(7).standard_normal((90, 4))
    model = LogisticRegression(max_iter=500).fit(x, np.argmax(x[:, :3], axis=1))
    mlflow.sklearn.save_model(
        model, str(folder / "mlflow-model"), input_example=x[:8],
        signature=infer_signature(x, model.predict(x)),
    )  # fmt: skip
    return pack(
        folder / "mlflow-model", runtime="mlflow", name="clf", version="1",
        output=folder / "mlflow.seal",
    ).root  # fmt: skip


BUILDERS = {
    "sklearn": sklearn_seal,
    "onnx": onnx_seal,
    "numpy": numpy_seal,
    "torch": torch_seal,
    "mlflow": mlflow_seal,
}


@pytest.mark.parametrize("runtime", list(BUILDERS))
def test_round_trip_through_the_server_core(
    runtime: str, tmp_path: Path, demo_seal_path: Path
) -> None:
    seal = BUILDERS[runtime](tmp_path, demo_seal_path)
    result = run_check(seal)
    assert result["verify"] == "consistent"
    assert result["state"] == "ready"
    assert result["whole_batch"] is True


def test_a_torch_seal_is_within_tolerance_at_every_batch_size_1_to_64(tmp_path: Path) -> None:
    result = run_check(torch_seal(tmp_path, tmp_path), "--sizes")
    assert result["concurrent"] == [True] * 64
    assert result["one_by_one"] == [True] * 64
    # The 64 concurrent requests ran as fewer batches than requests: they were merged.
    assert result["concurrent_batches"] >= 1
    assert result["concurrent_batches"] < 64
