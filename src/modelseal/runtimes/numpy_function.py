"""A plain Python function over numpy arrays, with its weights as named arrays.

For teams whose model is a handful of numpy operations (a softmax-and-top-k ranker, a
linear scorer). The function's source file is sealed (so its digest is checked like any
weight file) as ``model/model.py``, its weights as ``model/weights.npz``.

The contract. The file must define, at module level::

    def predict(inputs: dict[str, np.ndarray],
                weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]

- ``inputs``: one batch, arrays by input name, batch on axis 0. A golden example given as one
  unnamed array (``--golden X.npy``) is the input named ``input``; an ``.npz`` names each.
- ``weights``: the arrays of the weights file (``--weights W.npz``) by name.
- It returns a dict, output name -> array (anything ``np.asarray`` turns into a numeric,
  boolean or text array), every output with its batch on axis 0 and one row per input row.

The signature (names, dtypes, shapes with a free batch axis) is recorded from a run on the
golden inputs. Serving calls ``predict`` with batches of any size, so rows must not depend
on each other. A function that raises or returns anything else fails with a
``RuntimeLoadError`` that names the file and what was expected.
"""

from __future__ import annotations

import ast
import os
import shutil
import sys
import time
import traceback
import types
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelseal.errors import DeviceError, RuntimeLoadError, UsageError
from modelseal.runtimes.base import Example
from modelseal.runtimes.options import RuntimeOptions, read_options, write_options
from modelseal.runtimes.shared import LoadedModel, array_spec, check_model_file, named_example
from modelseal.types import NamedArrays, Signature

SOURCE_FILE = "model.py"
WEIGHTS_FILE = "weights.npz"
FUNCTION_NAME = "predict"
OUTPUT_KINDS = "biufUS"
"""Array kinds an output may have: boolean, integer, float, text and bytes."""
CONTRACT = (
    "a dict of output name -> numpy array, each with the batch on axis 0 and one row per input row"
)

PredictFunction = Callable[[NamedArrays, NamedArrays], Any]


@dataclass(frozen=True)
class NumpyFunction:
    """What to seal: the Python file defining ``predict`` and its weights (an .npz file,
    or arrays by name). Paths are ``str`` or ``os.PathLike``."""

    source: str | os.PathLike[str]
    weights: str | os.PathLike[str] | Mapping[str, Any]


class NumpyOptions(RuntimeOptions):
    signature: Signature
    imports: tuple[str, ...] = ()
    source_file: str | None = None
    """The name of the file that was sealed, for messages (None in seals made before it)."""


class NumpyFunctionRuntime:
    name: ClassVar[str] = "numpy"
    supports_cuda: ClassVar[bool] = False

    def save(self, model: object, dest: Path, example: Example) -> Signature:
        if not isinstance(model, NumpyFunction):
            raise UsageError(
                f"the numpy runtime seals a NumpyFunction(source, weights), not a "
                f"{type(model).__name__}; on the command line give the .py file and --weights"
            )
        source = Path(model.source)
        check_model_file(
            source, (".py",), "a Python file defining predict(inputs, weights)", "numpy"
        )
        weights = _read_weights(model.weights)
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest / SOURCE_FILE)
        with (dest / WEIGHTS_FILE).open("wb") as stream:
            np.savez(stream, allow_pickle=False, **weights)
        sealed = SealedFunction(dest / SOURCE_FILE, str(source))
        inputs = named_example(example)
        outputs = sealed.call(inputs, weights)
        signature = Signature(
            inputs=tuple(array_spec(name, array, output=False) for name, array in inputs.items()),
            outputs=tuple(array_spec(name, array, output=True) for name, array in outputs.items()),
        )
        options = NumpyOptions(
            signature=signature,
            imports=tuple(sorted(_imported_modules(dest / SOURCE_FILE))),
            source_file=source.name,
        )
        write_options(dest, options)
        return signature

    def load(self, path: Path, device: str) -> LoadedFunction:
        if device != "cpu":
            raise DeviceError(f"the numpy runtime runs on the CPU only; asked for {device!r}")
        started = time.perf_counter()
        options = read_options(path, NumpyOptions)
        shown_as = f"{options.source_file or SOURCE_FILE} (sealed as model/{SOURCE_FILE})"
        sealed = SealedFunction(path / SOURCE_FILE, shown_as)
        imported = time.perf_counter()
        weights = _read_weights(path / WEIGHTS_FILE)
        read = time.perf_counter()
        timings = {"import": imported - started, "weights": read - imported}
        return LoadedFunction(
            sealed=sealed, weights=weights, signature=options.signature, load_timings=timings
        )

    def requirements(self, path: Path) -> list[str]:
        providers = metadata.packages_distributions()
        imports = read_options(path, NumpyOptions).imports
        return sorted({"numpy", *(d for module in imports for d in providers.get(module, []))})


