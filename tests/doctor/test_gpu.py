"""GPU checks: verdicts on captured facts, the acceptance runs on this machine, and the real
GPU paths on a machine that has an NVIDIA GPU (skipped with the reason elsewhere)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from modelseal import open_seal
from modelseal.doctor.frameworks import OnnxRuntimeView, TorchView
from modelseal.doctor.gpu import (
    GpuFacts,
    check_architectures,
    check_driver,
    check_processes,
    check_visible,
    judge_gpu_memory,
    visible_subset,
)
from modelseal.doctor.nvidia_smi import SmiReport, parse_gpu_query, parse_process_query
from modelseal.doctor.report import Status
from modelseal.doctor.subject import GIB, SealFacts
from tests.cli_process import run_modelseal
from tests.doctor.seals import A100, onnx_seal, packed_with_gpus

SMI = Path(__file__).parent / "fixtures" / "nvidia-smi"
CPU_TORCH = TorchView("2.13.0+cpu", None, False, 0, (), (), 2, None)
CPU_ORT = OnnxRuntimeView("1.32.0", ("CPUExecutionProvider",), None)
GPU_ORT = OnnxRuntimeView("1.20.1", ("CUDAExecutionProvider", "CPUExecutionProvider"), "12.4")
CU124_ARCHS = ("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90")
NO_SMI = SmiReport(found=False, error="nvidia-smi is not on PATH")


def smi(gpus: str, processes: str = "query-compute-apps-empty.csv") -> SmiReport:
    return SmiReport(
        found=True,
        gpus=tuple(parse_gpu_query((SMI / gpus).read_text())),
        processes=tuple(parse_process_query((SMI / processes).read_text())),
    )


def facts(
    report: SmiReport = NO_SMI,
    torch: TorchView | None = CPU_TORCH,
    ort: OnnxRuntimeView | None = CPU_ORT,
    cuda_visible_devices: str | None = None,
) -> GpuFacts:
    return GpuFacts(report, torch, ort, cuda_visible_devices, None)


@pytest.fixture(scope="module")
def gpu_onnx_seal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gpu-seal")
    return packed_with_gpus(onnx_seal(folder), [A100], folder / "mlp-gpu.seal")


@pytest.fixture(scope="module")
def gpu_seal_facts(gpu_onnx_seal: Path) -> SealFacts:
    return SealFacts(open_seal(gpu_onnx_seal))


@pytest.fixture
def cpu_seal_facts(demo_seal_path: Path) -> SealFacts:
    return SealFacts(open_seal(demo_seal_path))


# --- verdicts on captured facts -------------------------------------------------------------


def test_a_cpu_seal_without_a_gpu_is_a_warning(cpu_seal_facts: SealFacts) -> None:
    check = check_visible(facts(), cpu_seal_facts)
    assert check.status is Status.WARN
    assert "runs on the CPU as validated" in check.evidence
    assert "nothing to do for a CPU model" in (check.fix or "")


def test_a_gpu_seal_without_a_gpu_fails_with_the_silent_fallback(gpu_seal_facts: SealFacts) -> None:
    check = check_visible(facts(), gpu_seal_facts)
    assert check.status is Status.FAIL
    assert "NVIDIA A100-SXM4-40GB" in check.evidence
    assert "silent CPU fallback" in check.evidence
    assert "--require-gpu 1" in (check.fix or "")


def test_cuda_visible_devices_that_hides_every_gpu_is_named(gpu_seal_facts: SealFacts) -> None:
    check = check_visible(facts(smi("query-gpu-a100x2.csv"), cuda_visible_devices="-1"),
                          gpu_seal_facts)  # fmt: skip
    assert check.status is Status.FAIL
    assert "CUDA_VISIBLE_DEVICES='-1' hides them" in (check.fix or "")


def test_a_gpu_the_runtime_cannot_use_fails(gpu_seal_facts: SealFacts) -> None:
    check = check_visible(facts(smi("query-gpu-a100x2.csv"), ort=CPU_ORT), gpu_seal_facts)
    assert check.status is Status.FAIL
    assert "onnxruntime cannot use them" in check.evidence


def test_a_gpu_the_runtime_uses_is_ok(gpu_seal_facts: SealFacts) -> None:
    check = check_visible(facts(smi("query-gpu-a100x2.csv"), ort=GPU_ORT), gpu_seal_facts)
    assert check.status is Status.OK
    assert check.facts["gpus_visible"] == 2


def test_a_gpu_in_the_packing_env_of_a_cpu_runtime_is_not_expected(
    demo_seal_path: Path, tmp_path: Path
) -> None:
    sklearn_on_gpu_box = packed_with_gpus(demo_seal_path, [A100], tmp_path / "digits.seal")
    check = check_visible(facts(), SealFacts(open_seal(sklearn_on_gpu_box)))
    assert check.status is Status.WARN
    assert "sklearn runtime runs on the CPU only" in check.evidence


@pytest.mark.parametrize(
    ("visible", "indices"),
    [(None, [0, 1]), ("1", [1]), ("1,0", [1, 0]), ("GPU-d2e8", [1]), ("", []), ("-1", []),
     ("0,-1,1", [0]), ("MIG-4f3c2b1a", [0, 1])],
)  # fmt: skip
def test_cuda_visible_devices_as_cuda_reads_it(visible: str | None, indices: list[int]) -> None:
    gpus = smi("query-gpu-a100x2.csv").gpus
    assert [gpu.index for gpu in visible_subset(gpus, visible)] == indices


def test_a_driver_older_than_torchs_cuda_fails() -> None:
    torch = TorchView("2.5.1+cu124", "12.4", False, 0, CU124_ARCHS, (), 8, "driver too old")
    fields = ("index", "uuid", "name", "driver_version", "memory.total", "memory.used",
              "memory.free")  # fmt: skip
    t4 = SmiReport(True, tuple(parse_gpu_query(
        (SMI / "query-gpu-t4-no-compute-cap.csv").read_text(), fields)))  # fmt: skip
    check = check_driver(facts(t4, torch=torch))
    assert check.status is Status.FAIL
    assert "525.60.13" in (check.fix or "")
    assert check.facts == {"driver": "470.57.02", "torch_cuda": "12.4"}


def test_a_driver_running_cuda_through_minor_version_compatibility_warns() -> None:
    check = check_driver(facts(smi("query-gpu-a100x2.csv"), ort=GPU_ORT))
    assert check.status is Status.WARN
    assert "minor version compatibility" in check.evidence


def test_without_a_cuda_build_the_driver_is_not_judged() -> None:
    assert check_driver(facts(smi("query-gpu-a100x2.csv"))).status is Status.SKIPPED


def test_a_gpu_torch_has_no_kernels_for_fails() -> None:
    torch = TorchView("2.5.1+cu124", "12.4", True, 1, CU124_ARCHS, ("12.0",), 8, None)
    check = check_architectures(facts(smi("query-gpu-rtx5090.csv"), torch=torch))
    assert check.status is Status.FAIL
    assert "no kernel image is available" in check.evidence
    assert "sm_120" in (check.fix or "")


def test_a_gpu_torch_has_kernels_for_is_ok() -> None:
    torch = TorchView("2.5.1+cu124", "12.4", True, 1, CU124_ARCHS, ("9.0",), 8, None)
    assert check_architectures(facts(smi("query-gpu-h100.csv"), torch=torch)).status is Status.OK


@pytest.mark.parametrize(
    ("model_gib", "status"), [(1, Status.OK), (4, Status.WARN), (8, Status.FAIL)]
)
def test_the_model_against_free_gpu_memory(model_gib: int, status: Status) -> None:
    busy_a100 = smi("query-gpu-a100x2.csv").gpus[0]  # 4046 MiB free
    check = judge_gpu_memory(busy_a100, model_gib * GIB)
    assert check.status is status, check.evidence
    if status is Status.WARN:
        assert "--half" in (check.fix or "")


def test_other_processes_on_the_gpu_are_listed() -> None:
    check = check_processes(facts(smi("query-gpu-a100x2.csv", "query-compute-apps.csv")))
    assert check.status is Status.WARN
    assert "pid 48213 /usr/bin/python3 uses 35840 MiB on GPU 0" in check.evidence
    assert check.facts == {"other_processes": 2, "other_processes_mib": 35840 + 418}


def test_no_other_process_on_the_visible_gpu_is_ok() -> None:
    only_second = facts(smi("query-gpu-a100x2.csv", "query-compute-apps.csv"),
                        cuda_visible_devices="1")  # fmt: skip
    assert check_processes(only_second).status is Status.OK


# --- acceptance on this machine ---------------------------------------------------------------


def gpu_listed() -> bool:
    """Independently of the doctor: does nvidia-smi list a GPU here?"""
    smi_path = shutil.which("nvidia-smi")
    if smi_path is None:
        return False
    listed = subprocess.run([smi_path, "-L"], capture_output=True, text=True, check=False)
    return listed.returncode == 0 and "GPU " in listed.stdout


def gpu_check(report: dict[str, object]) -> dict[str, object]:
    checks = report["checks"]
    assert isinstance(checks, list)
    return next(check for check in checks if check["id"] == "gpu.visible")


def test_doctor_on_a_cpu_seal_here(demo_seal_path: Path) -> None:
    result = run_modelseal("doctor", str(demo_seal_path), "--json")
    check = gpu_check(json.loads(result.stdout))
    if gpu_listed():
        assert check["status"] == "ok", check
        return
    assert check["status"] == "warn", check
    assert "runs on the CPU as validated" in str(check["evidence"])


def test_doctor_on_a_gpu_seal_without_a_gpu_fails(gpu_onnx_seal: Path) -> None:
    if gpu_listed():
        pytest.skip("this machine has a GPU: the missing-GPU verdict cannot happen here")
    result = run_modelseal("doctor", str(gpu_onnx_seal), "--json")
    assert result.returncode == 1, result.stderr
    check = gpu_check(json.loads(result.stdout))
    assert check["status"] == "fail"
    assert "silent CPU fallback" in str(check["evidence"])


@pytest.mark.gpu
def test_doctor_reads_the_real_gpus(demo_seal_path: Path) -> None:
    if not gpu_listed():
        pytest.skip("no NVIDIA GPU here: `nvidia-smi -L` lists none (or is not installed)")
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True)
    count = sum(line.startswith("GPU ") for line in listed.stdout.splitlines())
    report = json.loads(
        run_modelseal("doctor", str(demo_seal_path), "--json", extra_env={
            "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in range(count))}).stdout
    )  # fmt: skip
    by_id = {check["id"]: check for check in report["checks"]}
    assert by_id["gpu.visible"]["status"] == "ok"
    assert by_id["gpu.visible"]["facts"]["gpus_visible"] == count
    assert by_id["gpu.processes"]["status"] in ("ok", "warn")
    assert by_id["gpu.memory"]["status"] in ("skipped", "ok")  # sklearn: CPU only
