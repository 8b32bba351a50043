"""What torch and onnxruntime themselves see here, live: the doctor imports them to ask.

Unlike the environment fingerprint (which never imports a framework), triage needs the
frameworks' own answers: whether CUDA initialises, which architectures torch was compiled
for, which execution providers onnxruntime has, and how many threads torch will use.
Each is imported once, only when installed.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from dataclasses import dataclass
from importlib import metadata
from importlib.util import find_spec
from typing import Any


@dataclass(frozen=True)
class TorchView:
    version: str
    cuda: str | None
    """The CUDA version this torch was built with; None for a CPU build."""
    available: bool
    device_count: int
    arch_list: tuple[str, ...]
    capabilities: tuple[str, ...]
    """Compute capability of each device torch sees ("8.0")."""
    num_threads: int
    warning: str | None
    """What torch said while initialising CUDA (e.g. "driver too old"), if anything."""


@dataclass(frozen=True)
class OnnxRuntimeView:
    version: str
    providers: tuple[str, ...]
    cuda: str | None
    """The CUDA version this onnxruntime was built with; None for a CPU build."""

    @property
    def has_cuda(self) -> bool:
        return "CUDAExecutionProvider" in self.providers


@functools.cache
def torch_view() -> TorchView | None:
    """torch's own view of CUDA, or None when torch is not installed."""
    if find_spec("torch") is None:
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import torch

        available = bool(torch.cuda.is_available())
        count = int(torch.cuda.device_count()) if available else 0
        capabilities = tuple(
            "{}.{}".format(*torch.cuda.get_device_capability(index)) for index in range(count)
        )
        arch_list = _compiled_architectures(torch) if torch.version.cuda else ()
    message = "; ".join(str(w.message) for w in caught if "CUDA" in str(w.message))
    return TorchView(
        version=str(torch.__version__),
        cuda=torch.version.cuda,
        available=available,
        device_count=count,
        arch_list=arch_list,
        capabilities=capabilities,
        num_threads=int(torch.get_num_threads()),
        warning=message or None,
    )


@functools.cache
def onnxruntime_view() -> OnnxRuntimeView | None:
    """onnxruntime's execution providers and CUDA build, or None when not installed."""
    if find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    cuda = getattr(_module("onnxruntime.capi.build_and_package_info"), "cuda_version", None)
    return OnnxRuntimeView(
        version=_version("onnxruntime", onnxruntime),
        providers=tuple(onnxruntime.get_available_providers()),
        cuda=str(cuda) if cuda else None,
    )


def _compiled_architectures(torch: Any) -> tuple[str, ...]:
    # get_arch_list() answers [] whenever CUDA does not initialise (an old driver, no GPU),
    # which is exactly when the doctor needs the list; the flags it reads are compiled in.
    flags = getattr(torch._C, "_cuda_getArchFlags", None)
    text = flags() if callable(flags) else None
    if text:
        return tuple(str(text).split())
    return tuple(torch.cuda.get_arch_list())


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _version(name: str, module: Any) -> str:
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"
