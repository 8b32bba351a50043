"""The bisect report for people (rich renderables); the CLI does the printing."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from modelseal.bisect.findings import reason
from modelseal.bisect.report import HERE, BisectReport, Role, TrialRecord, TrialSummary
from modelseal.bisect.search import Outcome

OUTCOME_STYLE = {
    Outcome.REPRODUCES: "bold red",
    Outcome.PASSES: "green",
    Outcome.UNRESOLVED: "yellow",
}
ROLE_STYLE = {Role.CAUSE: "bold red", Role.INSEPARABLE: "yellow", Role.UNCONFIRMED: "dim"}


def bisect_view(report: BisectReport) -> RenderableType:
    seal = report.seal
    head = Text()
    head.append("FOUND" if report.isolated else "NOT ISOLATED", style="bold")
    head.append(
        f"  {seal.name} {seal.version} (seal {seal.digest[:12]}) is {report.verdict_here} here"
        f"{_diff_text(report.max_abs_diff_here)}"
    )
    parts: list[RenderableType] = [head, Text(report.conclusion)]
    if report.culprits:
        parts += [Text(""), _culprit_table(report)]
    parts += [Text(""), _trial_table(report.trials), *_unresolved_notes(report.trials)]
    if report.other_differences:
        others = ", ".join(
            f"{d.subject} {d.sealed or '-'} -> {d.here or '-'}" for d in report.other_differences
        )
        parts.append(Text(f"other differences, not reverted directly: {others}", style="dim"))
    parts.append(Text(progress_summary(report), style="dim"))
    return Group(*parts)


def trial_line(record: TrialRecord) -> Text:
    """One line per trial as it finishes, for progress on stderr."""
    line = Text(f"trial {record.index}: ")
    line.append(record.outcome.value, style=OUTCOME_STYLE[record.outcome])
    where = "here" if record.environment == HERE else f"env {record.environment[:8]}"
    held = ", ".join(record.at_current) or "everything sealed"
    result = record.verdict or (record.build.value if record.build else "no verdict")
    line.append(f" ({result}{_diff_text(record.max_abs_diff)}) ")
    line.append(f"{where}, current: {held}", style="dim")
    return line


def progress_summary(report: BisectReport) -> str:
    return (
        f"{len(report.trials)} trials, {report.environments_built} environments built, "
        f"{report.environments_reused} reused (--max-envs {report.max_envs}), "
        f"{report.total_seconds:.1f} s"
    )


def _culprit_table(report: BisectReport) -> Table:
    table = Table("change", "sealed", "here", "role", "with", "without", "why", title="culprits")
    for culprit in report.culprits:
        change = culprit.change
        table.add_row(
            change.name,
            change.sealed or "-",
            change.here or "-",
            Text(culprit.role.value, style=ROLE_STYLE[culprit.role]),
            _summary_text(culprit.with_change),
            _summary_text(culprit.without_change),
            culprit.why,
        )
    return table


def _trial_table(trials: list[TrialRecord]) -> Table:
    table = Table(
        "#", "at current value (the rest sealed)", "environment", "verdict", "max abs",
        "outcome", "build s", "run s", title="trials",
    )  # fmt: skip
    for record in trials:
        environment = record.environment if record.environment == HERE else record.environment[:8]
        if record.build is not None:
            environment += f" ({record.build.value})"
        table.add_row(
            str(record.index),
            ", ".join(record.at_current) or "(everything sealed)",
            environment,
            record.verdict or "-",
            _number(record.max_abs_diff),
            Text(record.outcome.value, style=OUTCOME_STYLE[record.outcome]),
            f"{record.build_seconds:.1f}",
            f"{record.run_seconds:.1f}",
        )
    return table


def _unresolved_notes(trials: list[TrialRecord]) -> list[RenderableType]:
    return [
        Text(f"trial {record.index} {reason(record)}", style="yellow")
        for record in trials
        if record.outcome is Outcome.UNRESOLVED
    ]


def _summary_text(summary: TrialSummary | None) -> str:
    if summary is None:
        return "not tried"
    return f"#{summary.trial} {summary.verdict or summary.outcome.value}" + _diff_text(
        summary.max_abs_diff
    )


def _diff_text(value: float | None) -> str:
    return "" if value is None else f", max abs diff {value:.3g}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"
