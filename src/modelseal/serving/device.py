"""Choosing the device before anything loads, and refusing to fall back to the CPU quietly."""

from __future__ import annotations

import os
from dataclasses import dataclass

from modelseal.environment.fingerprint import visible_gpus
from modelseal.environment.record import GpuInfo
from modelseal.errors import DeviceError
from modelseal.runtimes.base import CudaBuildReporter
from modelseal.runtimes.registry import get_runtime

GPU_CHECKLIST = (
    "check that the container was started with GPU access (NVIDIA Container Toolkit, "
    "`docker run --gpus all`, or a `nvidia.com/gpu` resource limit in Kubernetes), that "
    "CUDA_VISIBLE_DEVICES does not hide the GPUs, and that the driver supports the CUDA "
    "version the framework was built with (`nvidia-smi` shows both)"
)


@dataclass(frozen=True)
class DeviceChoice:
    device: str
    gpu: GpuInfo | None

    @property
    def gpu_name(self) -> str | None:
        return self.gpu.name if self.gpu else None


def choose_device(requested: str, runtime_name: str, require_gpu: int) -> DeviceChoice:
    """The concrete device to load on; raises ``DeviceError`` instead of running on the CPU
    when a GPU was required or asked for and is not usable."""
    runtime = get_runtime(runtime_name)
    runtime_cuda = runtime.supports_cuda
    if runtime_cuda and requested != "cpu" and isinstance(runtime, CudaBuildReporter):
        # The build first: no container setting gives a CPU-only build a GPU.
        problem = runtime.cuda_build_problem()
        if problem is not None and (require_gpu or requested != "auto"):
            option = f"--require-gpu {require_gpu}" if require_gpu else f"--device {requested}"
            raise DeviceError(f"{option}: {problem}")
        runtime_cuda = problem is None
    gpus = visible_gpus()
    if require_gpu and len(gpus) < require_gpu:
        raise DeviceError(
            f"--require-gpu {require_gpu}: {len(gpus)} GPU(s) visible "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
            f"refusing to run on the CPU. {GPU_CHECKLIST}"
        )
    if requested == "auto":
        if gpus and runtime_cuda:
            return DeviceChoice("cuda:0", gpus[0])
        if require_gpu:
            raise DeviceError(
                f"--require-gpu {require_gpu}, but the {runtime_name} runtime runs on the CPU only"
            )
        return DeviceChoice("cpu", None)
    if requested == "cpu":
        if require_gpu:
            raise DeviceError(f"--require-gpu {require_gpu} contradicts --device cpu")
        return DeviceChoice("cpu", None)
    return _cuda_choice(requested, runtime_name, runtime_cuda, gpus)


def _cuda_choice(
    requested: str, runtime_name: str, runtime_cuda: bool, gpus: list[GpuInfo]
) -> DeviceChoice:
    if not runtime_cuda:
        raise DeviceError(f"--device {requested}: the {runtime_name} runtime runs on the CPU only")
    _, _, index_text = requested.partition(":")
    index = int(index_text) if index_text.isdigit() else 0
    if index >= len(gpus):
        raise DeviceError(
            f"--device {requested}: {len(gpus)} GPU(s) visible, so there is no GPU {index}; "
            f"refusing to run on the CPU. {GPU_CHECKLIST}"
        )
    return DeviceChoice(f"cuda:{index}", gpus[index])
