"""CUDA compatibility as data: which driver a CUDA build needs, which GPUs its kernels run on.

Driver versions are NVIDIA's (CUDA Toolkit release notes, Linux x86_64, the driver each
toolkit release shipped with; and the minor-version-compatibility floors of each major).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from packaging.version import InvalidVersion, Version

# The driver each CUDA toolkit release (GA) shipped with: a driver at least this new runs
# everything built with that toolkit, PTX JIT included.
TOOLKIT_DRIVERS: dict[str, str] = {
    "10.0": "410.48",
    "10.1": "418.39",
    "10.2": "440.33",
    "11.0": "450.36.06",
    "11.1": "455.23",
    "11.2": "460.27.03",
    "11.3": "465.19.01",
    "11.4": "470.42.01",
    "11.5": "495.29.05",
    "11.6": "510.39.01",
    "11.7": "515.43.04",
    "11.8": "520.61.05",
    "12.0": "525.60.13",
    "12.1": "530.30.02",
    "12.2": "535.54.03",
    "12.3": "545.23.06",
    "12.4": "550.54.14",
    "12.5": "555.42.02",
    "12.6": "560.28.03",
    "12.8": "570.26",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
}
# From CUDA 11 on, a build of any minor release of a major runs (without PTX JIT of newer
# kernels) on a driver at least this new: CUDA minor version compatibility.
MINOR_COMPAT_FLOORS: dict[int, str] = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}


class DriverFit(str, Enum):
    """How a driver serves a CUDA build."""

    FULL = "full"
    MINOR_COMPAT = "minor-compat"
    TOO_OLD = "too-old"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class DriverJudgement:
    fit: DriverFit
    needed: str | None
    why: str


def judge_driver(cuda: str, driver: str) -> DriverJudgement:
    """Can a driver of version ``driver`` run code built with CUDA ``cuda``?"""
    try:
        driver_version = Version(driver)
        cuda_version = Version(cuda)
    except InvalidVersion:
        return DriverJudgement(
            DriverFit.UNKNOWN, None, f"cannot compare driver {driver!r} with CUDA {cuda!r}"
        )
    release = f"{cuda_version.major}.{cuda_version.minor}"
    shipped = TOOLKIT_DRIVERS.get(release)
    floor = MINOR_COMPAT_FLOORS.get(cuda_version.major)
    if shipped is not None and driver_version >= Version(shipped):
        return DriverJudgement(
            DriverFit.FULL, shipped, f"driver {driver} >= {shipped}, the one CUDA {release} needs"
        )
    if floor is not None and driver_version >= Version(floor):
        return DriverJudgement(
            DriverFit.MINOR_COMPAT if shipped else DriverFit.FULL,
            shipped or floor,
            f"driver {driver} runs CUDA {cuda_version.major}.x builds (>= {floor})"
            + (
                f" through minor version compatibility only; CUDA {release} shipped with "
                f"{shipped}: kernels that need PTX JIT fail on this driver"
                if shipped
                else ""
            ),
        )
    needed = floor or shipped
    if needed is None:
        return DriverJudgement(
            DriverFit.UNKNOWN, None, f"CUDA {cuda} is not in modelseal's driver table"
        )
    return DriverJudgement(
        DriverFit.TOO_OLD,
        needed,
        f"driver {driver} is older than {needed}, the oldest that runs CUDA {release} builds: "
        "CUDA fails to initialise ('the NVIDIA driver on your system is too old'), so the "
        "framework sees no GPU",
    )


class KernelSupport(str, Enum):
    """Whether a framework's compiled kernels run on a GPU of some compute capability."""

    NATIVE = "native"
    PTX_JIT = "ptx-jit"
    NONE = "none"


_ARCH = re.compile(r"^(sm|compute)_(\d+)(\d)([af]?)$")


def kernel_support(capability: str, arch_list: list[str]) -> KernelSupport:
    """Judge compute capability ``capability`` ("8.6") against ``torch.cuda.get_arch_list()``.

    ``sm_XY`` machine code runs on X.Y and later minors of major X; ``sm_XYa`` only on X.Y;
    ``sm_XYf`` on the family (major X, minor >= Y); ``compute_XY`` PTX is JIT-compiled by
    the driver for X.Y and every later GPU.
    """
    device = _capability(capability)
    if device is None:
        return KernelSupport.NONE
    support = KernelSupport.NONE
    for entry in arch_list:
        match = _ARCH.match(entry.strip())
        if match is None:
            continue
        kind, major_text, minor_text, suffix = match.groups()
        built = (int(major_text), int(minor_text))
        if kind == "sm" and _machine_code_runs(built, suffix, device):
            return KernelSupport.NATIVE
        if kind == "compute" and built <= device:
            support = KernelSupport.PTX_JIT
    return support


def _machine_code_runs(built: tuple[int, int], suffix: str, device: tuple[int, int]) -> bool:
    if suffix == "a":
        return built == device
    return built[0] == device[0] and built[1] <= device[1]


def _capability(text: str) -> tuple[int, int] | None:
    major, _, minor = text.strip().partition(".")
    if not major.isdigit() or not minor.isdigit():
        return None
    return int(major), int(minor)
