"""GPU checks: is a GPU visible and usable, does the driver fit the CUDA builds, do the
compiled kernels run on this GPU, does the model fit its free memory, who else is on it.

``gather_gpu_facts`` asks nvidia-smi and the frameworks; ``gpu_checks`` only judges those
facts against the seal, so every verdict can be tested on captured facts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from modelseal.doctor.cuda import DriverFit, KernelSupport, judge_driver, kernel_support
from modelseal.doctor.frameworks import OnnxRuntimeView, TorchView, onnxruntime_view, torch_view
from modelseal.doctor.nvidia_smi import SmiGpu, SmiReport, query_nvidia_smi
from modelseal.doctor.report import Check, Facts, Status, new_check
from modelseal.doctor.subject import MIB, SealFacts, size_text
from modelseal.serving.device import GPU_CHECKLIST

CUDA_CONTEXT_BYTES = 512 * MIB
"""What a CUDA context and the framework's kernels take on the GPU before any weight."""


@dataclass(frozen=True)
class GpuFacts:
    """Everything the GPU checks judge, gathered once."""

    smi: SmiReport
    torch: TorchView | None
    onnxruntime: OnnxRuntimeView | None
    cuda_visible_devices: str | None
    nvidia_visible_devices: str | None

    @property
    def visible_gpus(self) -> tuple[SmiGpu, ...]:
        """The driver's GPUs this process may use, after ``CUDA_VISIBLE_DEVICES``."""
        return visible_subset(self.smi.gpus, self.cuda_visible_devices)

    @property
    def frameworks_with_gpu(self) -> list[str]:
        names = []
        if self.torch is not None and self.torch.available:
            names.append("torch")
        if self.onnxruntime is not None and self.onnxruntime.has_cuda:
            names.append("onnxruntime")
        return names


def gather_gpu_facts() -> GpuFacts:
    return GpuFacts(
        smi=query_nvidia_smi(),
        torch=torch_view(),
        onnxruntime=onnxruntime_view(),
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        nvidia_visible_devices=os.environ.get("NVIDIA_VISIBLE_DEVICES"),
    )


def gpu_checks(facts: GpuFacts, seal: SealFacts | None) -> list[Check]:
    return [
        check_visible(facts, seal),
        check_driver(facts),
        check_architectures(facts),
        check_memory(facts, seal),
        check_processes(facts),
    ]


def visible_subset(
    gpus: tuple[SmiGpu, ...], cuda_visible_devices: str | None
) -> tuple[SmiGpu, ...]:
    """The GPUs CUDA exposes under ``CUDA_VISIBLE_DEVICES`` (indices or UUID prefixes).

    As CUDA does, the list ends at the first entry that names no GPU ("-1", "", "none").
    MIG instances cannot be mapped to nvidia-smi's GPUs, so all GPUs are kept for them.
    """
    if cuda_visible_devices is None:
        return gpus
    picked: list[SmiGpu] = []
    for token in (part.strip() for part in cuda_visible_devices.split(",")):
        if token.startswith("MIG-"):
            return gpus
        match = _named_gpu(gpus, token)
        if match is None:
            break
        picked.append(match)
    return tuple(picked)


def _named_gpu(gpus: tuple[SmiGpu, ...], token: str) -> SmiGpu | None:
    if token.isdigit():
        return next((gpu for gpu in gpus if gpu.index == int(token)), None)
    if token.startswith("GPU-"):
        return next((gpu for gpu in gpus if gpu.uuid.startswith(token)), None)
    return None


# --- visibility ----------------------------------------------------------------------------


def check_visible(facts: GpuFacts, seal: SealFacts | None) -> Check:
    evidence = "; ".join(_visibility_evidence(facts, seal))
    visible = facts.visible_gpus
    usable = facts.frameworks_with_gpu
    check_facts: Facts = {
        "gpus_visible": len(visible),
        "frameworks_with_gpu": ", ".join(usable) or None,
        "seal_expects_gpu": seal.expects_gpu if seal else None,
    }
    if seal is not None and seal.expects_gpu:
        if not visible and not usable:
            why = (
                f"the seal was validated where {seal.packed_gpus_text()} was visible and its "
                f"{seal.seal.runtime} runtime runs on CUDA, but no GPU is visible here: a "
                "server started with --device auto runs it on the CPU without any error, "
                "typically tens of times slower (the silent CPU fallback)"
            )
            return _visible(Status.FAIL, f"{why}; {evidence}", _hidden_fix(facts), check_facts)
        framework = _runtime_framework(seal.seal.runtime)
        if framework is not None and framework not in usable:
            why = (
                f"the driver sees {len(visible)} GPU(s) but {framework} cannot use them "
                f"({_framework_reason(facts, framework)}), so the {seal.seal.runtime} runtime "
                "would fall back to the CPU"
            )
            fix = (
                f"install a CUDA build of {framework} that this driver runs (the seal's lock "
                f"pins the version; see the gpu.driver check), then `modelseal doctor` again"
            )
            return _visible(Status.FAIL, f"{why}; {evidence}", fix, check_facts)
        return _visible(Status.OK, evidence, None, check_facts)
    if not visible and not usable:
        return _visible(Status.WARN, _no_gpu_text(seal, evidence), _NO_GPU_FIX, check_facts)
    return _visible(Status.OK, evidence, None, check_facts)


