"""Human-readable views (rich renderables) of what the CLI reports; it does the printing."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from modelseal.environment.record import EnvironmentRecord
from modelseal.seal.artifact import Seal


def environment_view(record: EnvironmentRecord, packages: bool) -> RenderableType:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    python = record.python
    table.add_row("python", f"{python.implementation} {python.version} ({python.compiler})")
    plat = record.platform
    table.add_row(
        "platform", f"{plat.system} {plat.machine} {plat.libc} {plat.libc_version}".strip()
    )
    table.add_row("cpu", f"{record.cpu.model} x{record.cpu.count}")
    table.add_row("cpu flags", " ".join(record.cpu.flags) or "-")
    table.add_row("numpy", record.numpy_version)
    for pool in record.threadpools:
        arch = f", {pool.architecture}" if pool.architecture else ""
        table.add_row(
            pool.user_api,
            f"{pool.internal_api} {pool.version or '?'}{arch}, {pool.num_threads} threads "
            f"({pool.library})",
        )
    for name, value in record.numerics_env.items():
        table.add_row("env", f"{name}={value}")
    if record.torch:
        torch = record.torch
        table.add_row("torch", f"{torch.version} cuda={torch.cuda} cudnn={torch.cudnn}")
    if record.onnxruntime:
        ort = record.onnxruntime
        providers = ", ".join(ort.providers) if ort.providers else "not loaded"
        table.add_row("onnxruntime", f"{ort.distribution} {ort.version} ({providers})")
    for gpu in record.gpus:
        table.add_row("gpu", f"{gpu.name} {gpu.memory_mib} MiB cc {gpu.compute_capability}")
    if not record.gpus:
        table.add_row("gpu", "none visible")
    table.add_row("packages", f"{len(record.packages)} installed")
    if not packages:
        return table
    listing = Table("package", "version", box=None)
    for name, version in record.packages.items():
        listing.add_row(name, version)
    return Group(table, Text(""), listing)


def seal_view(seal: Seal) -> RenderableType:
    manifest = seal.manifest
    head = Table(show_header=False, box=None, pad_edge=False)
    head.add_column(style="bold")
    head.add_column()
    head.add_row("seal", f"{manifest.name} {manifest.version} ({seal.source})")
    head.add_row("digest", manifest.digest)
    head.add_row("runtime", manifest.runtime)
    head.add_row("created", f"{manifest.created} by modelseal {manifest.modelseal_version}")
    environment = seal.environment()
    head.add_row(
        "packed on",
        f"Python {environment.python.version}, {environment.platform.system} "
        f"{environment.platform.machine}, numpy {environment.numpy_version}, "
        + ", ".join(f"{p.internal_api} {p.num_threads}t" for p in environment.blas),
    )
    head.add_row("lock", ", ".join(seal.lock_lines()))

    signature = Table("tensor", "name", "dtype", "shape", "kind", "tolerance", title="signature")
    for spec in manifest.signature.inputs:
        signature.add_row("input", spec.name, spec.dtype, str(list(spec.shape)), "", "")
    for spec in manifest.signature.outputs:
        signature.add_row(
            "output",
            spec.name,
            spec.dtype,
            str(list(spec.shape)),
            spec.kind.value if spec.kind else "",
            manifest.tolerance.get(spec.name, ""),
        )
    files = Table("file", "bytes", "sha256", "check", title="files")
    for check in seal.file_checks:
        entry = manifest.files[check.path]
        files.add_row(check.path, str(entry.size), entry.sha256, "ok" if check.ok else "FAILED")
    return Group(head, Text(""), signature, Text(""), files)
