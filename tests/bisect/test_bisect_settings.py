"""bisect on a seal whose replay breaks only because a BLAS setting differs.

The model computes each row on its own, so its float32 outputs are bitwise the same at any
batch size and the seal can hold them to ``exact``. It is sealed with OpenBLAS forced to a
kernel (``OPENBLAS_CORETYPE``) and one MKL thread count, and bisected here without the
kernel variable and with another MKL thread count. Which of the two changes the bits is
computed first with plain numpy, apart from modelseal.
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

from tests.cli_process import run_modelseal
from tests.conftest import mlp_weights

pytestmark = pytest.mark.slow
FUNCTION = Path(__file__).parent / "rowwise_mlp.py"
SIZES = (256, 1024, 1024, 16)
KERNEL = "OPENBLAS_CORETYPE"
DECOY = "MKL_NUM_THREADS"  # numpy's own OpenBLAS does not read it
SEALED_WITH = {KERNEL: "Prescott", DECOY: "1", "OPENBLAS_NUM_THREADS": "1"}


def here_environment(overrides: dict[str, str | None]) -> dict[str, str]:
    """This process's environment with the sealed settings, then ``overrides`` applied."""
    environment = {**os.environ, **SEALED_WITH}
    for name, value in overrides.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return environment


HERE_SETTINGS: dict[str, str | None] = {KERNEL: None, DECOY: "4"}


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("rowwise")
    weights = {f"layer{i}": w for i, w in enumerate(mlp_weights(7, SIZES))}
    np.savez(folder / "weights.npz", **cast(dict[str, Any], weights))
    rng = np.random.default_rng(3)
    np.save(folder / "golden.npy", rng.standard_normal((16, SIZES[0])).astype(np.float32))
    return folder / "weights.npz", folder / "golden.npy"


def plain_outputs(environment: dict[str, str], weights: Path, inputs: Path) -> np.ndarray:
    """The model's outputs computed by numpy alone in a process with ``environment``."""
    script = f"""
import sys, numpy as np
sys.path.insert(0, {str(FUNCTION.parent)!r})
from rowwise_mlp import predict
w = np.load({str(weights)!r}); x = np.load({str(inputs)!r})
sys.stdout.buffer.write(predict({{"input": x}}, {{n: w[n] for n in w.files}})["scores"].tobytes())
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=300, env=environment,
        check=True,
    )  # fmt: skip
    return np.frombuffer(result.stdout, dtype=np.float32)


def test_bisect_names_the_kernel_variable_without_building_an_environment(
    model_files: tuple[Path, Path], tmp_path: Path
) -> None:
    weights, inputs = model_files
    sealed = plain_outputs(here_environment({}), weights, inputs)
    if np.array_equal(sealed, plain_outputs(here_environment(HERE_SETTINGS), weights, inputs)):
        pytest.skip(f"this machine's BLAS gives the same bits with and without {KERNEL}")
    if not np.array_equal(sealed, plain_outputs(here_environment({DECOY: "4"}), weights, inputs)):
        pytest.skip(f"this machine's BLAS reads {DECOY}, so it is no decoy here")

    seal = tmp_path / "rowwise.seal"
    packed = run_modelseal(
        "pack", str(FUNCTION), "--runtime", "numpy", "--weights", str(weights),
        "--name", "rowwise", "--version", "1", "--golden", str(inputs),
        "--tolerance", "exact", "-o", str(seal), env=here_environment({}),
    )  # fmt: skip
    assert packed.returncode == 0, packed.stderr
    golden = np.load(seal / "golden.npz")["outputs/scores"]
    assert np.array_equal(golden.ravel(), sealed)

    verified = run_modelseal("verify", "--json", str(seal), env=here_environment(HERE_SETTINGS))
    assert verified.returncode == 1, verified.stderr
    assert json.loads(verified.stdout)["verdict"] == "drift"

    result = run_modelseal("bisect", "--json", str(seal), env=here_environment(HERE_SETTINGS))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["isolated"] is True
    assert [(c["change"]["name"], c["role"]) for c in report["culprits"]] == [(KERNEL, "cause")]
    culprit = report["culprits"][0]
    assert (culprit["change"]["sealed"], culprit["change"]["here"]) == ("Prescott", None)
    assert culprit["with_change"]["verdict"] == "drift"
    assert culprit["without_change"]["verdict"] == "consistent"
    assert {c["name"] for c in report["changes"]} == {KERNEL, DECOY}
    # Nothing was built: every trial ran in this environment, and uv was never asked.
    assert {trial["environment"] for trial in report["trials"]} == {"here"}
    assert report["environments_built"] == report["environments_reused"] == 0
    assert report["registry"] == []
    assert not (seal / "model" / "__pycache__").exists()
