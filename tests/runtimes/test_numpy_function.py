"""The numpy runtime holds ``predict(inputs, weights)`` to its documented contract.

A function that raises or returns anything but a dict of arrays with one row per input row
fails with a ``RuntimeLoadError`` naming the user's file (never the sealed copy's path) and
what was expected.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from modelseal import RuntimeLoadError, UsageError, pack
from modelseal.runtimes import get_runtime
from modelseal.runtimes.numpy_function import NumpyFunction
from modelseal.verify import Verdict, verify
from tests.cli_process import run_modelseal

ROWS = np.arange(32, dtype=np.float32).reshape(8, 4)
WEIGHTS = {"w": np.ones((4, 3), dtype=np.float32)}
CONTRACT = "expected a dict of output name -> numpy array, each with the batch on axis 0"


def function_file(folder: Path, body: str, name: str = "scorer.py") -> Path:
    source = folder / name
    source.write_text(
        "import numpy as np\n\n\ndef predict(inputs, weights):\n" + textwrap.indent(body, "    ")
    )
    return source


def seal_function(source: Path | str, folder: Path, golden: np.ndarray = ROWS) -> Path:
    return pack(
        NumpyFunction(source=source, weights=WEIGHTS), runtime="numpy", name="scorer",
        version="1", golden=golden, output=folder / "scorer.seal",
    ).root  # fmt: skip


@pytest.mark.parametrize(
    ("body", "fact"),
    [
        ("return [inputs['input'] @ weights['w']]", "predict() returned a list"),
        ("return {}", "predict() returned an empty dict"),
        ("return {'scores': float((inputs['input'] @ weights['w']).sum())}",
         "returned 'scores' as a scalar, without a batch axis"),
        ("return {'scores': [object()] * len(inputs['input'])}",
         "returned 'scores' as list of dtype object, not numbers, booleans or text"),
        ("return {'scores': (inputs['input'] @ weights['w']).sum(axis=0)}",
         "returned 3 rows of 'scores' for 8 input rows"),
        ("return {'scores': [[1.0], [1.0, 2.0]]}", "returned 'scores' that is no array"),
    ],
)  # fmt: skip
def test_a_wrong_return_is_a_runtime_load_error_naming_the_file_and_the_contract(
    tmp_path: Path, body: str, fact: str
) -> None:
    source = function_file(tmp_path, body)
    with pytest.raises(RuntimeLoadError) as raised:
        seal_function(source, tmp_path)
    message = str(raised.value)
    assert message.startswith(f"{source}: ")
    assert fact in message
    assert CONTRACT in message
    assert "model.py" not in message


def test_an_exception_in_predict_names_the_file_and_line(tmp_path: Path) -> None:
    source = function_file(tmp_path, "return {'scores': inputs['features'] @ weights['w']}")
    with pytest.raises(RuntimeLoadError) as raised:
        seal_function(source, tmp_path)
    assert str(raised.value) == (
        f"{source} line 5: predict(inputs, weights) raised KeyError: 'features' "
        "(inputs given: input float32[8, 4]; weights: w)"
    )


def test_on_the_command_line_a_wrong_return_exits_1_without_a_traceback(tmp_path: Path) -> None:
    source = function_file(tmp_path, "return {'scores': 1.0}")
    np.savez(tmp_path / "w.npz", w=WEIGHTS["w"])
    np.save(tmp_path / "golden.npy", ROWS)
    result = run_modelseal(
        "pack", str(source), "--runtime", "numpy", "--weights", str(tmp_path / "w.npz"),
        "--name", "scorer", "--version", "1", "--golden", str(tmp_path / "golden.npy"),
        "-o", str(tmp_path / "scorer.seal"),
    )  # fmt: skip
    assert result.returncode == 1
    assert f"{source}: predict() returned 'scores' as a scalar" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "scorer.seal").exists()


def test_a_sealed_function_that_breaks_later_is_named_by_its_original_file(
    tmp_path: Path,
) -> None:
    """Right for the 8 golden rows, wrong for any other batch: caught when serving."""
    source = function_file(tmp_path, "return {'scores': np.zeros((8, 3), np.float32)}", "fixed.py")
    root = seal_function(source, tmp_path)
    loaded = get_runtime("numpy").load(root / "model", "cpu")
    with pytest.raises(RuntimeLoadError) as raised:
        loaded.predict({"input": ROWS[:1]})
    assert str(raised.value).startswith(
        "fixed.py (sealed as model/model.py): predict() returned 8 rows of 'scores' for 1 "
        "input rows"
    )


def test_text_outputs_round_trip(tmp_path: Path) -> None:
    source = function_file(
        tmp_path,
        "return {'label': np.where(inputs['input'][:, 0] > 10, 'high', 'low')}",
    )
    root = seal_function(str(source), tmp_path)
    report = verify(root)
    assert report.verdict is Verdict.CONSISTENT
    loaded = get_runtime("numpy").load(root / "model", "cpu")
    np.testing.assert_array_equal(
        loaded.predict({"input": ROWS})["label"], ["low"] * 3 + ["high"] * 5
    )


@pytest.mark.parametrize(
    ("source_name", "weights_name", "fact"),
    [
        ("scorer.txt", "w.npz", "the numpy runtime expected a Python file defining predict"),
        ("scorer.py", "w.npy", "expected weights as an .npz file of named arrays, not a .npy"),
        ("scorer.py", "fake.npz", "fake.npz: not an .npz file"),
    ],
)
def test_files_of_the_wrong_kind_are_refused_naming_them(
    tmp_path: Path, source_name: str, weights_name: str, fact: str
) -> None:
    source = tmp_path / source_name
    source.write_text("def predict(inputs, weights):\n    return dict(inputs)\n")
    np.savez(tmp_path / "w.npz", w=WEIGHTS["w"])
    np.save(tmp_path / "w.npy", WEIGHTS["w"])
    (tmp_path / "fake.npz").write_text("not a zip")
    with pytest.raises(UsageError, match=fact):
        pack(
            NumpyFunction(source=source, weights=tmp_path / weights_name), runtime="numpy",
            name="scorer", version="1", golden=ROWS, output=tmp_path / "scorer.seal",
        )  # fmt: skip
    assert not (tmp_path / "scorer.seal").exists()


def test_loading_a_sealed_function_writes_no_bytecode_into_the_seal(tmp_path: Path) -> None:
    """Python writes __pycache__ beside an imported file unless told not to; in a seal that is
    a file nobody sealed, and the next integrity check would refuse the seal."""
    source = function_file(tmp_path, 'return {"scores": inputs["input"] @ weights["w"]}')
    seal = pack(
        NumpyFunction(source=source, weights=WEIGHTS),
        runtime="numpy", name="scorer", version="1", golden=ROWS,
        output=tmp_path / "scorer.seal",
    )  # fmt: skip
    bytecode_allowed = {"PYTHONDONTWRITEBYTECODE": ""}
    for _ in range(2):
        result = run_modelseal("verify", str(seal.root), extra_env=bytecode_allowed)
        assert result.returncode == 0, result.stdout + result.stderr
    assert not list(seal.root.rglob("__pycache__"))
