"""What the CLI reports: human-readable views (rich renderables) and the JSON error document.

The CLI does the printing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from modelseal.environment.diff import DiffRow
from modelseal.environment.record import EnvironmentRecord, ThreadPool
from modelseal.environment.risk import Risk
from modelseal.errors import SealError
from modelseal.seal.artifact import Seal
from modelseal.verify import (
    HERE,
    REPORT_SCHEMA_VERSION,
    DiffReport,
    OutputReplay,
    Verdict,
    VerifyReport,
    seal_pickle_on_load,
)

if TYPE_CHECKING:  # the HTTP client loads only for `verify --url`, which uses it
    from modelseal.remote import RemoteVerifyReport


class ErrorDetail(BaseModel):
    type: str = Field(description="the error's class (IntegrityError, SealFormatError, ...)")
    message: str = Field(description="what was wrong and what to do about it")


class ErrorReport(BaseModel):
    """What a command given ``--json`` prints on stdout when it fails before it has a report
    (a corrupt seal, a bad option value, an unreachable server). Schema in docs/."""

    schema_version: int = REPORT_SCHEMA_VERSION
    error: ErrorDetail
    exit_code: int = Field(description="the exit code the command ends with")

    @classmethod
    def of(cls, error: SealError, exit_code: int) -> ErrorReport:
        return cls(
            error=ErrorDetail(type=type(error).__name__, message=str(error)), exit_code=exit_code
        )


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
            pool.user_api, f"{pool.label}{arch}, {pool.num_threads} threads ({pool.library})"
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
        + blas_summary(environment.blas),
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
    return Group(head, Text(""), signature, Text(""), files, Text(""), trust_view(seal))


def trust_view(seal: Seal) -> RenderableType:
    """Who signed the seal (each signature valid or not, trusted or not), and whether
    loading its model unpickles."""
    trust = seal.trust
    pickle = seal_pickle_on_load(seal)
    lines = Text(f"loading unpickles: {'yes, ' + pickle if pickle else 'no'}")
    if trust is None or not trust.signatures:
        return Group(Text("signatures: none"), lines)
    table = Table("file", "algorithm", "key fingerprint", "signature", "signer", title="signatures")
    for found in trust.signatures:
        if not trust.trusted_keys:
            signer = "no keys trusted here"
        else:
            signer = "trusted" if found.trusted else "untrusted"
        table.add_row(
            found.file,
            found.algorithm or "-",
            found.fingerprint or "-",
            "valid" if found.valid else f"INVALID: {found.problem}",
            signer,
        )
    return Group(table, lines)


def blas_summary(pools: list[ThreadPool]) -> str:
    """``openblas 0.3.30 (numpy) 2 threads, ...``, each distinct pool once."""
    described = dict.fromkeys(f"{pool.label} {pool.num_threads} threads" for pool in pools)
    return ", ".join(described) or "no BLAS recorded"


RISK_STYLE = {Risk.CRITICAL: "bold red", Risk.WARNING: "yellow", Risk.INFO: "dim"}
VERDICT_STYLE = {
    Verdict.CONSISTENT: "bold green",
    Verdict.DRIFT: "bold red",
    Verdict.LOAD_FAILED: "bold red",
    Verdict.RUN_FAILED: "bold red",
    Verdict.WRONG_SEAL: "bold magenta",
}


def verify_view(report: VerifyReport, *, show_info: bool) -> RenderableType:
    parts: list[RenderableType] = [_verdict_line(report)]
    if report.failure is not None:
        parts.append(Text(f"{report.failure.error_type}: {report.failure.message}", style="red"))
    for warning in report.load_warnings:
        parts.append(Text(f"warning while loading: {warning}", style="yellow"))
    if report.golden:
        parts += [Text(""), golden_table(report.golden, report.golden_rows)]
    for note in report.notes:
        parts.append(Text(f"note: {note}", style="yellow"))
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


def diff_view(report: DiffReport, *, show_info: bool) -> RenderableType:
    return environment_rows_view(report.rows, show_info=show_info, labels=diff_labels(report))


def diff_labels(report: DiffReport) -> tuple[str, str]:
    """Column titles for A and B: ``sealed``/``here`` for a seal against here, else names."""
    if report.current == HERE and report.lock_from == report.packed:
        return "sealed", "here"
    first, second = _side_name(report.packed), _side_name(report.current)
    if first == second:
        return f"A {first}", f"B {second}"
    return first, second


def _side_name(source: str) -> str:
    return "here" if source == HERE else (Path(source).name or source)


def environment_rows_view(
    rows: list[DiffRow], *, show_info: bool, labels: tuple[str, str] = ("sealed", "here")
) -> RenderableType:
    shown = [row for row in rows if show_info or row.risk is not Risk.INFO]
    hidden = len(rows) - len(shown)
    if not rows:
        return Text("environment: identical in everything that was recorded", style="green")
    table = Table("risk", "what", *labels, "why", title="environment differences")
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
    line.append(f"  {seal.name} {seal.version} (seal {seal.digest[:12]}) ")
    if report.verdict is Verdict.WRONG_SEAL:
        line.append(f"is not what {report.url} serves")
    else:
        line.append(f"as served at {report.url}")
    parts: list[RenderableType] = [line]
    if report.failure is not None:
        parts.append(Text(report.failure.message, style="red"))
    if report.golden:
        parts += [Text(""), golden_table(report.golden, report.golden_rows)]
    return Group(*parts)
