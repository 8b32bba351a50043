"""From the search's result and its trials to the report: each culprit's role, the verdict
with and without it, and one sentence that says what was found."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelseal.bisect.changes import Change
from modelseal.bisect.environments import BuildStatus
from modelseal.bisect.report import (
    BisectReport,
    Culprit,
    Role,
    SealRef,
    TrialRecord,
    TrialSummary,
)
from modelseal.bisect.search import BudgetSpentError, Outcome
from modelseal.bisect.session import Session

_UV_NOISE = re.compile(
    r"^(error: )?(× )?No solution found when resolving dependencies:?\s*(cause: |╰─▶ )?"
)


@dataclass(frozen=True)
class Finding:
    """What the search ended with: the smallest failing set it reached, and whether the
    search ran to the end."""

    culprits: tuple[Change, ...]
    complete: bool
    blocker: str | None = None
    """Why package changes could not be searched at all."""


def build_report(session: Session, result: Finding) -> BisectReport:
    """The report, its ``total_seconds`` still 0 (the caller knows when it began).

    Checking each culprit may run the trials without it that the search did not need."""
    culprits = [_culprit(session, result, change) for change in result.culprits]
    isolated = (
        result.complete
        and bool(culprits)
        and all(culprit.role is not Role.UNCONFIRMED for culprit in culprits)
    )
    seal = session.seal
    registry = session.pool.registry
    return BisectReport(
        seal=SealRef(
            name=seal.name,
            version=seal.version,
            runtime=seal.runtime,
            digest=seal.digest,
            source=seal.source,
        ),
        verdict_here=session.target,
        max_abs_diff_here=session.trials[0].max_abs_diff,
        isolated=isolated,
        conclusion=_conclusion(session, result, culprits, isolated),
        culprits=culprits,
        changes=list(session.changes.all),
        other_differences=list(session.changes.others),
        trials=session.trials,
        environments_built=session.pool.count(BuildStatus.BUILT),
        environments_reused=session.pool.count(BuildStatus.CACHED),
        environments_unresolvable=session.pool.count(BuildStatus.UNRESOLVABLE),
        max_envs=session.pool.max_envs,
        registry=registry.described() if registry else [],
        total_seconds=0.0,
    )


def reason(record: TrialRecord) -> str:
    """Why a trial could not tell, in one line: uv's first sentence, or the other failure."""
    detail = " ".join((record.detail or "").split())
    if record.verdict is not None:
        return f"ends {record.verdict} instead" + (f" ({detail})" if detail else "")
    if record.build is BuildStatus.UNRESOLVABLE:
        detail = _UV_NOISE.sub("", detail).split(" hint: ", 1)[0]
        first = detail.split(". ", 1)[0].rstrip(".")
        return f"cannot be installed: {first}"
    return f"could not run: {detail}"


def _culprit(session: Session, result: Finding, change: Change) -> Culprit:
    group = result.culprits
    rest = tuple(c for c in group if c != change)
    with_trial = session.tried(group) or session.trials[0]
    without_trial = session.tried(rest) or _passing_without(session, rest, change)
    if without_trial is None and result.complete:
        try:
            without_trial = session.trial(rest)
        except BudgetSpentError:
            without_trial = None
    role, why = _role(change, without_trial)
    return Culprit(
        change=change,
        role=role,
        why=why,
        with_change=_summary(with_trial),
        without_change=_summary(without_trial) if without_trial else None,
    )


def _passing_without(
    session: Session, rest: tuple[Change, ...], change: Change
) -> TrialRecord | None:
    """A trial that passed with ``change`` reverted and all of ``rest`` (and maybe more)
    at current values: as good a witness as the trial of ``rest`` alone, and already run."""
    needed = {c.name for c in rest}
    for record in session.trials:
        held = set(record.at_current)
        if record.outcome is Outcome.PASSES and needed <= held and change.name not in held:
            return record
    return None


def _role(change: Change, without: TrialRecord | None) -> tuple[Role, str]:
    if without is None:
        return Role.UNCONFIRMED, "not tried without it: the search stopped (--max-envs)"
    if without.outcome is Outcome.PASSES:
        sealed = change.sealed or "(none)"
        return Role.CAUSE, (
            f"with {change.name} back at {sealed} and the rest of the set at current values, "
            f"the replay is consistent (trial {without.index})"
        )
    if without.outcome is Outcome.UNRESOLVED:
        return Role.INSEPARABLE, (
            f"cannot be tested apart: without it, trial {without.index} {reason(without)}"
        )
    return Role.UNCONFIRMED, (
        f"the failure reproduces without it too (trial {without.index}), so it may not be "
        "needed; the search stopped before it could leave it out"
    )


def _conclusion(session: Session, result: Finding, culprits: list[Culprit], isolated: bool) -> str:
    verdict = session.target
    if result.blocker is not None:
        return result.blocker
    if not culprits:
        others = ", ".join(d.subject for d in session.changes.others) or "none recorded"
        if not session.changes.all:
            return (
                "no locked package or numerics setting differs from the seal, so bisect has "
                f"nothing to revert (other differences: {others})"
            )
        return (
            "with every package and setting back at its sealed value the replay is still "
            f"{verdict} here: the cause lies outside what bisect can revert (other "
            f"differences: {others})"
        )
    labels = ", ".join(c.change.label for c in culprits)
    if not result.complete:
        return (
            f"the search stopped at --max-envs {session.pool.max_envs}: the replay is "
            f"{verdict} with {labels}, a set that may not be the smallest"
        )
    if not isolated:
        return (
            f"the replay is {verdict} with {labels}, but not every one of them could be "
            "confirmed as needed (see each one's why)"
        )
    causes = [c.change.label for c in culprits if c.role is Role.CAUSE]
    riders = [c for c in culprits if c.role is Role.INSEPARABLE]
    if not causes:
        return (
            f"the group {labels} turns the replay from consistent to {verdict}; its members "
            f"cannot be tested apart ({riders[0].why})"
        )
    if len(causes) == 1:
        subject = f"{causes[0]} turns" if riders else f"{causes[0]} alone turns"
    else:
        subject = f"{' and '.join(causes)} together turn"
    found = f"{subject} the replay from consistent to {verdict}"
    if not riders:
        return found
    rider_names = " and ".join(c.change.name for c in riders)
    return (
        f"{found}; {rider_names} cannot be separated from it, so the culprit is named as one "
        f"group ({riders[0].change.name}: {riders[0].why})"
    )


def _summary(record: TrialRecord) -> TrialSummary:
    return TrialSummary(
        trial=record.index,
        outcome=record.outcome,
        verdict=record.verdict,
        max_abs_diff=record.max_abs_diff,
    )
