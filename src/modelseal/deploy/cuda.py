"""Which CUDA a seal's GPU build was made for, and the CUDA runtime base image for it.

The table (CUDA major.minor -> images, from nvidia/cuda's published tags):

| CUDA | runtime base (torch: its wheels bring cuDNN) | with cuDNN (onnxruntime-gpu) |
| ---- | -------------------------------------------- | ---------------------------- |
| 11.8 | nvidia/cuda:11.8.0-runtime-ubuntu22.04 | nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04 |
| 12.1 | nvidia/cuda:12.1.1-runtime-ubuntu22.04 | nvidia/cuda:12.1.1-cudnn8-runtime-ubuntu22.04 |
| 12.4 | nvidia/cuda:12.4.1-runtime-ubuntu22.04 | nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04 |
| 12.6 | nvidia/cuda:12.6.3-runtime-ubuntu24.04 | nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 |
| 12.8 | nvidia/cuda:12.8.1-runtime-ubuntu24.04 | nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 |
| 12.9 | nvidia/cuda:12.9.1-runtime-ubuntu24.04 | nvidia/cuda:12.9.1-cudnn-runtime-ubuntu24.04 |
| 13.0 | nvidia/cuda:13.0.0-runtime-ubuntu24.04 | nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04 |

Where the CUDA version comes from, for the framework in the seal's lock: torch's own record
(``torch.version.cuda`` in environment.json), else its local version tag (``+cu121`` ->
12.1); onnxruntime-gpu 1.19 and later are built for CUDA 12 with cuDNN 9 (served on the
newest 12.x above), earlier releases on PyPI for CUDA 11.8 with cuDNN 8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from modelseal.environment.record import EnvironmentRecord
from modelseal.errors import UsageError

RUNTIME_IMAGES: dict[str, tuple[str, str]] = {
    "11.8": ("11.8.0-runtime-ubuntu22.04", "11.8.0-cudnn8-runtime-ubuntu22.04"),
    "12.1": ("12.1.1-runtime-ubuntu22.04", "12.1.1-cudnn8-runtime-ubuntu22.04"),
    "12.4": ("12.4.1-runtime-ubuntu22.04", "12.4.1-cudnn-runtime-ubuntu22.04"),
    "12.6": ("12.6.3-runtime-ubuntu24.04", "12.6.3-cudnn-runtime-ubuntu24.04"),
    "12.8": ("12.8.1-runtime-ubuntu24.04", "12.8.1-cudnn-runtime-ubuntu24.04"),
    "12.9": ("12.9.1-runtime-ubuntu24.04", "12.9.1-cudnn-runtime-ubuntu24.04"),
    "13.0": ("13.0.0-runtime-ubuntu24.04", "13.0.0-cudnn-runtime-ubuntu24.04"),
}
ONNXRUNTIME_CUDA12_FROM = Version("1.19")
ONNXRUNTIME_CUDA12 = "12.9"
ONNXRUNTIME_CUDA11 = "11.8"
TORCH_CUDA_TAG = re.compile(r"^cu(\d+)(\d)$")


@dataclass(frozen=True)
class CudaBuild:
    """The CUDA a seal's framework was built for, and the base image that provides it."""

    version: str
    cudnn: bool
    made_for: str
    """What decided it, for the Dockerfile's comment: ``torch 2.3.1+cu121``."""

    @property
    def image(self) -> str:
        runtime, with_cudnn = RUNTIME_IMAGES[self.version]
        return f"nvidia/cuda:{with_cudnn if self.cudnn else runtime}"


def cuda_build(environment: EnvironmentRecord, lock: dict[str, str]) -> CudaBuild:
    """The CUDA build of the framework in the seal's lock; UsageError when it holds none."""
    torch_version = lock.get("torch")
    if torch_version is not None:
        recorded = environment.torch.cuda if environment.torch else None
        version = _major_minor(recorded) if recorded else _torch_tag_cuda(torch_version)
        if version is not None:
            return _known(CudaBuild(version, cudnn=False, made_for=f"torch {torch_version}"))
    ort_version = lock.get("onnxruntime-gpu")
    if ort_version is not None:
        version = ONNXRUNTIME_CUDA12 if _at_least(ort_version) else ONNXRUNTIME_CUDA11
        return _known(CudaBuild(version, cudnn=True, made_for=f"onnxruntime-gpu {ort_version}"))
    what = f"torch {torch_version}" if torch_version else "no torch or onnxruntime-gpu"
    raise UsageError(
        f"--gpu: the seal's lock holds {what}, so it records no CUDA version to match; "
        "re-seal the model where its CUDA build is installed, or pass --base-image with the "
        "CUDA image you validated it on"
    )


def torch_index(torch_version: str) -> str | None:
    """The PyTorch wheel index for a local version tag: ``2.3.1+cu121`` -> .../whl/cu121."""
    _, plus, tag = torch_version.partition("+")
    return f"https://download.pytorch.org/whl/{tag}" if plus and tag else None


def _torch_tag_cuda(torch_version: str) -> str | None:
    tag = torch_version.partition("+")[2]
    match = TORCH_CUDA_TAG.match(tag)
    return f"{match[1]}.{match[2]}" if match else None


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _at_least(version: str) -> bool:
    try:
        return Version(version) >= ONNXRUNTIME_CUDA12_FROM
    except InvalidVersion:
        return True


def _known(build: CudaBuild) -> CudaBuild:
    if build.version not in RUNTIME_IMAGES:
        known = ", ".join(RUNTIME_IMAGES)
        raise UsageError(
            f"--gpu: the seal was validated with CUDA {build.version} ({build.made_for}); "
            f"modelseal knows CUDA runtime images for {known}; pass --base-image with a CUDA "
            f"{build.version} runtime image"
        )
    return build
