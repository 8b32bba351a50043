"""Capturing this process's environment fingerprint, fast and importing no framework.

Frameworks are never imported here: torch and onnxruntime are described from their
installed metadata and files, and their live state (TF32 flags, providers, cuDNN as loaded)
is read only when the process has already imported them, which it has at pack and serve
time because the runtime loaded the model.

The BLAS pools do not depend on what the process imported: numpy's BLAS is always loaded,
and scipy's (the one scikit-learn's solvers and distances run on) is loaded here when scipy
is installed: the library its wheel bundles, else by importing ``scipy.linalg``. OpenMP
runtimes are not recorded: which of them are loaded (scikit-learn's, torch's) depends only
on what was imported; ``numerics_env`` records their thread settings.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from datetime import datetime, timezone
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
from packaging.utils import canonicalize_name
from threadpoolctl import threadpool_info

from modelseal.environment.record import (
    CpuInfo,
    EnvironmentRecord,
    GpuInfo,
    OnnxRuntimeInfo,
    PlatformInfo,
    PythonInfo,
    ThreadPool,
    TorchInfo,
)

NUMERICS_ENV_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "KMP_", "BLIS_", "CUBLAS_", "CUDNN_")
NUMERICS_ENV_NAMES = frozenset(
    {
        "VECLIB_MAXIMUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "GOTO_NUM_THREADS",
        "NVIDIA_TF32_OVERRIDE",
        "CUDA_VISIBLE_DEVICES",
        "CUDA_LAUNCH_BLOCKING",
        "TF_ENABLE_ONEDNN_OPTS",
        "TF_DETERMINISTIC_OPS",
        "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
        "ORT_DISABLE_ALL_OPTIMIZATIONS",
    }
)
# Set by scikit-learn at import to tolerate two OpenMP runtimes; it changes no result.
NUMERICS_ENV_IGNORED = frozenset({"KMP_DUPLICATE_LIB_OK", "KMP_INIT_AT_FORK"})
# x86 and arm flags whose presence picks different BLAS / ONNX kernels.
NUMERICS_CPU_FLAG = re.compile(
    r"^(sse4_1|sse4_2|avx|avx2|fma|f16c|avx_vnni|avx512\w*|amx\w*|asimd\w*|sve\w*|fphp|neon)$"
)
ONNXRUNTIME_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino")
# Modules that load the BLAS of an installed numerical library (numpy's is always loaded).
BLAS_LOADERS = {"scipy": "scipy.linalg"}
BUNDLED_BLAS_GLOB = "*openblas*"
SITE_FOLDERS = frozenset({"site-packages", "dist-packages"})


def capture_environment() -> EnvironmentRecord:
    """Fingerprint the running interpreter: everything that can change a model's outputs."""
    packages = installed_packages()
    return EnvironmentRecord(
        python=_python_info(),
        platform=_platform_info(),
        cpu=_cpu_info(),
        packages=packages,
        numpy_version=np.__version__,
        threadpools=_threadpools(),
        numerics_env=_numerics_env(),
        gpus=visible_gpus(),
        torch=_torch_info(packages),
        onnxruntime=_onnxruntime_info(packages),
        captured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def installed_packages() -> dict[str, str]:
    """Every importable distribution, by normalized name; the first on sys.path wins."""
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages.setdefault(canonicalize_name(name), dist.version)
    return dict(sorted(packages.items()))


def _python_info() -> PythonInfo:
    return PythonInfo(
        version=platform.python_version(),
        implementation=platform.python_implementation(),
        build=" ".join(platform.python_build()),
        compiler=platform.python_compiler(),
    )


def _platform_info() -> PlatformInfo:
    libc, libc_version = platform.libc_ver()
    return PlatformInfo(
        system=platform.system(),
        release=platform.release(),
        machine=platform.machine(),
        libc=libc or sysconfig.get_config_var("HOST_GNU_TYPE") or "unknown",
        libc_version=libc_version,
    )


def _cpu_info() -> CpuInfo:
    model, flags = _read_proc_cpuinfo()
    return CpuInfo(
        model=model or platform.processor() or "unknown",
        count=os.cpu_count() or 1,
        flags=sorted(flag for flag in flags if NUMERICS_CPU_FLAG.match(flag)),
    )


def _read_proc_cpuinfo() -> tuple[str, set[str]]:
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return "", set()
    model, flags = "", set[str]()
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
        if model and flags:
            break
    return model, flags


def _threadpools() -> list[ThreadPool]:
    """The BLAS thread pools, the same whatever the process imported before (sorted)."""
    _load_numerical_blas()
    pools = [
        ThreadPool(
            user_api=str(pool.get("user_api")),
            internal_api=str(pool.get("internal_api")),
            version=pool.get("version"),
            num_threads=int(pool.get("num_threads") or 0),
            architecture=pool.get("architecture"),
            library=Path(str(pool.get("filepath", ""))).name,
            owner=library_owner(str(pool.get("filepath", ""))),
        )
        for pool in threadpool_info()
        if pool.get("user_api") == "blas"
    ]
    return sorted(pools, key=lambda p: (p.owner or "", p.internal_api, p.library))


def _load_numerical_blas() -> None:
    for distribution, module in BLAS_LOADERS.items():
        if module in sys.modules:
            continue
        spec = find_spec(distribution)
        if spec is None or spec.origin is None or _load_bundled_blas(Path(spec.origin).parent):
            continue
        try:
            importlib.import_module(module)
        except Exception:  # a broken install: record the BLAS that does load
            continue


def _load_bundled_blas(package: Path) -> bool:
    """Load the BLAS a wheel bundles beside its package (``scipy.libs/``, ``scipy/.dylibs``)
    as its extension modules would: milliseconds, where importing them takes most of a
    second. False when there is none (a build that links a system BLAS)."""
    folders = (package.with_name(f"{package.name}.libs"), package / ".dylibs")
    libraries = sorted(lib for folder in folders for lib in folder.glob(BUNDLED_BLAS_GLOB))
    try:
        for library in libraries:
            ctypes.CDLL(str(library))
    except OSError:
        return False
    return bool(libraries)


def library_owner(filepath: str) -> str | None:
    """The distribution whose folder holds a shared library (``numpy.libs/...`` -> numpy,
    ``torch/lib/...`` -> torch), or None for one outside site-packages (a system library)."""
    path = Path(filepath)
    for index, part in enumerate(path.parts[:-2]):
        if part in SITE_FOLDERS:
            top = path.parts[index + 1]
            return canonicalize_name(top.removesuffix(".libs"))
    return None


def _numerics_env() -> dict[str, str]:
    return {
        name: value
        for name, value in sorted(os.environ.items())
        if (name in NUMERICS_ENV_NAMES or name.startswith(NUMERICS_ENV_PREFIXES))
        and name not in NUMERICS_ENV_IGNORED
    }


def visible_gpus() -> list[GpuInfo]:
    """The GPUs this process can use: torch's view when it is loaded, else nvidia-smi's
    (restricted to CUDA_VISIBLE_DEVICES when that lists indices)."""
    torch_gpus = _torch_gpus()
    if torch_gpus is not None:
        return torch_gpus
    return _restricted_to_visible_devices(_nvidia_smi_gpus())


def _restricted_to_visible_devices(gpus: list[GpuInfo]) -> list[GpuInfo]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return gpus
    tokens = [token.strip() for token in visible.split(",")]
    if any(token.startswith(("GPU-", "MIG-")) for token in tokens):
        return gpus  # UUIDs cannot be mapped to nvidia-smi's indices; trust the driver
    picked = []
    for token in tokens:
        if not token.isdigit():
            break  # "-1" or "": CUDA stops at the first invalid index
        if int(token) < len(gpus):
            picked.append(gpus[int(token)])
    return picked


def _nvidia_smi_gpus() -> list[GpuInfo]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    query = "--query-gpu=name,memory.total,compute_cap,driver_version"
    try:
        result = subprocess.run(
            [smi, query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in result.stdout.strip().splitlines():
        name, memory, capability, driver = (part.strip() for part in line.split(","))
        gpus.append(
            GpuInfo(
                name=name,
                memory_mib=int(memory) if memory.isdigit() else None,
                compute_capability=capability or None,
                driver=driver or None,
            )
        )
    return gpus


def _torch_gpus() -> list[GpuInfo] | None:
    torch: Any = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(
            GpuInfo(
                name=props.name,
                memory_mib=props.total_memory // (1024 * 1024),
                compute_capability=f"{props.major}.{props.minor}",
            )
        )
    return gpus


def _torch_info(packages: dict[str, str]) -> TorchInfo | None:
    version = packages.get("torch")
    if version is None:
        return None
    torch: Any = sys.modules.get("torch")
    if torch is None:
        return TorchInfo(
            version=version, cuda=_torch_built_cuda(), cudnn=_cudnn_from_packages(packages)
        )
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return TorchInfo(
        version=version,
        cuda=torch.version.cuda,
        cudnn=str(cudnn) if cudnn is not None else _cudnn_from_packages(packages),
        cuda_available=bool(torch.cuda.is_available()),
        tf32_matmul=bool(torch.backends.cuda.matmul.allow_tf32),
        tf32_cudnn=bool(torch.backends.cudnn.allow_tf32),
        cudnn_deterministic=bool(torch.backends.cudnn.deterministic),
        deterministic_algorithms=bool(torch.are_deterministic_algorithms_enabled()),
        num_threads=int(torch.get_num_threads()),
    )


def _torch_built_cuda() -> str | None:
    """The CUDA version torch was built with, read from ``torch/version.py`` unimported."""
    spec = find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    version_file = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    if not version_file.exists():
        return None
    match = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", version_file.read_text(), re.M)
    return match.group(1) if match else None


def _cudnn_from_packages(packages: dict[str, str]) -> str | None:
    for name, version in packages.items():
        if name.startswith("nvidia-cudnn"):
            return version
    return None


def _onnxruntime_info(packages: dict[str, str]) -> OnnxRuntimeInfo | None:
    for distribution in ONNXRUNTIME_DISTRIBUTIONS:
        if distribution in packages:
            break
    else:
        return None
    ort: Any = sys.modules.get("onnxruntime")
    providers = list(ort.get_available_providers()) if ort is not None else None
    return OnnxRuntimeInfo(
        version=packages[distribution], distribution=distribution, providers=providers
    )