_NO_GPU_FIX = (
    "nothing to do for a CPU model; if a GPU was expected, give the container one "
    "(docker run --gpus all, a nvidia.com/gpu limit) and keep CUDA_VISIBLE_DEVICES from "
    "hiding it"
)


def _no_gpu_text(seal: SealFacts | None, evidence: str) -> str:
    if seal is None:
        return (
            f"no GPU visible here, and no seal given to say whether the model needs one; {evidence}"
        )
    if seal.environment.gpus:
        reason = f"the seal's {seal.seal.runtime} runtime runs on the CPU only"
    else:
        reason = "the seal was packed with no GPU visible"
    return f"no GPU visible here; {reason}, so it runs on the CPU as validated; {evidence}"


def _visible(status: Status, evidence: str, fix: str | None, facts: Facts) -> Check:
    return new_check("gpu", "visible", "GPU visible", status, evidence, fix, facts)


def _visibility_evidence(facts: GpuFacts, seal: SealFacts | None) -> list[str]:
    parts = [_smi_text(facts.smi)]
    if facts.cuda_visible_devices is not None:
        shown = len(facts.visible_gpus)
        parts.append(f"CUDA_VISIBLE_DEVICES={facts.cuda_visible_devices!r} ({shown} exposed)")
    if facts.nvidia_visible_devices is not None:
        parts.append(f"NVIDIA_VISIBLE_DEVICES={facts.nvidia_visible_devices!r}")
    parts.append(_torch_text(facts.torch))
    parts.append(_onnxruntime_text(facts.onnxruntime))
    if seal is not None:
        parts.append(f"seal packed with {seal.packed_gpus_text()}")
    return parts


def _smi_text(smi: SmiReport) -> str:
    if not smi.found:
        return "nvidia-smi: not on PATH (no NVIDIA driver tools in this environment)"
    if smi.error is not None:
        return f"nvidia-smi: {smi.error}"
    names = ", ".join(f"{gpu.index}: {gpu.name}" for gpu in smi.gpus) or "no GPU"
    return f"nvidia-smi: driver {smi.driver or 'unknown'}, {names}"


def _torch_text(view: TorchView | None) -> str:
    if view is None:
        return "torch: not installed"
    if view.cuda is None:
        return f"torch {view.version}: CPU build"
    if not view.available:
        detail = f": {view.warning}" if view.warning else ""
        return f"torch {view.version} (CUDA {view.cuda}): CUDA not available{detail}"
    return f"torch {view.version} (CUDA {view.cuda}): {view.device_count} GPU(s)"


def _onnxruntime_text(view: OnnxRuntimeView | None) -> str:
    if view is None:
        return "onnxruntime: not installed"
    return f"onnxruntime {view.version}: {', '.join(view.providers) or 'no providers'}"


def _runtime_framework(runtime: str) -> str | None:
    return {"torch": "torch", "onnx": "onnxruntime"}.get(runtime)


def _framework_reason(facts: GpuFacts, framework: str) -> str:
    if framework == "torch":
        return _torch_text(facts.torch)
    return _onnxruntime_text(facts.onnxruntime) + " (no CUDAExecutionProvider)"


def _hidden_fix(facts: GpuFacts) -> str:
    if facts.smi.gpus and not facts.visible_gpus:
        return (
            f"the driver sees {len(facts.smi.gpus)} GPU(s) but CUDA_VISIBLE_DEVICES="
            f"{facts.cuda_visible_devices!r} hides them: unset it or name the GPU (0, or its "
            "UUID); serve with --require-gpu 1 so a missing GPU stops start-up instead"
        )
    return (
        f"{GPU_CHECKLIST}; serve with --require-gpu 1 so a missing GPU stops start-up "
        "instead of falling back to the CPU"
    )


