"""Diffing two environment records into rows ranked by how much they can move the outputs.

Only what differs becomes a row. Which difference is how risky is the product decision; it is
kept as data (the property tables below and ``risk.NUMERICAL_PACKAGES``) wherever it can be.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from packaging.utils import canonicalize_name
from pydantic import BaseModel, ConfigDict

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
from modelseal.environment.risk import Risk, VersionChange, numerical_why, version_change

Category = Literal[
    "package", "python", "platform", "cpu", "blas", "env", "cuda", "gpu", "onnxruntime"
]
CATEGORIES: tuple[Category, ...] = get_args(Category)
"""Every category, in the order rows of the same risk are listed."""


class DiffRow(BaseModel):
    """One difference between the packing and the current environment."""

    model_config = ConfigDict(frozen=True)

    subject: str
    category: Category
    packed: str | None
    current: str | None
    risk: Risk
    why: str


def diff_environments(
    packed: EnvironmentRecord,
    current: EnvironmentRecord,
    lock: dict[str, str] | None,
    numerics: Mapping[str, str] | None = None,
) -> list[DiffRow]:
    """Every difference from ``packed`` to ``current``: critical first, then by category.

    ``lock`` is the seal's serving lock; None (two bare environment records) treats the
    numerical packages as locked and every other package as outside the lock.
    ``numerics``: packages that change this seal's numerics in particular, with why
    (``risk.seal_numerics``: pandas for a tabular model).
    """
    rows = [
        *_package_rows(packed.packages, current.packages, lock, numerics or {}),
        *_python_rows(packed.python, current.python),
        *_platform_rows(packed.platform, current.platform),
        *_cpu_rows(packed.cpu, current.cpu),
        *_threadpool_rows(packed.threadpools, current.threadpools),
        *_env_rows(packed.numerics_env, current.numerics_env),
        *_cuda_rows(packed.torch, current.torch),
        *_gpu_rows(packed.gpus, current.gpus),
        *_onnxruntime_rows(packed.onnxruntime, current.onnxruntime),
    ]
    return sorted(rows, key=_row_order)


@dataclass(frozen=True)
class _Property:
    """A field compared as a plain value: a difference is one row of this risk."""

    attribute: str
    risk: Risk
    why: str
    recorded_only: bool = False  # None on either side means "not recorded": no row


_PYTHON_PROPERTIES = (
    _Property(
        "implementation",
        Risk.CRITICAL,
        "a different Python implementation runs the model and its native extensions",
    ),
    _Property("build", Risk.INFO, "a different build of the same Python version"),
    _Property("compiler", Risk.INFO, "Python was built with a different compiler"),
)
_PLATFORM_PROPERTIES = (
    _Property(
        "machine",
        Risk.CRITICAL,
        "a different CPU architecture: other native wheels, kernels and floating-point code",
    ),
    _Property(
        "system",
        Risk.CRITICAL,
        "a different operating system: other native wheels and math libraries",
    ),
    _Property("libc", Risk.WARNING, "a different C library: libm functions can round differently"),
    _Property(
        "libc_version",
        Risk.WARNING,
        "a different C library version: libm functions can round differently",
    ),
    _Property("release", Risk.INFO, "a different kernel release; numerics do not depend on it"),
)
_CPU_PROPERTIES = (
    _Property("model", Risk.INFO, "a different CPU model; its instruction sets are compared apart"),
    _Property("count", Risk.INFO, "a different core count; thread pools are compared apart"),
)
# Only BLAS pools are compared: older records also hold OpenMP pools, which were
# there or not depending on what the process had imported (see fingerprint.py).
_POOL_PROPERTIES: dict[str, tuple[_Property, ...]] = {
    "blas": (
        _Property(
            "version",
            Risk.WARNING,
            "a different BLAS version: its kernels can round matrix products differently",
        ),
        _Property(
            "num_threads",
            Risk.WARNING,
            "a different BLAS thread count splits reductions differently, so sums round "
            "differently",
        ),
        _Property(
            "architecture",
            Risk.WARNING,
            "the BLAS picked kernels for a different CPU architecture: other SIMD code paths",
        ),
    ),
}
_VENDOR_CHANGE: dict[str, _Property] = {
    "blas": _Property(
        "vendors",
        Risk.CRITICAL,
        "a different BLAS library does the linear algebra: other kernels, other rounding",
    ),
}
_TORCH_FLAGS = (
    _Property(
        "tf32_matmul",
        Risk.WARNING,
        "TF32 matmul toggled: float32 matrix products change precision on Ampere+ GPUs",
        recorded_only=True,
    ),
    _Property(
        "tf32_cudnn",
        Risk.WARNING,
        "TF32 in cuDNN toggled: float32 convolutions change precision on Ampere+ GPUs",
        recorded_only=True,
    ),
    _Property(
        "cudnn_deterministic",
        Risk.WARNING,
        "cuDNN determinism toggled: convolution algorithms and their rounding can change",
        recorded_only=True,
    ),
    _Property(
        "deterministic_algorithms",
        Risk.WARNING,
        "torch deterministic algorithms toggled: other kernels, other rounding",
        recorded_only=True,
    ),
)
_NUMERICAL_CHANGE_RISK = {
    VersionChange.MAJOR: Risk.CRITICAL,
    VersionChange.MINOR: Risk.CRITICAL,
    VersionChange.UNPARSEABLE: Risk.CRITICAL,
    VersionChange.PATCH: Risk.WARNING,
    VersionChange.LOCAL: Risk.WARNING,
}
_LARGE_CHANGES = frozenset({VersionChange.MAJOR, VersionChange.MINOR, VersionChange.UNPARSEABLE})
_NONE = "none"


def _row_order(row: DiffRow) -> tuple[int, int, str]:
    return row.risk.rank, CATEGORIES.index(row.category), row.subject


# --- packages ---------------------------------------------------------------------------


def _package_rows(
    packed: dict[str, str],
    current: dict[str, str],
    lock: dict[str, str] | None,
    numerics: Mapping[str, str],
) -> Iterator[DiffRow]:
    before_all = _normalized(packed)
    after_all = _normalized(current)
    locked_versions = _normalized(lock or {})
    if lock is None:
        locked = {name for name in before_all if numerical_why(name, numerics) is not None}
    else:
        locked = set(locked_versions)
    for name in sorted(before_all.keys() | after_all.keys() | locked_versions.keys()):
        before = before_all.get(name, locked_versions.get(name))
        after = after_all.get(name)
        if before == after:
            continue
        if before is None or name not in locked:
            yield _unlocked_package_row(name, before, after)
        else:
            yield _locked_package_row(name, before, after, numerical_why(name, numerics))


def _normalized(packages: dict[str, str]) -> dict[str, str]:
    return {canonicalize_name(name): version for name, version in packages.items()}


def _unlocked_package_row(name: str, before: str | None, after: str | None) -> DiffRow:
    if before is None:
        why = "installed here only; not in the seal's lock, so the model should not need it"
    elif after is None:
        why = "not installed here; it is not in the seal's lock, so the model should not need it"
    else:
        why = "version differs; not in the seal's lock, so the model should not depend on it"
    return _package_row(name, before, after, Risk.INFO, why)


def _locked_package_row(name: str, before: str, after: str | None, numerics: str | None) -> DiffRow:
    if numerics is not None:
        return _numerical_package_row(name, before, after, numerics)
    if after is None:
        why = "in the seal's lock but not installed here; serving may fail to import it"
    else:
        why = "version differs from the seal's lock; behaviour the model relies on may change"
    return _package_row(name, before, after, Risk.WARNING, why)


def _numerical_package_row(name: str, before: str, after: str | None, numerics: str) -> DiffRow:
    if after is None:
        why = f"not installed here, but the model runs on it ({numerics})"
        return _package_row(name, before, after, Risk.CRITICAL, why)
    change = version_change(before, after)
    if change is VersionChange.LOCAL:
        why = (
            "the build variant changed (same release, e.g. a CPU vs a CUDA build), so it "
            f"ships other native code for {numerics}"
        )
    elif change is VersionChange.UNPARSEABLE:
        why = f"versions cannot be compared, so assume a large change ({numerics})"
    else:
        why = (
            f"{change.value} version change of a numerical package the model runs on "
            f"({numerics}): kernels and defaults can change outputs"
        )
    return _package_row(name, before, after, _NUMERICAL_CHANGE_RISK[change], why)


def _package_row(name: str, before: str | None, after: str | None, risk: Risk, why: str) -> DiffRow:
    return DiffRow(
        subject=name, category="package", packed=before, current=after, risk=risk, why=why
    )


# --- python, platform, cpu --------------------------------------------------------------


def _python_rows(packed: PythonInfo, current: PythonInfo) -> Iterator[DiffRow]:
    yield from _property_rows("python", "python", _PYTHON_PROPERTIES, packed, current)
    change = version_change(packed.version, current.version)
    if change is VersionChange.SAME:
        return
    if change in _LARGE_CHANGES:
        risk = Risk.CRITICAL
        why = "a different Python minor version: other wheels, and pickled objects may differ"
    else:
        risk = Risk.WARNING
        why = "a different Python patch release: rarely changes numerics, but it is not the same"
    yield DiffRow(
        subject="python version",
        category="python",
        packed=packed.version,
        current=current.version,
        risk=risk,
        why=why,
    )


def _platform_rows(packed: PlatformInfo, current: PlatformInfo) -> Iterator[DiffRow]:
    return _property_rows("platform", "platform", _PLATFORM_PROPERTIES, packed, current)


def _cpu_rows(packed: CpuInfo, current: CpuInfo) -> Iterator[DiffRow]:
    yield from _property_rows("cpu", "cpu", _CPU_PROPERTIES, packed, current)
    only_packed = sorted(set(packed.flags) - set(current.flags))
    only_current = sorted(set(current.flags) - set(packed.flags))
    if not only_packed and not only_current:
        return
    yield DiffRow(
        subject="cpu flags",
        category="cpu",
        packed=_joined(only_packed),
        current=_joined(only_current),
        risk=Risk.WARNING,
        why="instruction sets differ (each side lists the flags only it has): BLAS and "
        "ONNX Runtime dispatch different SIMD kernels",
    )


def _property_rows(
    category: Category,
    prefix: str,
    properties: Iterable[_Property],
    packed: BaseModel,
    current: BaseModel,
) -> Iterator[DiffRow]:
    for prop in properties:
        before = getattr(packed, prop.attribute)
        after = getattr(current, prop.attribute)
        if before == after or (prop.recorded_only and (before is None or after is None)):
            continue
        yield DiffRow(
            subject=f"{prefix} {prop.attribute}",
            category=category,
            packed=_text(before),
            current=_text(after),
            risk=prop.risk,
            why=prop.why,
        )


# --- thread pools and environment variables ----------------------------------------------


def _threadpool_rows(packed: list[ThreadPool], current: list[ThreadPool]) -> Iterator[DiffRow]:
    for user_api, properties in _POOL_PROPERTIES.items():
        before = _pools_by_vendor(packed, user_api)
        after = _pools_by_vendor(current, user_api)
        if before.keys() != after.keys():
            change = _VENDOR_CHANGE[user_api]
            yield DiffRow(
                subject=f"{user_api} {change.attribute}",
                category="blas",
                packed=_joined(sorted(before)),
                current=_joined(sorted(after)),
                risk=change.risk,
                why=change.why,
            )
        for vendor in sorted(before.keys() & after.keys()):
            yield from _pool_rows(f"{user_api} {vendor}", properties, before[vendor], after[vendor])


def _pools_by_vendor(pools: list[ThreadPool], user_api: str) -> dict[str, list[ThreadPool]]:
    by_vendor: dict[str, list[ThreadPool]] = {}
    for pool in pools:
        if pool.user_api == user_api:
            by_vendor.setdefault(pool.internal_api, []).append(pool)
    return by_vendor


def _pool_rows(
    prefix: str,
    properties: Iterable[_Property],
    packed: list[ThreadPool],
    current: list[ThreadPool],
) -> Iterator[DiffRow]:
    # A vendor can be loaded more than once (numpy's and scipy's OpenBLAS): compare the set
    # of values each side has, since library file names carry build hashes and do not match;
    # each value names whose copy has it when both records say (older ones do not).
    labelled = all(pool.owner for pool in (*packed, *current))
    for prop in properties:
        before = _pool_values(packed, prop.attribute, labelled)
        after = _pool_values(current, prop.attribute, labelled)
        if before == after:
            continue
        yield DiffRow(
            subject=f"{prefix} {prop.attribute}",
            category="blas",
            packed=before,
            current=after,
            risk=prop.risk,
            why=prop.why,
        )


def _pool_values(pools: list[ThreadPool], attribute: str, labelled: bool) -> str:
    values = {
        _text(getattr(pool, attribute)) + (f" ({pool.owner})" if labelled else "") for pool in pools
    }
    return _joined(sorted(values))


def _env_rows(packed: dict[str, str], current: dict[str, str]) -> Iterator[DiffRow]:
    for name in sorted(packed.keys() | current.keys()):
        before, after = packed.get(name), current.get(name)
        if before == after:
            continue
        yield DiffRow(
            subject=f"env {name}",
            category="env",
            packed=before,
            current=after,
            risk=Risk.WARNING,
            why=_env_why(before, after),
        )


def _env_why(before: str | None, after: str | None) -> str:
    if before is None:
        return "set here only: it changes thread counts or kernel choices, so outputs can move"
    if after is None:
        return "set where sealed but not here: thread counts or kernel choices can differ"
    return "set differently here: thread counts or kernel choices can differ"


# --- accelerators ------------------------------------------------------------------------


def _cuda_rows(packed: TorchInfo | None, current: TorchInfo | None) -> Iterator[DiffRow]:
    # Without torch on one side the package rows already say so.
    if packed is None or current is None:
        return
    yield from _torch_cuda_rows(packed.cuda, current.cuda)
    yield from _cudnn_rows(packed.cudnn, current.cudnn)
    yield from _property_rows("cuda", "torch", _TORCH_FLAGS, packed, current)


def _torch_cuda_rows(before: str | None, after: str | None) -> Iterator[DiffRow]:
    if before == after:
        return
    if before is None or after is None:
        risk = Risk.CRITICAL
        why = "a CPU build of torch on one side and a CUDA build on the other"
    elif version_change(before, after) in _LARGE_CHANGES:
        risk = Risk.CRITICAL
        why = "torch was built against a different CUDA: other cuBLAS and kernel versions"
    else:
        risk = Risk.WARNING
        why = "torch was built against a different CUDA patch release"
    yield DiffRow(
        subject="torch cuda", category="cuda", packed=before, current=after, risk=risk, why=why
    )


def _cudnn_rows(before: str | None, after: str | None) -> Iterator[DiffRow]:
    if before == after:
        return
    risk = Risk.WARNING
    why = "a different cuDNN: convolution algorithms and their rounding can change"
    if before is not None and after is not None:
        change = version_change(_cudnn_release(before), _cudnn_release(after))
        if change is VersionChange.SAME:
            return
        if change in (VersionChange.MAJOR, VersionChange.UNPARSEABLE):
            risk = Risk.CRITICAL
            why = "a different cuDNN major version: other convolution algorithms and rounding"
    yield DiffRow(
        subject="torch cudnn", category="cuda", packed=before, current=after, risk=risk, why=why
    )


def _cudnn_release(text: str) -> str:
    """cuDNN as torch reports it (8902 is 8.9.2, 90100 is 9.1.0) -> a dotted version."""
    if not text.isdigit():
        return text
    number = int(text)
    major, rest = divmod(number, 10000 if number >= 90000 else 1000)
    minor, patch = divmod(rest, 100)
    return f"{major}.{minor}.{patch}"


def _gpu_rows(packed: list[GpuInfo], current: list[GpuInfo]) -> Iterator[DiffRow]:
    if len(packed) != len(current):
        yield DiffRow(
            subject="gpu count",
            category="gpu",
            packed=str(len(packed)),
            current=str(len(current)),
            risk=Risk.WARNING,
            why="a different number of GPUs: the model may run on other devices and kernels",
        )
    if not packed or not current:
        return
    names = (_gpu_values(packed, "name"), _gpu_values(current, "name"))
    if names[0] != names[1]:
        yield DiffRow(
            subject="gpu names",
            category="gpu",
            packed=names[0],
            current=names[1],
            risk=Risk.WARNING,
            why="different GPU models: other kernels are picked, with other numerics",
        )
    capabilities = (
        _gpu_values(packed, "compute_capability"),
        _gpu_values(current, "compute_capability"),
    )
    if capabilities[0] != capabilities[1]:
        yield DiffRow(
            subject="gpu compute capability",
            category="gpu",
            packed=capabilities[0],
            current=capabilities[1],
            risk=Risk.WARNING,
            why="a different compute capability: other kernels (and TF32 support) are used",
        )


def _gpu_values(gpus: list[GpuInfo], attribute: str) -> str:
    return _joined(sorted({_text(getattr(gpu, attribute)) for gpu in gpus}))


def _onnxruntime_rows(
    packed: OnnxRuntimeInfo | None, current: OnnxRuntimeInfo | None
) -> Iterator[DiffRow]:
    # Without onnxruntime on one side the package rows already say so.
    if packed is None or current is None:
        return
    if packed.distribution != current.distribution:
        yield DiffRow(
            subject="onnxruntime distribution",
            category="onnxruntime",
            packed=packed.distribution,
            current=current.distribution,
            risk=Risk.WARNING,
            why="a different onnxruntime build: other execution providers and kernels",
        )
    yield from _provider_rows(packed.providers, current.providers)


def _provider_rows(before: list[str] | None, after: list[str] | None) -> Iterator[DiffRow]:
    if before is None or after is None or before == after:
        return
    yield DiffRow(
        subject="onnxruntime providers",
        category="onnxruntime",
        packed=_joined(before),
        current=_joined(after),
        risk=Risk.WARNING,
        why="different execution providers are available: the model may run on other kernels",
    )


# --- values ------------------------------------------------------------------------------


def _joined(values: list[str]) -> str:
    return ", ".join(values) if values else _NONE


def _text(value: object) -> str:
    return "unknown" if value is None else str(value)
