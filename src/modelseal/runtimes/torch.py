"""PyTorch models as TorchScript (``model/model.pt``) or ``torch.export`` (``model/model.pt2``).

Neither format records a signature modelseal can read, so ``save`` infers one by running the
saved model on the golden example: inputs are the example's arrays in order (passed
positionally), outputs are a tensor (``output``), a tuple (``output_0`` ...) or a dict.

The settings that change numerics (TF32 for matmul and cuDNN, cuDNN determinism and
autotuning, deterministic algorithms, the intra-op thread count) are recorded in
``model/runtime.json`` at save and set back to those values at load. They are process-wide
torch state: loading a torch seal changes them for everything else in the process too. A
seal made with deterministic algorithms on needs ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (or
``:16:8``) in the serving environment for cuBLAS to honour it on a GPU.

Half precision is a serving choice, not a property of the seal: ``TorchRuntime(half=True)``
loads the model in float16 on a CUDA device (floating inputs are cast on the way in, outputs
back to the sealed dtypes on the way out). It is refused on the CPU.
"""

from __future__ import annotations

import shutil
import time
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from modelseal.errors import DeviceError, RuntimeLoadError, UsageError
from modelseal.runtimes.base import Example
from modelseal.runtimes.options import RuntimeOptions, read_options, write_options
from modelseal.runtimes.shared import (
    LoadedModel,
    array_spec,
    check_model_file,
    cuda_device_index,
    model_path,
    named_example,
)
from modelseal.types import Array, NamedArrays, Signature

Format = Literal["torchscript", "export"]
MODEL_FILES: dict[str, str] = {"torchscript": "model.pt", "export": "model.pt2"}
TORCHSCRIPT_SUFFIXES = (".pt", ".pth")
EXPORT_SUFFIXES = (".pt2",)
SINGLE_OUTPUT_NAME = "output"
EXPECTED_FILE = (
    "a TorchScript archive saved by torch.jit.save (.pt) or a program saved by "
    "torch.export.save (.pt2)"
)
OutputStructure = Literal["tensor", "tuple", "dict"]


class NumericSettings(RuntimeOptions):
    """torch's process-wide settings that change numerics; sealed, and restored at load."""

    tf32_matmul: bool
    tf32_cudnn: bool
    cudnn_deterministic: bool
    cudnn_benchmark: bool
    deterministic_algorithms: bool
    deterministic_warn_only: bool
    num_threads: int

    @classmethod
    def current(cls) -> NumericSettings:
        import torch

        return cls(
            tf32_matmul=bool(torch.backends.cuda.matmul.allow_tf32),
            tf32_cudnn=bool(torch.backends.cudnn.allow_tf32),
            cudnn_deterministic=bool(torch.backends.cudnn.deterministic),
            cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
            deterministic_algorithms=bool(torch.are_deterministic_algorithms_enabled()),
            deterministic_warn_only=bool(torch.is_deterministic_algorithms_warn_only_enabled()),
            num_threads=int(torch.get_num_threads()),
        )

    def apply(self) -> None:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = self.tf32_matmul
        torch.backends.cudnn.allow_tf32 = self.tf32_cudnn
        torch.backends.cudnn.deterministic = self.cudnn_deterministic
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        torch.use_deterministic_algorithms(
            self.deterministic_algorithms, warn_only=self.deterministic_warn_only
        )
        torch.set_num_threads(self.num_threads)


class TorchOptions(RuntimeOptions):
    format: Format
    output_structure: OutputStructure
    numerics: NumericSettings
    signature: Signature


class TorchRuntime:
    """A TorchScript module or a ``torch.export.ExportedProgram`` (or a file of either)."""

    name: ClassVar[str] = "torch"
    supports_cuda: ClassVar[bool] = True

    def __init__(self, *, half: bool = False) -> None:
        self.half = half

    def save(self, model: object, dest: Path, example: Example) -> Signature:
        settings = NumericSettings.current()
        dest.mkdir(parents=True, exist_ok=True)
        model_format, given = _write_model(model, dest)
        try:
            module = _read_module(dest / MODEL_FILES[model_format], model_format, "cpu", given)
        except RuntimeLoadError as exc:
            if model_path(model) is None:
                raise
            raise UsageError(
                f"{exc}; expected {EXPECTED_FILE}, not weights or a module pickled by "
                "torch.save (script or export the model first)"
            ) from exc
        inputs = named_example(example)
        if model_format == "export":
            _check_free_batch(module.model, list(inputs))
        result = _run_example(module.on_device("cpu", half=False), inputs)
        structure, outputs = _named_result(result)
        signature = Signature(
            inputs=tuple(array_spec(name, array, output=False) for name, array in inputs.items()),
            outputs=tuple(array_spec(name, array, output=True) for name, array in outputs.items()),
        )
        write_options(
            dest,
            TorchOptions(
                format=model_format,
                output_structure=structure,
                numerics=settings,
                signature=signature,
            ),
        )
        return signature

    def load(self, path: Path, device: str) -> LoadedTorch:
        started = time.perf_counter()
        import torch  # noqa: F401  (timed on its own: importing torch takes seconds)

        imported = time.perf_counter()
        torch_device = _check_device(device, half=self.half)
        options = read_options(path, TorchOptions)
        options.numerics.apply()
        model_file = MODEL_FILES[options.format]
        module = _read_module(path / model_file, options.format, torch_device, model_file)
        read = time.perf_counter()
        function = module.on_device(torch_device, half=self.half)
        moved = time.perf_counter()
        timings = {"import": imported - started, "read": read - imported, "to_device": moved - read}
        return LoadedTorch(
            function=function,
            signature=options.signature,
            structure=options.output_structure,
            device=torch_device,
            half=self.half,
            load_timings=timings,
        )

    def cuda_build_problem(self) -> str | None:
        return cpu_only_build()

    def pickle_on_load(self, path: Path) -> str | None:
        # Both loaders unpickle: torch.export.load calls torch.load(weights_only=False) and
        # pickle.loads on parts of the archive, and torch.jit.load reads pickled data that
        # torch itself warns can run arbitrary code.
        options = read_options(path, TorchOptions)
        loader = "torch.export.load" if options.format == "export" else "torch.jit.load"
        return (
            f"{path.name}/{MODEL_FILES[options.format]} holds pickled data that {loader} "
            "deserialises (torch warns that malicious data there can run arbitrary code)"
        )

    def requirements(self, path: Path) -> list[str]:
        return ["numpy", "torch"]