# --- driver and architectures ----------------------------------------------------------------


def check_driver(facts: GpuFacts) -> Check:
    driver = facts.smi.driver
    if driver is None:
        return new_check(
            "gpu", "driver", "driver vs CUDA", Status.SKIPPED, f"{_smi_text(facts.smi)}: no driver"
        )
    builds = [
        (name, cuda)
        for name, cuda in (
            ("torch", facts.torch.cuda if facts.torch else None),
            ("onnxruntime", facts.onnxruntime.cuda if facts.onnxruntime else None),
        )
        if cuda is not None
    ]
    if not builds:
        return new_check(
            "gpu",
            "driver",
            "driver vs CUDA",
            Status.SKIPPED,
            f"driver {driver}; torch and onnxruntime here are CPU builds (or absent): no CUDA "
            "build to match it against",
            facts={"driver": driver},
        )
    judged = [(name, cuda, judge_driver(cuda, driver)) for name, cuda in builds]
    evidence = "; ".join(f"{name} built with CUDA {cuda}: {j.why}" for name, cuda, j in judged)
    fits = {j.fit for _, _, j in judged}
    check_facts: Facts = {"driver": driver, **{f"{name}_cuda": cuda for name, cuda in builds}}
    if DriverFit.TOO_OLD in fits:
        needed = max(
            (j.needed for _, _, j in judged if j.fit is DriverFit.TOO_OLD and j.needed),
            default="a newer release",
        )
        fix = (
            f"upgrade the host's NVIDIA driver to {needed} or newer, or install framework "
            "builds for an older CUDA (e.g. torch's cu118 wheels) and re-verify the seal"
        )
        return new_check("gpu", "driver", "driver vs CUDA", Status.FAIL, evidence, fix, check_facts)
    if fits & {DriverFit.MINOR_COMPAT, DriverFit.UNKNOWN}:
        fix = "upgrade the host's NVIDIA driver to the one the CUDA release shipped with"
        return new_check("gpu", "driver", "driver vs CUDA", Status.WARN, evidence, fix, check_facts)
    return new_check("gpu", "driver", "driver vs CUDA", Status.OK, evidence, None, check_facts)


def check_architectures(facts: GpuFacts) -> Check:
    title = "kernels for this GPU"
    view = facts.torch
    if view is None or view.cuda is None:
        return new_check(
            "gpu", "arch", title, Status.SKIPPED, f"{_torch_text(view)}: no CUDA kernels to judge"
        )
    devices = [(gpu.name, gpu.compute_capability) for gpu in facts.visible_gpus]
    if not any(capability for _, capability in devices):
        devices = [(f"GPU {i}", cc) for i, cc in enumerate(view.capabilities)]
    devices_known = [(name, cc) for name, cc in devices if cc]
    if not devices_known:
        return new_check(
            "gpu", "arch", title, Status.SKIPPED, "no GPU with a known compute capability"
        )
    if not view.arch_list:
        return new_check(
            "gpu", "arch", title, Status.SKIPPED,
            f"torch {view.version} reports no compiled architectures (CUDA not initialised)",
        )  # fmt: skip
    archs = " ".join(view.arch_list)
    judged = [(name, cc, kernel_support(cc, list(view.arch_list))) for name, cc in devices_known]
    evidence = f"torch {view.version} compiled for {archs}; " + "; ".join(
        f"{name} (compute capability {cc}): {support.value}" for name, cc, support in judged
    )
    check_facts: Facts = {"arch_list": archs, "capabilities": ", ".join(cc for _, cc, _ in judged)}
    missing = [(name, cc) for name, cc, support in judged if support is KernelSupport.NONE]
    if missing:
        name, cc = missing[0]
        evidence = (
            f"{name} has compute capability {cc}, which none of torch's compiled kernels run "
            f"on: CUDA calls fail with 'no kernel image is available for execution on the "
            f"device'; {evidence}"
        )
        fix = (
            f"install a torch build compiled for sm_{cc.replace('.', '')} (usually a newer "
            "torch and CUDA wheel), or run on a GPU that this build supports"
        )
        return new_check("gpu", "arch", title, Status.FAIL, evidence, fix, check_facts)
    if any(support is KernelSupport.PTX_JIT for _, _, support in judged):
        fix = (
            "torch has PTX only for this GPU: the driver JIT-compiles kernels at first use "
            "(slow first requests, cached in ~/.nv/ComputeCache; keep that cache writable) - "
            "a torch build with native kernels for it avoids this"
        )
        return new_check("gpu", "arch", title, Status.WARN, evidence, fix, check_facts)
    return new_check("gpu", "arch", title, Status.OK, evidence, None, check_facts)


