"""The doctor's report as a person reads it: one table, status first (the CLI prints it)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from modelseal.doctor.report import DoctorReport, Status

STATUS_STYLES = {
    Status.OK: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.SKIPPED: "dim",
}


def doctor_view(report: DoctorReport) -> RenderableType:
    table = Table(show_lines=False, expand=True)
    table.add_column("status", no_wrap=True)
    table.add_column("check", no_wrap=True, style="bold")
    show_where = len({check.where for check in report.checks}) > 1
    if show_where:
        table.add_column("where", no_wrap=True, max_width=28)
    table.add_column("evidence", ratio=3)
    table.add_column("fix", ratio=2)
    for check in report.checks:
        status = Text(check.status.value, style=STATUS_STYLES[check.status])
        where = [check.where] if show_where else []
        table.add_row(
            status,
            check.id,
            *where,
            check.evidence,
            check.fix or "",
            style=_row_style(check.status),
        )
    return Group(_headline(report), table)


def _headline(report: DoctorReport) -> Text:
    subject = (
        f"seal {report.seal.name} {report.seal.version} ({report.seal.digest[:12]})"
        if report.seal
        else "no seal"
    )
    targets = [f"server {report.url}"] if report.url else []
    if report.container:
        targets.append(f"container {report.container}")
    line = Text(f"modelseal doctor: {subject}" + "".join(f", {t}" for t in targets) + ": ")
    for status in Status:
        count = report.counts.get(status, 0)
        line.append(f"{count} {status.value}", style=STATUS_STYLES[status] if count else "dim")
        line.append("  ")
    verdict = "nothing failed" if report.passes else "something failed"
    line.append(verdict, style="green" if report.passes else "bold red")
    return line


def _row_style(status: Status) -> str:
    return "dim" if status is Status.SKIPPED else ""
