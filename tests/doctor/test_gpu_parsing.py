"""nvidia-smi output, the CUDA driver table and compiled architectures, judged as the GPU
checks judge them. The nvidia-smi fixtures are in the format NVIDIA documents for
``--query-gpu=... --format=csv,noheader,nounits`` and ``--query-compute-apps=...``."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelseal.doctor.cuda import DriverFit, KernelSupport, judge_driver, kernel_support
from modelseal.doctor.nvidia_smi import (
    GPU_FIELDS,
    OPTIONAL_FIELD,
    parse_gpu_query,
    parse_process_query,
)

SMI = Path(__file__).parent / "fixtures" / "nvidia-smi"


def smi_text(name: str) -> str:
    return (SMI / name).read_text()


def test_two_a100s_are_parsed_field_by_field() -> None:
    first, second = parse_gpu_query(smi_text("query-gpu-a100x2.csv"))
    assert (first.index, first.name, first.driver) == (0, "NVIDIA A100-SXM4-40GB", "535.104.05")
    assert first.uuid == "GPU-6b1a4c9e-2f3d-8e71-0a5b-9c4d3e2f1a0b"
    assert (first.memory_total_mib, first.memory_used_mib, first.memory_free_mib) == (
        40960,
        36291,
        4046,
    )
    assert first.compute_capability == "8.0"
    assert (second.index, second.memory_free_mib) == (1, 40333)


def test_a_driver_without_compute_cap_and_with_na_fields() -> None:
    fields = tuple(field for field in GPU_FIELDS if field != OPTIONAL_FIELD)
    (gpu,) = parse_gpu_query(smi_text("query-gpu-t4-no-compute-cap.csv"), fields)
    assert (gpu.name, gpu.driver, gpu.memory_total_mib) == ("Tesla T4", "470.57.02", 15360)
    assert gpu.memory_used_mib is None  # "[N/A]"
    assert gpu.compute_capability is None


def test_messages_are_not_gpus() -> None:
    assert parse_gpu_query(smi_text("no-devices.txt")) == []


def test_compute_processes() -> None:
    python, hidden = parse_process_query(smi_text("query-compute-apps.csv"))
    assert (python.pid, python.name, python.used_mib) == (48213, "/usr/bin/python3", 35840)
    assert (hidden.pid, hidden.name, hidden.used_mib) == (51007, None, 418)  # "[Not Found]"
    assert parse_process_query(smi_text("query-compute-apps-empty.csv")) == []


@pytest.mark.parametrize(
    ("cuda", "driver", "fit", "needed"),
    [
        ("12.1", "535.104.05", DriverFit.FULL, "530.30.02"),
        ("12.4", "535.104.05", DriverFit.MINOR_COMPAT, "550.54.14"),
        ("12.8", "525.60.13", DriverFit.MINOR_COMPAT, "570.26"),
        ("12.4", "470.57.02", DriverFit.TOO_OLD, "525.60.13"),
        ("11.8", "450.80.02", DriverFit.MINOR_COMPAT, "520.61.05"),
        ("11.8", "418.39", DriverFit.TOO_OLD, "450.80.02"),
        ("13.0", "575.51.03", DriverFit.TOO_OLD, "580.65.06"),
        ("10.2", "418.39", DriverFit.TOO_OLD, "440.33"),
        ("12.6", "560.35.03", DriverFit.FULL, "560.28.03"),
    ],
)
def test_driver_against_the_cuda_a_framework_was_built_with(
    cuda: str, driver: str, fit: DriverFit, needed: str
) -> None:
    judged = judge_driver(cuda, driver)
    assert (judged.fit, judged.needed) == (fit, needed), judged.why


def test_an_unparseable_driver_is_unknown() -> None:
    assert judge_driver("12.1", "unknown").fit is DriverFit.UNKNOWN


TORCH_2_5_CU124 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]


@pytest.mark.parametrize(
    ("capability", "archs", "support"),
    [
        ("8.0", TORCH_2_5_CU124, KernelSupport.NATIVE),
        ("8.9", TORCH_2_5_CU124, KernelSupport.NATIVE),  # sm_86 code runs on 8.9
        ("12.0", TORCH_2_5_CU124, KernelSupport.NONE),  # Blackwell on a cu124 build
        ("3.7", TORCH_2_5_CU124, KernelSupport.NONE),  # Kepler: dropped
        ("12.0", ["sm_80", "sm_90", "compute_90"], KernelSupport.PTX_JIT),
        ("9.0", ["sm_80", "sm_90a"], KernelSupport.NATIVE),
        ("10.0", ["sm_90a"], KernelSupport.NONE),  # arch-specific code runs on 9.0 only
        ("10.3", ["sm_100f"], KernelSupport.NATIVE),  # family-specific: same major
        ("12.0", ["sm_80", "sm_90", "sm_100", "sm_120"], KernelSupport.NATIVE),
        ("8.0", ["sm_86"], KernelSupport.NONE),  # newer minor code does not run on older
        ("x", TORCH_2_5_CU124, KernelSupport.NONE),
    ],
)
def test_compute_capability_against_torch_arch_list(
    capability: str, archs: list[str], support: KernelSupport
) -> None:
    assert kernel_support(capability, archs) is support
