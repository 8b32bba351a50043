"""What ``modelseal doctor`` found: one row per check, the same for people and machines.

Every check says ok / warn / fail / skipped, the evidence it judged, and the fix. The JSON of
``DoctorReport`` is what ``modelseal doctor --json`` prints (schema in ``docs/schemas/``),
and what the doctor run inside a container sends back to the doctor outside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from modelseal.errors import ChecksFailedError

REPORT_SCHEMA_VERSION = 1

Family = Literal["gpu", "deps", "limits", "threads", "server", "container"]
FAMILIES: tuple[Family, ...] = get_args(Family)
HERE = "here"
"""``Check.where`` of the checks that ran in the doctor's own process."""

Fact = str | int | float | bool | None
Facts = dict[str, Fact]


class Status(str, Enum):
    """The verdict of one check; ``fail`` makes the doctor exit 1."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIPPED = "skipped"


class Check(BaseModel):
    """One check: what it judged (evidence), its verdict, and what to do about it (fix)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="stable dotted id, family first: 'gpu.visible', 'limits.shm'")
    family: Family
    title: str = Field(description="a few words naming what was checked")
    status: Status
    evidence: str = Field(description="the facts the verdict rests on, as a person reads them")
    fix: str | None = Field(description="what to do; None when there is nothing to do")
    where: str = Field(
        default=HERE,
        description="where it ran: 'here', the server's URL, or 'container NAME'",
    )
    facts: dict[str, Fact] = Field(
        default_factory=dict, description="the measured values behind the evidence, for machines"
    )


class SealRef(BaseModel):
    """The seal the checks were judged against."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    runtime: str
    digest: str
    source: str


class DoctorReport(BaseModel):
    """Every check the doctor ran, in the order it ran them."""

    schema_version: int = REPORT_SCHEMA_VERSION
    modelseal_version: str
    seal: SealRef | None = Field(description="the seal judged against; None when none was given")
    url: str | None = Field(description="the server checked (--url)")
    container: str | None = Field(description="the container checked (--container)")
    checks: list[Check]
    counts: dict[Status, int] = Field(description="how many checks ended in each status")

    @property
    def passes(self) -> bool:
        """True when no check failed (warnings and skips do not fail the doctor)."""
        return not any(check.status is Status.FAIL for check in self.checks)

    def check(self) -> None:
        """Raise ``ChecksFailedError`` carrying this report when a check failed."""
        if self.passes:
            return
        failed = ", ".join(check.id for check in self.checks if check.status is Status.FAIL)
        raise ChecksFailedError(f"doctor: failed checks: {failed}", report=self)


def count_statuses(checks: list[Check]) -> dict[Status, int]:
    return {status: sum(check.status is status for check in checks) for status in Status}


def new_check(
    family: Family,
    name: str,
    title: str,
    status: Status,
    evidence: str,
    fix: str | None = None,
    facts: Mapping[str, Fact] | None = None,
) -> Check:
    """A check of ``family`` with the id ``family.name``."""
    return Check(
        id=f"{family}.{name}",
        family=family,
        title=title,
        status=status,
        evidence=evidence,
        fix=fix,
        facts=dict(facts or {}),
    )


_SEVERITY = {Status.SKIPPED: 0, Status.OK: 0, Status.WARN: 1, Status.FAIL: 2}


def worst_status(statuses: Iterable[Status]) -> Status:
    """The most severe of ``statuses`` (fail > warn > ok); ok when there are none."""
    return max(statuses, key=_SEVERITY.__getitem__, default=Status.OK)