# --- memory and sharing ---------------------------------------------------------------------


def check_memory(facts: GpuFacts, seal: SealFacts | None) -> Check:
    title = "model vs GPU memory"
    gpus = facts.visible_gpus
    if seal is None:
        return new_check(
            "gpu", "memory", title, Status.SKIPPED, "no seal given: model size unknown"
        )
    if not gpus:
        return new_check("gpu", "memory", title, Status.SKIPPED, "no GPU visible")
    if not seal.runtime_can_use_gpu:
        return new_check(
            "gpu", "memory", title, Status.SKIPPED,
            f"the seal's {seal.seal.runtime} runtime runs on the CPU only",
        )  # fmt: skip
    gpu = gpus[0]
    if gpu.memory_free_mib is None:
        return new_check(
            "gpu",
            "memory",
            title,
            Status.SKIPPED,
            f"nvidia-smi reports no free memory for {gpu.name}",
        )
    return judge_gpu_memory(gpu, seal.model_bytes)


def judge_gpu_memory(gpu: SmiGpu, model_bytes: int) -> Check:
    """The model at fp32 (its on-disk size) and fp16, plus a CUDA context, against free memory."""
    free = (gpu.memory_free_mib or 0) * MIB
    fp32 = model_bytes + CUDA_CONTEXT_BYTES
    fp16 = model_bytes // 2 + CUDA_CONTEXT_BYTES
    total = f" of {size_text((gpu.memory_total_mib or 0) * MIB)}" if gpu.memory_total_mib else ""
    evidence = (
        f"GPU {gpu.index} ({gpu.name}): {size_text(free)} free{total}; the model is "
        f"{size_text(model_bytes)} on disk: needs ~{size_text(fp32)} at fp32 and "
        f"~{size_text(fp16)} at fp16, with ~{size_text(CUDA_CONTEXT_BYTES)} for the CUDA context"
    )
    check_facts: Facts = {
        "gpu_free_bytes": free,
        "model_bytes": model_bytes,
        "needed_fp32_bytes": fp32,
        "needed_fp16_bytes": fp16,
    }
    if free < fp16:
        fix = (
            "free the GPU (see gpu.processes) or run on a GPU with more memory: the model does "
            "not fit even at half precision"
        )
        return new_check(
            "gpu", "memory", "model vs GPU memory", Status.FAIL, evidence, fix, check_facts
        )
    if free < fp32:
        fix = (
            "the model fits at half precision only: serve with --half (torch runtime) after "
            "verifying the seal's tolerance holds at fp16, or free the GPU"
        )
        return new_check(
            "gpu", "memory", "model vs GPU memory", Status.WARN, evidence, fix, check_facts
        )
    return new_check("gpu", "memory", "model vs GPU memory", Status.OK, evidence, None, check_facts)


def check_processes(facts: GpuFacts) -> Check:
    title = "other GPU processes"
    gpus = facts.visible_gpus
    if not gpus:
        return new_check(
            "gpu", "processes", title, Status.SKIPPED, f"{_smi_text(facts.smi)}: no GPU to inspect"
        )
    uuids = {gpu.uuid: gpu.index for gpu in gpus}
    others = [
        process
        for process in facts.smi.processes
        if process.gpu_uuid in uuids and process.pid != os.getpid()
    ]
    if not others:
        indices = ", ".join(str(gpu.index) for gpu in gpus)
        return new_check(
            "gpu", "processes", title, Status.OK,
            f"no other process holds a CUDA context on GPU {indices}",
        )  # fmt: skip
    listed = "; ".join(
        f"pid {p.pid if p.pid is not None else '?'} {p.name or '(name hidden)'} uses "
        f"{p.used_mib if p.used_mib is not None else '?'} MiB on GPU {uuids[p.gpu_uuid]}"
        for p in others
    )
    used = sum(p.used_mib or 0 for p in others)
    fix = (
        "these share the GPU's memory and compute, so latency varies and memory can run out: "
        "give the model a GPU of its own (CUDA_VISIBLE_DEVICES, a nvidia.com/gpu limit) or "
        "stop them"
    )
    return new_check(
        "gpu",
        "processes",
        title,
        Status.WARN,
        f"{len(others)} other process(es) on the GPU: {listed}",
        fix,
        {"other_processes": len(others), "other_processes_mib": used},
    )
