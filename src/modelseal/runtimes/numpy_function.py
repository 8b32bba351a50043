"""A plain Python function over numpy arrays, with its weights as named arrays.

For teams whose model is a handful of numpy operations (a softmax-and-top-k ranker, a
linear scorer). The function's source file is sealed (so its digest is checked like any
weight file) as ``model/model.py``, its weights as ``model/weights.npz``. The file must
define, at module level::

    def predict(inputs: dict[str, ndarray], weights: dict[str, ndarray]) -> dict[str, ndarray]
"""

from __future__ import annotations

import ast
import importlib.util
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelseal.errors import DeviceError, RuntimeLoadError, UsageError
from modelseal.runtimes.base import Example, guess_output_kind
from modelseal.runtimes.options import read_options, write_options
from modelseal.types import Array, NamedArrays, Signature, TensorSpec

SOURCE_FILE = "model.py"
WEIGHTS_FILE = "weights.npz"
FUNCTION_NAME = "predict"
SINGLE_INPUT_NAME = "input"

PredictFunction = Callable[[NamedArrays, NamedArrays], Mapping[str, Any]]


@dataclass(frozen=True)
class NumpyFunction:
    """What to seal: the Python file defining ``predict`` and its weights (npz or arrays)."""

    source: Path
    weights: Path | Mapping[str, Array]


class NumpyFunctionRuntime:
    name: ClassVar[str] = "numpy"

    def save(self, model: object, dest: Path, example: Example) -> Signature:
        if not isinstance(model, NumpyFunction):
            raise UsageError(
                f"the numpy runtime seals a NumpyFunction(source, weights), not a "
                f"{type(model).__name__}; on the command line give the .py file and --weights"
            )
        if not model.source.is_file():
            raise UsageError(f"{model.source}: no such Python file")
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model.source, dest / SOURCE_FILE)
        weights = _read_weights(model.weights)
        with (dest / WEIGHTS_FILE).open("wb") as stream:
            np.savez(stream, allow_pickle=False, **weights)
        function = _import_function(dest / SOURCE_FILE)
        inputs = _named_example(example)
        outputs = _call(function, inputs, weights)
        signature = Signature(
            inputs=tuple(_spec(name, array, output=False) for name, array in inputs.items()),
            outputs=tuple(_spec(name, array, output=True) for name, array in outputs.items()),
        )
        write_options(
            dest,
            {
                "signature": signature.model_dump(mode="json"),
                "imports": sorted(_imported_modules(dest / SOURCE_FILE)),
            },
        )
        return signature

    def load(self, path: Path, device: str) -> LoadedFunction:
        if device != "cpu":
            raise DeviceError(f"the numpy runtime runs on the CPU only; asked for {device!r}")
        started = time.perf_counter()
        options = read_options(path)
        function = _import_function(path / SOURCE_FILE)
        imported = time.perf_counter()
        weights = _read_weights(path / WEIGHTS_FILE)
        read = time.perf_counter()
        signature = Signature.model_validate(options["signature"])
        timings = {"import": imported - started, "weights": read - imported}
        return LoadedFunction(function, weights, signature, timings)

    def requirements(self, path: Path) -> list[str]:
        providers = metadata.packages_distributions()
        imports = read_options(path).get("imports", [])
        return sorted({"numpy", *(d for module in imports for d in providers.get(module, []))})


class LoadedFunction:
    def __init__(
        self,
        function: PredictFunction,
        weights: NamedArrays,
        signature: Signature,
        timings: dict[str, float],
    ) -> None:
        self.function = function
        self.weights = weights
        self.signature = signature
        self.device = "cpu"
        self.load_timings = timings

    def predict(self, inputs: NamedArrays) -> NamedArrays:
        return _call(self.function, inputs, self.weights)


def _named_example(example: Example) -> NamedArrays:
    if isinstance(example, np.ndarray):
        return {SINGLE_INPUT_NAME: example}
    return dict(example)


def _spec(name: str, array: Array, *, output: bool) -> TensorSpec:
    kind = guess_output_kind(name, array.dtype) if output else None
    shape = (-1, *array.shape[1:])
    return TensorSpec(name=name, dtype=array.dtype.name, shape=shape, kind=kind)


def _call(function: PredictFunction, inputs: NamedArrays, weights: NamedArrays) -> NamedArrays:
    result = function(inputs, weights)
    if not isinstance(result, Mapping) or not result:
        raise RuntimeLoadError(
            f"{FUNCTION_NAME}() returned {type(result).__name__}; expected a non-empty dict of "
            "output name -> numpy array"
        )
    return {str(name): np.asarray(value) for name, value in result.items()}


def _read_weights(weights: Path | Mapping[str, Array]) -> NamedArrays:
    if not isinstance(weights, Path):
        return {name: np.asarray(array) for name, array in weights.items()}
    if not weights.is_file():
        raise UsageError(f"{weights}: no such weights file (expected an .npz of named arrays)")
    with np.load(weights, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _import_function(source: Path) -> PredictFunction:
    # A unique module name per load, so two seals' model.py never shadow each other.
    module_name = f"modelseal_sealed_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(module_name, source)
    if spec is None or spec.loader is None:
        raise RuntimeLoadError(f"{source}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise RuntimeLoadError(
            f"{source.name}: importing the model function failed: {type(exc).__name__}: {exc}"
        ) from exc
    function = getattr(module, FUNCTION_NAME, None)
    if not callable(function):
        raise UsageError(
            f"{source.name} defines no function {FUNCTION_NAME}(inputs, weights) at module level"
        )
    predict: PredictFunction = function
    return predict


def _imported_modules(source: Path) -> set[str]:
    tree = ast.parse(source.read_text(encoding="utf-8"))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names)
