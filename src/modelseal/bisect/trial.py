"""One trial: ``modelseal verify --json`` run by another Python, its JSON report read back.

The trial interpreter runs in isolated mode (``-I``: no ``PYTHONPATH``, no user
site-packages, not the current folder) with one folder put first on its path: a private
folder holding a link to this modelseal's package and a copy of its distribution metadata
(so the runtime entry points resolve). Everything else the verification imports (numpy,
scipy, scikit-learn, ...) can only come from the trial environment's own site-packages.
The same verification code runs in every trial, whatever the environment holds.

No trial writes bytecode beside the sources it imports: isolated mode ignores
``PYTHONDONTWRITEBYTECODE``, and a model's own Python file (the numpy runtime imports one
from the seal) would otherwise leave a ``__pycache__`` in the seal, which the next
integrity check rejects as a file added after sealing. In a built environment (which uv
leaves uncompiled) bytecode goes to a folder of that environment (``-X pycache_prefix``),
so it is compiled once per environment; in the current one nothing is written (``-B``).

Only report fields that every version of ``verify --json`` has are read: ``verdict``, per
golden replay ``comparison.name``, ``comparison.max_abs_diff`` and ``comparison.passed``, and
``failure`` when there is one.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

import modelseal
from modelseal.errors import UsageError

TRIAL_TIMEOUT_S = 900
BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from modelseal.cli import main; main(sys.argv[1:])"
)
METADATA_FILES = ("METADATA", "entry_points.txt")


@dataclass(frozen=True)
class TrialLauncher:
    """How a trial interpreter starts: isolated, with only this modelseal added."""

    import_path: Path

    @classmethod
    def prepare(cls, folder: Path) -> TrialLauncher:
        """Make, under ``folder``, the path that makes exactly this modelseal importable."""
        distribution = _distribution()
        import_path = folder / "path"
        import_path.mkdir(parents=True)
        package = Path(modelseal.__file__).resolve().parent
        (import_path / "modelseal").symlink_to(package, target_is_directory=True)
        info = import_path / f"modelseal-{distribution.version}.dist-info"
        info.mkdir()
        for name in METADATA_FILES:
            text = distribution.read_text(name)
            if text is not None:
                (info / name).write_text(text)
        return cls(import_path=import_path)

    def command(self, python: Path, *arguments: str, bytecode: Path | None = None) -> list[str]:
        """``modelseal ARGUMENTS`` run by ``python``; compiled modules go to ``bytecode``,
        or nowhere when it is None."""
        keep = ["-X", f"pycache_prefix={bytecode}"] if bytecode else ["-B"]
        return [
            str(python), "-I", *keep, "-c", BOOTSTRAP, str(self.import_path), *arguments,
        ]  # fmt: skip


@dataclass(frozen=True)
class TrialRun:
    """What one verification in one environment concluded."""

    verdict: str | None
    max_abs_diff: float | None
    worst_output: str | None
    detail: str | None
    seconds: float


def run_trial(
    launcher: TrialLauncher,
    python: Path,
    seal: Path,
    settings: Mapping[str, str | None],
    bytecode: Path | None = None,
    timeout: float = TRIAL_TIMEOUT_S,
) -> TrialRun:
    """Verify ``seal`` with ``python``; ``settings`` set (or, when None, unset) variables."""
    environment = dict(os.environ)
    for name, value in settings.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    command = launcher.command(python, "verify", "--json", str(seal), bytecode=bytecode)
    started = time.perf_counter()
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=environment, check=False
        )
    except subprocess.TimeoutExpired:
        return TrialRun(None, None, None, f"the verification took longer than {timeout:.0f} s", 0)
    seconds = round(time.perf_counter() - started, 3)
    try:
        report: Any = json.loads(result.stdout)
        verdict = str(report["verdict"])
    except (ValueError, KeyError, TypeError):
        detail = _tail(result.stderr) or f"no report (exit {result.returncode})"
        return TrialRun(None, None, None, detail, seconds)
    worst_output, max_abs_diff = _largest_difference(report.get("golden") or [])
    return TrialRun(verdict, max_abs_diff, worst_output, _failure_text(report), seconds)


def support_requirements() -> list[str]:
    """What modelseal's core needs at run time: its dependencies without extras."""
    requirements = []
    for text in _distribution().requires or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            requirements.append(str(requirement))
    return requirements


def _distribution() -> metadata.Distribution:
    try:
        return metadata.distribution("modelseal")
    except metadata.PackageNotFoundError:
        raise UsageError(
            "modelseal runs without its distribution metadata (not installed?), so trial "
            "environments could not find its runtimes; install it (pip install modelseal, or "
            "pip install -e . from a clone) and run bisect again"
        ) from None


def _largest_difference(replays: list[Any]) -> tuple[str | None, float | None]:
    """The output with the largest difference, among those that failed when any did."""
    comparisons = [replay.get("comparison") or {} for replay in replays]
    failed = [c for c in comparisons if c.get("passed") is False]
    worst: tuple[str | None, float | None] = (None, None)
    for comparison in failed or comparisons:
        value = comparison.get("max_abs_diff")
        if value is not None and (worst[1] is None or float(value) > worst[1]):
            worst = (str(comparison.get("name")), float(value))
    return worst


def _failure_text(report: Any) -> str | None:
    failure = report.get("failure")
    if not isinstance(failure, dict):
        return None
    return f"{failure.get('error_type', 'error')}: {failure.get('message', '')}"


def _tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
