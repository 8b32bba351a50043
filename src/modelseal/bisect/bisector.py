"""Bisect a seal that does not reproduce here: the smallest set of changes that breaks it.

Two steps, cheapest first. Settings (numerics environment variables) are searched in the
current environment, with variables reverted to their sealed values: no environment is
built for them. Package changes are then searched with the settings that matter held at
their current values, each trial in an environment holding some locked packages at their
sealed and the others at their current versions. Both steps use ``ddmin``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from modelseal.bisect.changes import Change, changes_between
from modelseal.bisect.environments import EnvironmentBuilder, EnvironmentPool, find_uv
from modelseal.bisect.findings import Finding, build_report, reason
from modelseal.bisect.registry import pip_registry
from modelseal.bisect.report import BisectReport
from modelseal.bisect.search import BudgetSpentError, Outcome, ddmin
from modelseal.bisect.session import Session, TrialListener
from modelseal.bisect.trial import TrialLauncher, support_requirements
from modelseal.environment.fingerprint import capture_environment
from modelseal.environment.lock import parse_lock
from modelseal.errors import UsageError
from modelseal.seal.artifact import open_seal

DEFAULT_MAX_ENVS = 16


def bisect_seal(
    source: Path,
    *,
    max_envs: int | None = None,
    keep_envs: Path | None = None,
    on_trial: TrialListener | None = None,
) -> BisectReport:
    """Find the smallest set of changes since sealing that breaks the seal's replay here.

    ``max_envs``: the most environments trials may run in (default ``DEFAULT_MAX_ENVS``).
    Raises ``UsageError`` when the seal verifies consistent here (nothing to bisect), when
    ``max_envs`` is below 1, or when environments must be built and uv is not installed.
    Environments go to ``keep_envs`` (and are reused from there) when given, else to a
    temporary folder that is removed before this returns.
    """
    max_envs = DEFAULT_MAX_ENVS if max_envs is None else max_envs
    if max_envs < 1:
        raise UsageError(f"--max-envs must be at least 1, got {max_envs}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="modelseal-bisect-") as scratch:
        work = Path(scratch)
        seal = open_seal(source, extract_to=work / "seal")
        pool = EnvironmentPool(
            folder=keep_envs.resolve() if keep_envs else work / "envs",
            lock=parse_lock(seal.lock_lines()),
            max_envs=max_envs,
            make_builder=_make_builder,
        )
        session = Session(
            seal=seal,
            changes=changes_between(seal, capture_environment()),
            launcher=TrialLauncher.prepare(work / "trial"),
            pool=pool,
            on_trial=on_trial,
        )
        report = build_report(session, search(session))
    # Removing the environments and their bytecode takes a while too.
    return report.model_copy(update={"total_seconds": round(time.perf_counter() - started, 3)})


def search(session: Session) -> Finding:
    """The smallest set of changes (settings first, then packages) that reproduces here."""
    session.run_here()
    packages = session.changes.packages
    kept_settings = _settings_to_keep(session)
    if not packages:
        return Finding(kept_settings, complete=True)
    try:
        baseline = session.trial(kept_settings)
    except BudgetSpentError:
        return Finding(packages + kept_settings, complete=False)
    if baseline.outcome is Outcome.REPRODUCES:
        return Finding(kept_settings, complete=True)
    if baseline.outcome is Outcome.UNRESOLVED:
        return Finding(
            packages + kept_settings,
            complete=False,
            blocker=f"with every package at its sealed version, trial {baseline.index} "
            f"{reason(baseline)}; package changes cannot be searched without that reference",
        )
    found = ddmin(packages, lambda subset: session.trial(subset + kept_settings).outcome)
    return Finding(found.culprits + kept_settings, complete=found.complete)


def _settings_to_keep(session: Session) -> tuple[Change, ...]:
    """The settings that must stay at their current values for the failure to reproduce."""
    packages, settings = session.changes.packages, session.changes.settings
    if not settings:
        return ()
    reverted = session.trial(packages)
    if reverted.outcome is Outcome.REPRODUCES:
        return ()
    if reverted.outcome is Outcome.UNRESOLVED:
        return settings
    # Every trial here keeps all packages at their current version: no environment is built.
    found = ddmin(settings, lambda subset: session.trial(packages + subset).outcome)
    return found.culprits


def _make_builder(folder: Path) -> EnvironmentBuilder:
    return EnvironmentBuilder(find_uv(), pip_registry(), folder, support_requirements())