@dataclass(kw_only=True)
class LoadedTorch(LoadedModel):
    function: Any
    structure: OutputStructure
    half: bool
    _input_names: list[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._input_names = self.signature.input_names

    def predict(self, inputs: NamedArrays) -> NamedArrays:
        ordered = {name: inputs[name] for name in self._input_names}
        result = _run(self.function, ordered, self.device, half=self.half)
        outputs = _result_by_name(result, self.structure, self.signature.output_names)
        return {
            spec.name: outputs[spec.name].astype(spec.numpy_dtype, copy=False)
            for spec in self.signature.outputs
        }


@dataclass(frozen=True)
class _Module:
    """A model read from its file: a ``ScriptModule`` or an ``ExportedProgram``."""

    model: Any
    model_format: Format

    def on_device(self, device: str, *, half: bool) -> Any:
        """The callable module on ``device`` (a TorchScript module was read onto it)."""
        if self.model_format == "export":
            from torch.export.passes import move_to_device_pass

            program = self.model if device == "cpu" else move_to_device_pass(self.model, device)
            # No eval() here: an exported graph is fixed in the mode it was exported in,
            # and its module refuses train()/eval().
            module = program.module()
        else:
            module = self.model
            module.eval()
        return module.half() if half else module


def _write_model(model: object, dest: Path) -> tuple[Format, str]:
    """Write the model given under ``dest``: its format, and how to name what was given."""
    import torch

    source = model_path(model)
    if source is not None:
        model_format = _file_format(source)
        shutil.copyfile(source, dest / MODEL_FILES[model_format])
        return model_format, str(source)
    if isinstance(model, torch.jit.ScriptModule):
        with _torchscript_is_deliberate():
            torch.jit.save(model, str(dest / MODEL_FILES["torchscript"]))
        return "torchscript", "the ScriptModule given"
    if isinstance(model, torch.export.ExportedProgram):
        torch.export.save(model, str(dest / MODEL_FILES["export"]))
        return "export", "the ExportedProgram given"
    hint = (
        "; script it (torch.jit.script) or export it (torch.export.export) first"
        if isinstance(model, torch.nn.Module)
        else ""
    )
    raise UsageError(
        f"cannot seal a {type(model).__name__} with the torch runtime: expected a "
        f"torch.jit.ScriptModule, a torch.export.ExportedProgram, or a .pt / .pt2 file{hint}"
    )


def _file_format(source: Path) -> Format:
    check_model_file(source, TORCHSCRIPT_SUFFIXES + EXPORT_SUFFIXES, EXPECTED_FILE, "torch")
    if not zipfile.is_zipfile(source):
        raise UsageError(f"{source}: not a zip archive, so not {EXPECTED_FILE}")
    return "export" if source.suffix.lower() in EXPORT_SUFFIXES else "torchscript"


def _read_module(model_file: Path, model_format: Format, device: str, shown_as: str) -> _Module:
    import torch

    # Neither load() is annotated; strict mypy refuses untyped calls.
    export: Any = torch.export
    jit: Any = torch.jit
    try:
        if model_format == "export":
            return _Module(export.load(str(model_file)), model_format)
        with _torchscript_is_deliberate():
            script = jit.load(str(model_file), map_location=device)
        return _Module(script, model_format)
    except Exception as exc:
        raise RuntimeLoadError(
            f"{shown_as}: torch {torch.__version__} cannot load the model: "
            f"{type(exc).__name__}: {str(exc).replace(str(model_file), shown_as)}"
        ) from exc


@contextmanager
def _torchscript_is_deliberate() -> Iterator[None]:
    # torch 2.9+ deprecates torch.jit.save/load in favour of torch.export. TorchScript seals
    # are a supported format here, and the warning would otherwise land in every verify
    # report's load warnings, where operators look for version skew.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning
        )
        yield


