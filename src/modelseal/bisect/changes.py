"""What differs between the sealed environment and this one, as changes bisect can revert.

Two kinds: a locked package at another version here (or missing here), and a numerics
environment variable (thread counts, BLAS kernel choice) set differently here. Everything
else that differs (Python, CPU, platform, BLAS as loaded) cannot be reverted by building an
environment; it is listed so the report can say what was left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from modelseal.environment.diff import diff_environments
from modelseal.environment.lock import parse_lock
from modelseal.environment.record import EnvironmentRecord
from modelseal.environment.risk import Risk
from modelseal.seal.artifact import Seal

REVERTIBLE_CATEGORIES = frozenset({"package", "env"})


class ChangeKind(str, Enum):
    PACKAGE = "package"
    SETTING = "setting"


class Change(BaseModel):
    """One difference bisect can revert: a locked package's version or a numerics setting."""

    model_config = ConfigDict(frozen=True)

    kind: ChangeKind
    name: str = Field(description="normalized distribution name, or environment variable name")
    sealed: str | None = Field(description="the value where sealed; null: not installed / unset")
    here: str | None = Field(description="the value here; null: not installed / unset")

    @property
    def label(self) -> str:
        """``scikit-learn 1.3.2 -> 1.9.1`` or ``OPENBLAS_NUM_THREADS 1 -> 2``."""
        return f"{self.name} {_shown(self.sealed)} -> {_shown(self.here)}"

    @property
    def order(self) -> tuple[str, str]:
        return self.kind.value, self.name


class OtherDifference(BaseModel):
    """A recorded difference bisect cannot revert (Python, CPU, platform, BLAS as loaded)."""

    subject: str
    sealed: str | None
    here: str | None
    risk: Risk


@dataclass(frozen=True)
class Changes:
    packages: tuple[Change, ...]
    settings: tuple[Change, ...]
    others: tuple[OtherDifference, ...]

    @property
    def all(self) -> tuple[Change, ...]:
        return self.packages + self.settings


def changes_between(seal: Seal, here: EnvironmentRecord) -> Changes:
    """The changes from the seal's lock and environment record to ``here``."""
    sealed = seal.environment()
    lock = parse_lock(seal.lock_lines())
    rows = diff_environments(sealed, here, lock)
    return Changes(
        packages=package_changes(lock, here.packages),
        settings=setting_changes(sealed.numerics_env, here.numerics_env),
        others=tuple(
            OtherDifference(subject=row.subject, sealed=row.packed, here=row.current, risk=row.risk)
            for row in rows
            if row.category not in REVERTIBLE_CATEGORIES and row.risk is not Risk.INFO
        ),
    )


def package_changes(lock: dict[str, str], installed: dict[str, str]) -> tuple[Change, ...]:
    """Each locked package whose version here differs from its pin (or is not installed)."""
    return tuple(
        Change(kind=ChangeKind.PACKAGE, name=name, sealed=version, here=installed.get(name))
        for name, version in sorted(lock.items())
        if installed.get(name) != version
    )


def setting_changes(sealed: dict[str, str], here: dict[str, str]) -> tuple[Change, ...]:
    """Each numerics environment variable set differently here (or set on one side only)."""
    return tuple(
        Change(kind=ChangeKind.SETTING, name=name, sealed=sealed.get(name), here=here.get(name))
        for name in sorted(sealed.keys() | here.keys())
        if sealed.get(name) != here.get(name)
    )


def _shown(value: str | None) -> str:
    return "(none)" if value is None else value
