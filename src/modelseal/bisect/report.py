"""What ``modelseal bisect`` found. ``--json`` prints exactly this (schema in docs/schemas/)."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, Field

from modelseal.bisect.changes import Change, OtherDifference
from modelseal.bisect.environments import BuildStatus
from modelseal.bisect.search import Outcome
from modelseal.errors import NoCulpritError

REPORT_SCHEMA_VERSION = 1
HERE = "here"
"""A trial run in the current environment: no environment was built for it."""


class Role(str, Enum):
    CAUSE = "cause"
    INSEPARABLE = "inseparable"
    UNCONFIRMED = "unconfirmed"


class SealRef(BaseModel):
    name: str
    version: str
    runtime: str
    digest: str
    source: str


class TrialRecord(BaseModel):
    """One verification in one environment: what it held and what it concluded."""

    index: int = Field(description="1-based, in the order the trials ran")
    at_current: list[str] = Field(
        description="names of the changes kept at their current value; every other change "
        "was reverted to its sealed value"
    )
    environment: str = Field(
        description=f"'{HERE}' (the current environment, nothing built) or the key of the "
        "package set it was built for"
    )
    build: BuildStatus | None = Field(
        description="how the environment came to be; null for the current environment"
    )
    outcome: Outcome = Field(
        description="reproduces: the same verdict as here; passes: consistent; unresolved: "
        "cannot be installed, or failed another way"
    )
    verdict: str | None = Field(description="the trial's verify verdict; null if none came back")
    max_abs_diff: float | None = Field(
        description="the largest difference from the golden outputs (among failing outputs "
        "when any failed)"
    )
    worst_output: str | None
    detail: str | None = Field(
        description="uv's resolver message, the load or run failure, or why no report came"
    )
    build_seconds: float
    run_seconds: float


class TrialSummary(BaseModel):
    trial: int = Field(description="index of the trial in 'trials'")
    outcome: Outcome
    verdict: str | None
    max_abs_diff: float | None


class Culprit(BaseModel):
    """One member of the smallest set of changes that still reproduces the failure."""

    change: Change
    role: Role = Field(
        description="cause: leaving it out of the set restores a consistent replay; "
        "inseparable: without it the set cannot be installed or fails another way, so it "
        "cannot be tested apart; unconfirmed: the search stopped before it could tell"
    )
    why: str
    with_change: TrialSummary = Field(description="the culprit set as found")
    without_change: TrialSummary | None = Field(
        description="the culprit set without this change; null if never tried"
    )


class BisectReport(BaseModel):
    schema_version: int = REPORT_SCHEMA_VERSION
    seal: SealRef
    verdict_here: str = Field(description="what verify concludes here, before any revert")
    max_abs_diff_here: float | None
    isolated: bool = Field(
        description="true when a smallest set of changes was found and each member checked"
    )
    conclusion: str
    culprits: list[Culprit]
    changes: list[Change] = Field(description="every difference bisect could revert")
    other_differences: list[OtherDifference] = Field(
        description="recorded differences bisect cannot revert (warning and critical only)"
    )
    trials: list[TrialRecord]
    environments_built: int
    environments_reused: int = Field(description="taken from --keep-envs from an earlier run")
    environments_unresolvable: int = Field(
        description="package sets uv refused as impossible together (nothing was built)"
    )
    max_envs: int = Field(description="the most environments a trial could run in")
    registry: list[str] = Field(description="the uv options environments were built with")
    total_seconds: float

    def check(self) -> None:
        """Raise ``NoCulpritError`` carrying this report when no culprit was isolated."""
        if not self.isolated:
            raise NoCulpritError(f"bisect: {self.conclusion}", report=self)
