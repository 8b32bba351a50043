"""ONNX models on onnxruntime, with the session options that change numerics sealed.

onnxruntime silently falls back to the CPU when the CUDA provider cannot start (missing
libraries, driver mismatch); ``load`` checks the providers the session really got and
refuses instead of serving 50x slower without a word.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from modelseal.errors import DeviceError, RuntimeLoadError, UsageError
from modelseal.runtimes.base import Example
from modelseal.runtimes.options import RuntimeOptions, read_options, write_options
from modelseal.runtimes.shared import (
    LoadedModel,
    check_model_file,
    cuda_device_index,
    guess_output_kind,
    model_path,
)
from modelseal.types import NamedArrays, Signature, TensorSpec

MODEL_FILE = "model.onnx"
ORT_DISTRIBUTIONS = ("onnxruntime-gpu", "onnxruntime", "onnxruntime-openvino")
GraphOptimizationLevel = Literal["disable", "basic", "extended", "all"]
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
}


class SessionSettings(RuntimeOptions):
    """onnxruntime session options that change numerics; sealed and applied again at load."""

    intra_op_num_threads: int = Field(default=0, ge=0)
    inter_op_num_threads: int = Field(default=0, ge=0)
    graph_optimization_level: GraphOptimizationLevel = "all"


class OnnxOptions(RuntimeOptions):
    session: SessionSettings


class OnnxRuntime:
    """An ONNX model file (or ``onnx.ModelProto``, or its bytes) run by onnxruntime."""

    name: ClassVar[str] = "onnx"
    supports_cuda: ClassVar[bool] = True

    def __init__(self, settings: SessionSettings | None = None) -> None:
        self.settings = settings or SessionSettings()

    def save(self, model: object, dest: Path, example: Example) -> Signature:
        dest.mkdir(parents=True, exist_ok=True)
        model_file = dest / MODEL_FILE
        given = _write_model(model, model_file)
        session = _session(model_file, self.settings, ["CPUExecutionProvider"], shown_as=given)
        signature = _session_signature(session)
        write_options(dest, OnnxOptions(session=self.settings))
        return signature

    def cuda_build_problem(self) -> str | None:
        import onnxruntime

        available = onnxruntime.get_available_providers()
        if "CUDAExecutionProvider" in available:
            return None
        return (
            f"this onnxruntime {onnxruntime.__version__} has no CUDA provider (available: "
            f"{', '.join(available)}), so no GPU is usable whatever the machine has; install "
            "onnxruntime-gpu instead of onnxruntime"
        )

    def load(self, path: Path, device: str) -> LoadedOnnx:
        started = time.perf_counter()
        import onnxruntime

        imported = time.perf_counter()
        settings = read_options(path, OnnxOptions).session
        providers = _providers_for(device, onnxruntime.get_available_providers())
        session = _session(path / MODEL_FILE, settings, providers, shown_as=MODEL_FILE)
        if device.startswith("cuda") and "CUDAExecutionProvider" not in session.get_providers():
            raise DeviceError(
                "onnxruntime could not start its CUDA provider (it fell back to "
                f"{session.get_providers()}); check the CUDA and cuDNN libraries match "
                "onnxruntime-gpu's build and that the GPU is visible to the container"
            )
        loaded = time.perf_counter()
        timings = {"import": imported - started, "session": loaded - imported}
        return LoadedOnnx(
            session=session,
            signature=_session_signature(session),
            device=device,
            load_timings=timings,
        )

    def pickle_on_load(self, path: Path) -> str | None:
        return None  # an ONNX file is a protobuf graph: reading it runs no code

    def requirements(self, path: Path) -> list[str]:
        from importlib import metadata

        installed = []
        for name in ORT_DISTRIBUTIONS:
            try:
                metadata.distribution(name)
            except metadata.PackageNotFoundError:
                continue
            installed.append(name)
        return ["numpy", *(installed[:1] or ["onnxruntime"])]


@dataclass(kw_only=True)
class LoadedOnnx(LoadedModel):
    session: Any
    _output_names: list[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._output_names = self.signature.output_names

    def predict(self, inputs: NamedArrays) -> NamedArrays:
        results = self.session.run(self._output_names, inputs)
        return dict(zip(self._output_names, results, strict=True))


def _write_model(model: object, model_file: Path) -> str:
    """Write the model given as ``model_file``; returns how to name what was given."""
    source = model_path(model)
    if source is not None:
        check_model_file(source, (".onnx",), "an ONNX model file (.onnx)", "onnx")
        shutil.copyfile(source, model_file)
        return str(source)
    if isinstance(model, bytes):
        model_file.write_bytes(model)
        return "the ONNX bytes given"
    if hasattr(model, "SerializeToString"):
        model_file.write_bytes(model.SerializeToString())
        return f"the {type(model).__name__} given"
    raise UsageError(
        f"cannot seal a {type(model).__name__} with the onnx runtime: expected a .onnx "
        "path, an onnx.ModelProto or its serialized bytes"
    )


def _session(
    model_file: Path, settings: SessionSettings, providers: list[Any], *, shown_as: str
) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_num_threads
    options.inter_op_num_threads = settings.inter_op_num_threads
    options.graph_optimization_level = {
        "disable": onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[settings.graph_optimization_level]
    try:
        return onnxruntime.InferenceSession(str(model_file), options, providers=providers)
    except Exception as exc:
        raise RuntimeLoadError(
            f"{shown_as}: onnxruntime cannot load it as an ONNX model: "
            f"{type(exc).__name__}: {str(exc).replace(str(model_file), shown_as)}"
        ) from exc


def _providers_for(device: str, available: list[str]) -> list[Any]:
    if device == "cpu":
        return ["CPUExecutionProvider"]
    index = cuda_device_index(device)
    if "CUDAExecutionProvider" not in available:
        raise DeviceError(
            f"device {device!r} asked for, but this onnxruntime has no CUDA provider "
            f"(available: {', '.join(available)}); install onnxruntime-gpu"
        )
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]


def _session_signature(session: Any) -> Signature:
    return Signature(
        inputs=tuple(_tensor_spec(arg, kind_hint=False) for arg in session.get_inputs()),
        outputs=tuple(_tensor_spec(arg, kind_hint=True) for arg in session.get_outputs()),
    )


def _tensor_spec(arg: Any, *, kind_hint: bool) -> TensorSpec:
    dtype = _ORT_TYPES.get(arg.type)
    if dtype is None:
        raise UsageError(
            f"ONNX {arg.name!r} has type {arg.type}; modelseal serves tensors only "
            f"({', '.join(sorted(_ORT_TYPES))}); export without ZipMap or sequence outputs"
        )
    shape = tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in arg.shape)
    kind = guess_output_kind(arg.name, np.dtype(dtype)) if kind_hint else None
    return TensorSpec(name=arg.name, dtype=dtype, shape=shape, kind=kind)
