"""A float32 MLP sealed under one BLAS configuration and verified under another.

The seal and the verification run in separate processes with different OpenBLAS settings,
as they would in a training and a serving container.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from modelseal.golden.tolerance import AllClose, parse_policy
from tests.cli_process import run_modelseal
from tests.conftest import mlp_weights

pytestmark = pytest.mark.slow
FUNCTION = Path(__file__).parents[1] / "fixtures" / "mlp_function.py"
SIZES = (256, 1024, 1024, 16)


def independent_replay(env: dict[str, str], weights: Path, inputs: Path) -> dict[str, Any]:
    """The MLP computed by plain numpy under ``env``: all rows at once, and one at a time."""
    script = f"""
import json, numpy as np
w = np.load({str(weights)!r}); x = np.load({str(inputs)!r})
def forward(h):
    names = sorted(w.files)
    for i, n in enumerate(names):
        h = h @ w[n]
        if i < len(names) - 1: h = np.maximum(h, np.float32(0))
    return h
print(json.dumps({{"batch": forward(x).tolist(),
                   "rows": np.concatenate([forward(x[i:i+1]) for i in range(len(x))]).tolist()}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
        env={**os.environ, **env}, check=True,
    )  # fmt: skip
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


@pytest.fixture(scope="module")
def mlp_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("mlp")
    weights = {f"layer{i}": w for i, w in enumerate(mlp_weights(7, SIZES))}
    np.savez(folder / "weights.npz", **cast(dict[str, Any], weights))
    rng = np.random.default_rng(3)
    np.save(folder / "golden.npy", rng.standard_normal((64, SIZES[0])).astype(np.float32))
    return folder / "weights.npz", folder / "golden.npy"


@pytest.mark.parametrize(
    ("sealed_with", "verified_with"),
    [
        pytest.param({"OPENBLAS_NUM_THREADS": "1"}, {"OPENBLAS_NUM_THREADS": "2"}, id="threads"),
        pytest.param(
            {"OPENBLAS_NUM_THREADS": "1", "OPENBLAS_CORETYPE": "Haswell"},
            {"OPENBLAS_NUM_THREADS": "2"},
            id="threads-and-kernel",
        ),
    ],
)
def test_benign_blas_changes_verify_as_consistent_with_differences_reported(
    mlp_files: tuple[Path, Path],
    tmp_path: Path,
    sealed_with: dict[str, str],
    verified_with: dict[str, str],
) -> None:
    weights, golden_inputs = mlp_files
    seal = tmp_path / "mlp.seal"
    packed = run_modelseal(
        "pack", str(FUNCTION), "--runtime", "numpy", "--weights", str(weights),
        "--name", "mlp", "--version", "1", "--golden", str(golden_inputs), "-o", str(seal),
        extra_env=sealed_with,
    )  # fmt: skip
    assert packed.returncode == 0, packed.stderr

    verified = run_modelseal("verify", "--json", str(seal), extra_env=verified_with)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["verdict"] == "consistent"
    subjects = {row["subject"]: row for row in report["environment"]}
    assert subjects["env OPENBLAS_NUM_THREADS"]["packed"] == "1"
    assert subjects["env OPENBLAS_NUM_THREADS"]["current"] == "2"
    assert subjects["env OPENBLAS_NUM_THREADS"]["risk"] == "warning"
    assert any(s.startswith("blas openblas num_threads") for s in subjects)

    golden = np.load(seal / "golden.npz")["outputs/scores"]
    (close, *_) = parse_policy(
        json.loads((seal / "seal.json").read_text())["tolerance"]["scores"]
    ).checks
    assert isinstance(close, AllClose)
    allowed = close.atol + close.rtol * np.abs(golden.astype(np.float64))
    here = independent_replay(verified_with, weights, golden_inputs)
    by_batch = {r["batch_size"]: r["comparison"] for r in report["golden"]}
    for batch_size, key in ((64, "batch"), (1, "rows")):
        # Which bits change depends on this machine's BLAS kernels, so nothing here is
        # compared bitwise: an independent replay under the same settings is within the
        # sealed policy (so "consistent" is the right verdict), and the report's own
        # measures agree with each other and with that policy.
        actual = np.asarray(here[key], dtype=np.float64)
        assert np.all(np.abs(actual - golden) <= allowed)
        comparison = by_batch[batch_size]
        assert comparison["passed"] and comparison["rows_out_of_tolerance"] == 0
        assert comparison["max_abs_diff"] <= float(allowed.max())
        assert comparison["bitwise_equal"] == (comparison["max_abs_diff"] == 0)
        assert comparison["max_ulp_diff"] is not None