def cpu_only_build() -> str | None:
    """Why the installed torch cannot use any GPU (a CPU-only build), or None."""
    import torch

    if torch.version.cuda is not None:
        return None
    return (
        f"the installed torch {torch.__version__} is a CPU-only build (torch.version.cuda is "
        "None), so no GPU is usable whatever the machine has; install a CUDA build of the "
        "same torch version in this environment (pip install torch==VERSION --index-url "
        "https://download.pytorch.org/whl/cuXYZ, with a CUDA version the driver supports: "
        "nvidia-smi shows it)"
    )


def _check_device(device: str, *, half: bool) -> str:
    import torch

    if device == "cpu":
        if half:
            raise DeviceError(
                "half precision is for CUDA devices only: float16 on the CPU is slow and its "
                "results differ from the sealed ones; load with device 'cuda' or without half"
            )
        return device
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise DeviceError(f"the torch runtime runs on 'cpu', 'cuda' or 'cuda:N', not {device!r}")
    problem = cpu_only_build()
    if problem is not None:
        raise DeviceError(f"device {device!r} asked for, but {problem}")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {device!r} asked for, but torch.cuda.is_available() is False here "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
            "check that the container was started with GPU access (NVIDIA Container Toolkit, "
            "docker run --gpus), that CUDA_VISIBLE_DEVICES does not hide the GPU, and that the "
            "NVIDIA driver supports the CUDA version this torch was built with (nvidia-smi)"
        )
    count = torch.cuda.device_count()
    if cuda_device_index(device) >= count:
        raise DeviceError(
            f"device {device!r} asked for, but only {count} CUDA device(s) are visible here "
            "(check CUDA_VISIBLE_DEVICES)"
        )
    return f"cuda:{cuda_device_index(device)}"


def _check_free_batch(program: Any, input_names: list[str]) -> None:
    """Refuse a program exported with a fixed batch size: it would fail any other batch."""
    placeholders = [
        node
        for node in program.graph.nodes
        if node.op == "placeholder" and node.name in program.graph_signature.user_inputs
    ]
    for name, node in zip(input_names, placeholders, strict=False):
        shape = node.meta["val"].shape
        if len(shape) > 0 and isinstance(shape[0], int):
            raise UsageError(
                f"the exported program takes input {name!r} with a fixed batch size of "
                f"{shape[0]} (axis 0); a seal serves any batch size, so export with "
                "dynamic_shapes marking axis 0 of every input, for example "
                "{'x': {0: torch.export.Dim('batch')}}"
            )


def _run_example(function: Any, inputs: NamedArrays) -> Any:
    try:
        return _run(function, inputs, "cpu", half=False)
    except Exception as exc:
        described = ", ".join(f"{name} {a.dtype}{list(a.shape)}" for name, a in inputs.items())
        raise UsageError(
            f"the model fails on the golden example ({described}; passed positionally in this "
            f"order): {type(exc).__name__}: {exc}"
        ) from exc


def _run(function: Any, inputs: NamedArrays, device: str, *, half: bool) -> Any:
    import torch

    with torch.inference_mode():
        tensors = [_to_tensor(array, device, half=half) for array in inputs.values()]
        return function(*tensors)


def _to_tensor(array: Array, device: str, *, half: bool) -> Any:
    import torch

    # torch.from_numpy shares memory and warns on read-only buffers (e.g. request bodies).
    source = array if array.flags.writeable else array.copy()
    tensor = torch.from_numpy(np.ascontiguousarray(source))
    if half and tensor.is_floating_point():
        tensor = tensor.half()
    return tensor.to(device)


def _named_result(result: Any) -> tuple[OutputStructure, NamedArrays]:
    import torch

    if isinstance(result, torch.Tensor):
        return "tensor", {SINGLE_OUTPUT_NAME: _to_numpy(result)}
    if isinstance(result, tuple | list):
        names = [f"{SINGLE_OUTPUT_NAME}_{index}" for index in range(len(result))]
        return "tuple", _result_by_name(result, "tuple", names)
    if isinstance(result, dict):
        return "dict", _result_by_name(result, "dict", [str(key) for key in result])
    raise UsageError(
        f"the model returned a {type(result).__name__}; modelseal serves a tensor, a tuple of "
        "tensors or a dict of tensors"
    )


def _result_by_name(result: Any, structure: OutputStructure, names: list[str]) -> NamedArrays:
    if structure == "tensor":
        return {names[0]: _to_numpy(result)}
    if structure == "tuple":
        return {name: _to_numpy(value) for name, value in zip(names, result, strict=True)}
    return {name: _to_numpy(result[name]) for name in names}


def _to_numpy(value: Any) -> Array:
    import torch

    if not isinstance(value, torch.Tensor):
        raise UsageError(f"the model returned a {type(value).__name__} where a tensor was expected")
    tensor = value.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    array: Array = tensor.numpy()
    return array
