"""How much a difference between two environments can move a model's outputs.

The data of the decision lives here: which distributions change numerics (and why), and how
far apart two versions are. ``diff.py`` applies it to two environment records.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from fnmatch import fnmatchcase

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from modelseal.types import TableSpec


class Risk(str, Enum):
    """How likely a difference is to change the model's outputs; critical first."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Sort key: 0 for critical, so ascending order puts the worst first."""
        return _RISK_RANKS[self]


_RISK_RANKS = {Risk.CRITICAL: 0, Risk.WARNING: 1, Risk.INFO: 2}


class VersionChange(str, Enum):
    """How far apart two versions of the same thing are."""

    SAME = "same"
    LOCAL = "local"
    PATCH = "patch"
    MINOR = "minor"
    MAJOR = "major"
    UNPARSEABLE = "unparseable"


# Distributions whose version changes a model's numerics: normalized name (or an fnmatch
# pattern) -> why. One entry per line; add new ones here.
NUMERICAL_PACKAGES: dict[str, str] = {
    "numpy": "array kernels, dtype promotion and the bundled BLAS",
    "scipy": "linear algebra, sparse and special-function kernels",
    "scikit-learn": "estimator algorithms, defaults and solvers",
    "torch": "operator kernels, default dtypes and CPU/CUDA backends",
    "onnxruntime": "operator kernels and graph optimizations",
    "onnxruntime-gpu": "operator kernels, graph optimizations and CUDA providers",
    "xgboost": "tree construction, histogram binning and prediction",
    "lightgbm": "tree construction, histogram binning and prediction",
    "catboost": "tree construction, quantization and prediction",
    "tensorflow": "operator kernels, oneDNN and XLA defaults",
    "tensorflow-cpu": "operator kernels, oneDNN and XLA defaults",
    "jax": "tracing, XLA lowering and default precision",
    "jaxlib": "XLA compiler and its kernels",
    "pandas": "parsing, dtype inference and aggregations feeding the model",
    "numba": "JIT-compiled kernels and fastmath code generation",
    "llvmlite": "the LLVM that numba compiles kernels with",
    "mkl": "Intel BLAS/LAPACK kernels and their CPU dispatch",
    "scipy-openblas32": "numpy's bundled OpenBLAS kernels",
    "scipy-openblas64": "numpy's bundled OpenBLAS kernels",
    "nvidia-cu*": "CUDA math libraries (cuBLAS, cuDNN, cuFFT, cuSOLVER, ...) kernels",
    "nvidia-nccl-cu*": "collective reductions across GPUs",
    "nvidia-nvjitlink-cu*": "the JIT linker of CUDA kernels",
}


# What more changes a tabular model's numerics: the DataFrame it receives is built by pandas,
# and text columns with pyarrow storage (pandas 3's default str dtype) are held by pyarrow.
TABULAR_PACKAGES: dict[str, str] = {
    "pandas": "it builds the DataFrame the model receives: dtype inference, missing-value "
    "markers and the default text dtype (object up to pandas 2, str from pandas 3) change "
    "what the model's encoders and scalers see",
}
ARROW_PACKAGES: dict[str, str] = {
    "pyarrow": "it holds the model's text columns (pyarrow string storage): comparisons, "
    "sorting and missing values in the model's encoders run in pyarrow",
}


def seal_numerics(table: TableSpec | None) -> dict[str, str]:
    """Packages that change the numerics of a model with this input table (None: tensors),
    beyond ``NUMERICAL_PACKAGES``, each with why."""
    if table is None:
        return {}
    return {**TABULAR_PACKAGES, **(ARROW_PACKAGES if table.arrow_backed else {})}


def numerical_why(name: str, extra: Mapping[str, str] | None = None) -> str | None:
    """Why ``name`` changes numerics, or None when it is not a numerical package.

    ``extra``: what changes this seal's numerics in particular (``seal_numerics``); it wins
    over the general table."""
    name = canonicalize_name(name)
    if extra and name in extra:
        return extra[name]
    if name in NUMERICAL_PACKAGES:
        return NUMERICAL_PACKAGES[name]
    for pattern, why in NUMERICAL_PACKAGES.items():
        if fnmatchcase(name, pattern):
            return why
    return None


def version_change(packed: str, current: str) -> VersionChange:
    """Classify the step from ``packed`` to ``current`` (PEP 440 versions)."""
    if packed == current:
        return VersionChange.SAME
    try:
        before, after = Version(packed), Version(current)
    except InvalidVersion:
        return VersionChange.UNPARSEABLE
    if before == after:
        return VersionChange.SAME
    if before.epoch != after.epoch or before.major != after.major:
        return VersionChange.MAJOR
    if before.minor != after.minor:
        return VersionChange.MINOR
    if Version(before.public) != Version(after.public):
        return VersionChange.PATCH
    return VersionChange.LOCAL