@dataclass(kw_only=True)
class LoadedFunction(LoadedModel):
    sealed: SealedFunction
    weights: NamedArrays

    def predict(self, inputs: NamedArrays) -> NamedArrays:
        return self.sealed.call(inputs, self.weights)


class SealedFunction:
    """``predict`` imported from the sealed copy of the file; messages name ``shown_as``
    (the user's file at pack time, its original name in a seal)."""

    def __init__(self, path: Path, shown_as: str) -> None:
        self.path = path
        self.shown_as = shown_as
        self.function = _import_function(path, shown_as)

    def call(self, inputs: NamedArrays, weights: NamedArrays) -> NamedArrays:
        """Run ``predict`` and hold its result to the contract."""
        try:
            result = self.function(inputs, weights)
        except Exception as exc:
            raise RuntimeLoadError(
                f"{self._where(exc)}: {FUNCTION_NAME}(inputs, weights) raised "
                f"{type(exc).__name__}: {exc} (inputs given: {_described(inputs)}; "
                f"weights: {', '.join(weights) or 'none'})"
            ) from exc
        return self._outputs(result, _rows(inputs))

    def _outputs(self, result: object, rows: int | None) -> NamedArrays:
        if not isinstance(result, Mapping) or not result:
            got = "an empty dict" if isinstance(result, Mapping) else f"a {type(result).__name__}"
            raise self._broken(f"returned {got}")
        outputs: NamedArrays = {}
        for name, value in result.items():
            try:
                array = np.asarray(value)
            except ValueError as exc:
                raise self._broken(f"returned {name!r} that is no array ({exc})") from exc
            if array.dtype.kind not in OUTPUT_KINDS:
                raise self._broken(
                    f"returned {name!r} as {type(value).__name__} of dtype {array.dtype}, "
                    "not numbers, booleans or text"
                )
            if array.ndim == 0:
                raise self._broken(f"returned {name!r} as a scalar, without a batch axis")
            if rows is not None and len(array) != rows:
                raise self._broken(f"returned {len(array)} rows of {name!r} for {rows} input rows")
            outputs[str(name)] = array
        return outputs

    def _broken(self, fact: str) -> RuntimeLoadError:
        return RuntimeLoadError(f"{self.shown_as}: {FUNCTION_NAME}() {fact}; expected {CONTRACT}")

    def _where(self, exc: Exception) -> str:
        """The file and the line in it where ``exc`` was raised, if it passed through it."""
        sealed = self.path.resolve()
        frames = [
            frame
            for frame in traceback.extract_tb(exc.__traceback__)
            if Path(frame.filename).resolve() == sealed
        ]
        return f"{self.shown_as} line {frames[-1].lineno}" if frames else self.shown_as


def _rows(inputs: NamedArrays) -> int | None:
    sizes = {len(array) for array in inputs.values() if np.ndim(array) > 0}
    return sizes.pop() if len(sizes) == 1 else None


def _described(inputs: NamedArrays) -> str:
    return ", ".join(f"{name} {a.dtype}{list(a.shape)}" for name, a in inputs.items())


def _read_weights(weights: str | os.PathLike[str] | Mapping[str, Any]) -> NamedArrays:
    if isinstance(weights, Mapping):
        return {str(name): np.asarray(array) for name, array in weights.items()}
    path = Path(weights)
    check_model_file(path, (".npz",), "weights as an .npz file of named arrays", "numpy")
    if not zipfile.is_zipfile(path):
        raise UsageError(f"{path}: not an .npz file (np.savez writes one: a zip of .npy arrays)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: the weights cannot be read as an .npz file ({exc})") from exc


def _import_function(source: Path, shown_as: str) -> PredictFunction:
    # A unique module name per load, so two seals' model.py never shadow each other. The
    # source is compiled here rather than imported: an import would write __pycache__ into
    # the seal, a file nobody sealed, and the next integrity check would refuse the seal.
    module_name = f"modelseal_sealed_{uuid.uuid4().hex}"
    module = types.ModuleType(module_name)
    module.__file__ = str(source)
    sys.modules[module_name] = module
    try:
        code = compile(source.read_bytes(), str(source), "exec", dont_inherit=True)
        exec(code, module.__dict__)
    except Exception as exc:
        raise RuntimeLoadError(
            f"{shown_as}: importing the model function failed: {type(exc).__name__}: {exc}"
        ) from exc
    function = getattr(module, FUNCTION_NAME, None)
    if not callable(function):
        raise UsageError(
            f"{shown_as} defines no function {FUNCTION_NAME}(inputs, weights) at module level; "
            f"expected one that returns {CONTRACT}"
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
