"""Human-readable views (rich renderables) of what the CLI reports; it does the printing."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from modelseal.environment.diff import DiffRow
from modelseal.environment.record import EnvironmentRecord
from modelseal.environment.risk import Risk
from modelseal.remote import RemoteVerifyReport
from modelseal.seal.artifact import Seal
from modelseal.verify import OutputReplay, Verdict, VerifyReport


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


RISK_STYLE = {Risk.CRITICAL: "bold red", Risk.WARNING: "yellow", Risk.INFO: "dim"}
VERDICT_STYLE = {
    Verdict.CONSISTENT: "bold green",
    Verdict.DRIFT: "bold red",
    Verdict.LOAD_FAILED: "bold red",
    Verdict.RUN_FAILED: "bold red",
}


def verify_view(report: VerifyReport, *, show_info: bool) -> RenderableType:
    parts: list[RenderableType] = [_verdict_line(report)]
    if report.failure is not None:
        parts.append(Text(f"{report.failure.error_type}: {report.failure.message}", style="red"))
    for warning in report.load_warnings:
        parts.append(Text(f"warning while loading: {warning}", style="yellow"))
    if report.golden:
        parts += [Text(""), golden_table(report.golden, report.golden_rows)]
    parts += [Text(""), environment_rows_view(report.environment, show_info=show_info)]
    bad_files = [f for f in report.files if not f.ok]
    files_line = f"files: {len(report.files)} checked, {len(bad_files)} failed"
    timings = ", ".join(
        f"{step} {seconds * 1000:.0f} ms" for step, seconds in report.timings.items()
    )
    parts += [Text(""), Text(files_line), Text(f"timings: {timings}", style="dim")]
    return Group(*parts)


def _verdict_line(report: VerifyReport) -> Text:
    seal = report.seal
    line = Text()
    line.append(report.verdict.value.upper(), style=VERDICT_STYLE[report.verdict])
    line.append(f"  {seal.name} {seal.version} ({seal.runtime}, seal {seal.digest[:12]}) ")
    if report.verdict is Verdict.CONSISTENT:
        line.append(f"reproduces its {report.golden_rows} golden rows on {report.device}")
    elif report.verdict is Verdict.DRIFT:
        failed = sorted({r.comparison.name for r in report.golden if not r.comparison.passed})
        line.append(f"drifted beyond tolerance on {', '.join(failed)}")
    elif report.verdict is Verdict.LOAD_FAILED:
        line.append("cannot be loaded in this environment")
    else:
        line.append("loads but fails to run on its golden inputs")
    if report.environment_risk is not None:
        line.append(f"; environment drift: {report.environment_risk.value}")
    return line


def golden_table(replays: list[OutputReplay], rows: int) -> Table:
    table = Table(
        "output", "batch", "policy", "max abs", "max ulp", "rows out", "top-k min/mean",
        "argmax", "result", title=f"golden replay ({rows} rows)",
    )  # fmt: skip
    for replay in replays:
        c = replay.comparison
        topk = (
            f"{c.topk_overlap_min:.3f}/{c.topk_overlap_mean:.3f} @{c.topk_k}"
            if c.topk_overlap_min is not None and c.topk_overlap_mean is not None
            else ""
        )
        result = Text("bitwise" if c.bitwise_equal else "ok", style="green")
        if not c.passed:
            failing = "; ".join(check.detail for check in c.checks if not check.passed)
            result = Text(f"FAIL: {failing}", style="red")
        table.add_row(
            c.name,
            str(replay.batch_size),
            c.policy,
            _number(c.max_abs_diff),
            "" if c.max_ulp_diff is None else str(c.max_ulp_diff),
            f"{c.rows_out_of_tolerance}/{c.rows}",
            topk,
            "" if c.argmax_agreement is None else f"{c.argmax_agreement:.3f}",
            result,
        )
    return table


def environment_rows_view(rows: list[DiffRow], *, show_info: bool) -> RenderableType:
    shown = [row for row in rows if show_info or row.risk is not Risk.INFO]
    hidden = len(rows) - len(shown)
    if not rows:
        return Text("environment: identical in everything that was recorded", style="green")
    table = Table("risk", "what", "sealed", "here", "why", title="environment differences")
    for row in shown:
        table.add_row(
            Text(row.risk.value, style=RISK_STYLE[row.risk]),
            row.subject,
            row.packed or "-",
            row.current or "-",
            row.why,
        )
    if not hidden:
        return table
    return Group(table, Text(f"({hidden} info rows hidden: packages outside the lock; --all)"))


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def remote_view(report: RemoteVerifyReport) -> RenderableType:
    seal = report.seal
    line = Text()
    line.append(report.verdict.value.upper(), style=VERDICT_STYLE[report.verdict])
    line.append(f"  {seal.name} {seal.version} (seal {seal.digest[:12]}) served at {report.url}")
    parts: list[RenderableType] = [line]
    if report.server_seal_digest and report.server_seal_digest != seal.digest:
        parts.append(
            Text(
                f"the server serves seal {report.server_seal_digest[:12]}, not this one",
                style="yellow",
            )
        )
    if report.failure is not None:
        parts.append(Text(report.failure.message, style="red"))
    if report.golden:
        parts += [Text(""), golden_table(report.golden, report.golden_rows)]
    return Group(*parts)
