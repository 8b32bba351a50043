"""Dependency drift checks: the seal's packing environment against this one, ranked by
numerical risk exactly as ``modelseal verify`` ranks it (``environment.diff``)."""

from __future__ import annotations

from modelseal.doctor.report import Check, Facts, Status, new_check
from modelseal.doctor.subject import SealFacts
from modelseal.environment.diff import DiffRow, diff_environments
from modelseal.environment.record import EnvironmentRecord
from modelseal.environment.risk import Risk

SHOWN_ROWS = 4
_STATUS_OF_RISK = {Risk.CRITICAL: Status.FAIL, Risk.WARNING: Status.WARN}


def deps_checks(
    seal: SealFacts | None, current: EnvironmentRecord, *, model_loaded: bool = True
) -> list[Check]:
    """``model_loaded``: the model's runtime libraries are loaded in this process, so its BLAS
    and OpenMP pools are the ones a server would have and can be compared with the seal's."""
    if seal is None:
        reason = "no seal given: nothing to compare this environment with"
        return [
            new_check("deps", "lock", "locked packages", Status.SKIPPED, reason),
            new_check("deps", "environment", "Python, platform, BLAS", Status.SKIPPED, reason),
        ]
    rows = diff_environments(seal.environment, current, seal.lock)
    packages = [row for row in rows if row.category == "package"]
    others = [row for row in rows if row.category != "package"]
    if not model_loaded:
        others = [row for row in others if row.category != "blas"]
    lock_fix = (
        f"install the sealed versions (pip install -r {seal.seal.root}/requirements.lock) or "
        "rebuild the image from the seal (`modelseal dockerfile`), then `modelseal verify "
        "SEAL` replays the golden inputs to show whether outputs moved"
    )
    environment_fix = (
        "`modelseal diff SEAL -` lists every difference and why it matters; serve from an "
        "image built for the seal (`modelseal dockerfile`: same Python, BLAS and thread "
        "settings), and `modelseal verify SEAL` shows whether outputs moved"
    )
    environment = _judge_rows("environment", "Python, platform, BLAS", others, environment_fix)
    if not model_loaded:
        note = "; thread pools not compared: the model's libraries are not loaded here"
        environment = environment.model_copy(update={"evidence": environment.evidence + note})
    return [_judge_rows("lock", "locked packages", packages, lock_fix), environment]


def _judge_rows(name: str, title: str, rows: list[DiffRow], fix: str) -> Check:
    counted = {risk: sum(row.risk is risk for row in rows) for risk in Risk}
    facts: Facts = {f"{risk.value}_rows": count for risk, count in counted.items()}
    ranked = [row for row in rows if row.risk is not Risk.INFO]
    if not ranked:
        info = counted[Risk.INFO]
        evidence = "same as where the seal was packed" + (
            f" ({info} difference(s) that cannot move outputs)" if info else ""
        )
        return new_check("deps", name, title, Status.OK, evidence, None, facts)
    shown = "; ".join(_row_text(row) for row in ranked[:SHOWN_ROWS])
    more = len(ranked) - SHOWN_ROWS
    evidence = shown + (f"; and {more} more" if more > 0 else "")
    status = _STATUS_OF_RISK[ranked[0].risk]
    return new_check("deps", name, title, status, evidence, fix, facts)


def _row_text(row: DiffRow) -> str:
    return (
        f"{row.subject} {row.packed or 'absent'} -> {row.current or 'absent'} "
        f"({row.risk.value}: {row.why})"
    )
