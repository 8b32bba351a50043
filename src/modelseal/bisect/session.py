"""The trials of one bisect: each combination of changes verified once, and remembered.

A trial keeps some changes at their current value and reverts the others to their sealed
value. When every package change is kept, the trial runs in the current environment (only
the settings differ, so nothing is built); otherwise in an environment from the pool. A
trial reproduces when its verdict equals the verdict here, passes when it is consistent,
and cannot tell (unresolved) when its packages cannot be installed together or it fails in
another way than here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from modelseal.bisect.changes import Change, ChangeKind, Changes
from modelseal.bisect.environments import BuildResult, EnvironmentPool
from modelseal.bisect.report import HERE, TrialRecord
from modelseal.bisect.search import Outcome
from modelseal.bisect.trial import TrialLauncher, TrialRun, run_trial
from modelseal.errors import UsageError
from modelseal.seal.artifact import Seal

CONSISTENT = "consistent"
TrialListener = Callable[[TrialRecord], None]
TrialKey = tuple[frozenset[str], frozenset[str]]


class Session:
    """Runs and remembers trials for one seal and one set of changes."""

    def __init__(
        self,
        seal: Seal,
        changes: Changes,
        launcher: TrialLauncher,
        pool: EnvironmentPool,
        on_trial: TrialListener | None = None,
    ) -> None:
        self.seal = seal
        self.changes = changes
        self.launcher = launcher
        self.pool = pool
        self.on_trial = on_trial
        self.trials: list[TrialRecord] = []
        self.target = ""
        self._memo: dict[TrialKey, TrialRecord] = {}

    def run_here(self) -> TrialRecord:
        """Verify here with every change at its current value: the verdict to reproduce.

        Raises ``UsageError`` when it is consistent (nothing to bisect) or cannot run."""
        if self.changes.packages:
            self.pool.builder()  # fails now, before any trial, if uv is missing
        run = run_trial(self.launcher, Path(sys.executable), self.seal.root, {})
        if run.verdict is None:
            raise UsageError(f"the seal's verification cannot run here: {run.detail}")
        if run.verdict == CONSISTENT:
            raise UsageError(
                f"{self.seal.source}: the seal verifies consistent here, so there is nothing "
                "to bisect; bisect looks for the change that breaks a replay (run it where "
                "modelseal verify reports drift, load-failed or run-failed)"
            )
        self.target = run.verdict
        record = self._record(self.changes.all, None, run)
        self._memo[trial_key(self.changes.all)] = record
        return record

    def trial(self, at_current: Sequence[Change]) -> TrialRecord:
        """The verdict with ``at_current`` at current values and the rest sealed.

        Raises ``BudgetSpentError`` when it needs a new environment and the budget is spent.
        """
        key = trial_key(at_current)
        if key in self._memo:
            return self._memo[key]
        packages, settings = split_kinds(at_current)
        values = {c.name: (c.here if c in settings else c.sealed) for c in self.changes.settings}
        if set(packages) == set(self.changes.packages):
            run = run_trial(self.launcher, Path(sys.executable), self.seal.root, values)
            record = self._record(at_current, None, run)
        else:
            built = self.pool.environment_for({c.name: c.here for c in packages})
            if built.python is None:
                run = TrialRun(None, None, None, built.detail, 0.0)
            else:
                run = run_trial(self.launcher, built.python, self.seal.root, values, built.bytecode)
            record = self._record(at_current, built, run)
        self._memo[key] = record
        return record

    def tried(self, at_current: Sequence[Change]) -> TrialRecord | None:
        return self._memo.get(trial_key(at_current))

    def _record(
        self, at_current: Sequence[Change], built: BuildResult | None, run: TrialRun
    ) -> TrialRecord:
        record = TrialRecord(
            index=len(self.trials) + 1,
            at_current=sorted(c.name for c in at_current),
            environment=built.key if built else HERE,
            build=built.status if built else None,
            outcome=self._outcome(run),
            verdict=run.verdict,
            max_abs_diff=run.max_abs_diff,
            worst_output=run.worst_output,
            detail=run.detail,
            build_seconds=built.seconds if built else 0.0,
            run_seconds=run.seconds,
        )
        self.trials.append(record)
        if self.on_trial is not None:
            self.on_trial(record)
        return record

    def _outcome(self, run: TrialRun) -> Outcome:
        if run.verdict == CONSISTENT:
            return Outcome.PASSES
        if run.verdict is not None and run.verdict == self.target:
            return Outcome.REPRODUCES
        return Outcome.UNRESOLVED


def trial_key(at_current: Sequence[Change]) -> TrialKey:
    packages, settings = split_kinds(at_current)
    return frozenset(c.name for c in packages), frozenset(c.name for c in settings)


def split_kinds(changes: Sequence[Change]) -> tuple[tuple[Change, ...], tuple[Change, ...]]:
    packages = tuple(c for c in changes if c.kind is ChangeKind.PACKAGE)
    settings = tuple(c for c in changes if c.kind is ChangeKind.SETTING)
    return packages, settings
