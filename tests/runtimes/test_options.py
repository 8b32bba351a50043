"""``model/runtime.json`` is read through one typed model per runtime; every runtime says
whether it takes CUDA devices."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from modelseal import SealFormatError
from modelseal.runtimes import available_runtimes, get_runtime
from modelseal.runtimes.options import OPTIONS_FILE, RuntimeOptions, read_options, write_options

BUILT_IN_CUDA_SUPPORT = {
    "sklearn": False,
    "numpy": False,
    "mlflow": False,
    "onnx": True,
    "torch": True,
}


class Example(RuntimeOptions):
    threads: int
    mode: str = "fast"


def test_options_round_trip(tmp_path: Path) -> None:
    write_options(tmp_path, Example(threads=2))
    assert json.loads((tmp_path / OPTIONS_FILE).read_text()) == {"threads": 2, "mode": "fast"}
    assert read_options(tmp_path, Example) == Example(threads=2, mode="fast")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"mode": "fast"}', "threads: Field required"),
        ('{"threads": "two"}', "threads: Input should be a valid integer"),
        ('{"threads": 1, "thread": 2}', "thread: Extra inputs are not permitted"),
        ("[1, 2]", "Input should be an object"),
        ("{not json", "Invalid JSON"),
    ],
)
def test_malformed_options_are_a_seal_format_error_naming_file_and_field(
    tmp_path: Path, text: str, problem: str
) -> None:
    (tmp_path / OPTIONS_FILE).write_text(text)
    with pytest.raises(SealFormatError) as raised:
        read_options(tmp_path, Example)
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / OPTIONS_FILE}: malformed runtime options: ")
    assert problem in message


def test_a_missing_options_file_is_a_seal_format_error(tmp_path: Path) -> None:
    with pytest.raises(SealFormatError, match=f"{OPTIONS_FILE}: runtime options cannot be read"):
        read_options(tmp_path, Example)


def test_a_sealed_runtime_json_missing_a_field_fails_loading_with_a_format_error(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(demo_seal_path / "model", model_dir)
    options = json.loads((model_dir / OPTIONS_FILE).read_text())
    del options["serialization"]
    (model_dir / OPTIONS_FILE).write_text(json.dumps(options))
    with pytest.raises(SealFormatError, match=r"runtime.json: .*serialization: Field required"):
        get_runtime("sklearn").load(model_dir, "cpu")
    with pytest.raises(SealFormatError, match=r"runtime.json: .*serialization: Field required"):
        get_runtime("sklearn").requirements(model_dir)


@pytest.mark.parametrize("name", sorted(BUILT_IN_CUDA_SUPPORT))
def test_every_built_in_runtime_declares_whether_it_takes_cuda(name: str) -> None:
    runtime_class = type(get_runtime(name))
    assert "supports_cuda" in vars(runtime_class)
    assert runtime_class.supports_cuda is BUILT_IN_CUDA_SUPPORT[name]


def test_the_built_in_runtimes_are_the_registered_ones() -> None:
    assert set(BUILT_IN_CUDA_SUPPORT) <= set(available_runtimes())
