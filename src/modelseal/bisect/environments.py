"""Throw-away environments for bisect trials, built with uv and cached by their package set.

Each environment is a fresh venv of this Python holding the seal's locked packages, each at
its sealed or its current version, plus what modelseal itself needs to run the
verification. It is built in a staging folder and renamed into place only once complete, so
a folder named by a key always holds exactly that package set. Nothing here touches the
current environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from modelseal.bisect.registry import PackageRegistry
from modelseal.bisect.search import BudgetSpentError
from modelseal.errors import UsageError

READY_FILE = "modelseal-bisect-env.json"
BYTECODE_FOLDER = "bytecode"
BUILD_TIMEOUT_S = 900
UV_MISSING = (
    "bisect builds its trial environments with uv, which is not installed here; install "
    "modelseal's bisect extra or uv itself (pip install uv), or put a uv executable on PATH"
)
# uv's wording when the pins cannot all hold at once (as opposed to a network or disk error).
UNRESOLVABLE_MARKERS = ("No solution found", "unsatisfiable")


class BuildStatus(str, Enum):
    BUILT = "built"
    CACHED = "cached"
    UNRESOLVABLE = "unresolvable"
    FAILED = "build-failed"


@dataclass(frozen=True)
class BuildResult:
    status: BuildStatus
    key: str
    root: Path | None
    seconds: float
    detail: str | None = None

    @property
    def usable(self) -> bool:
        return self.root is not None

    @property
    def python(self) -> Path | None:
        return python_of(self.root) if self.root else None

    @property
    def bytecode(self) -> Path | None:
        """Where trials keep the bytecode they compile: inside the environment, so it is
        reused with the environment and removed with it."""
        return self.root / BYTECODE_FOLDER if self.root else None


def find_uv() -> Path:
    """The uv executable: the one the ``uv`` package ships, else one on PATH."""
    try:
        from uv import find_uv_bin

        return Path(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found is None:
        raise UsageError(UV_MISSING)
    return Path(found)


class EnvironmentBuilder:
    """Builds (or reuses) one environment per package set under ``folder``."""

    def __init__(
        self, uv: Path, registry: PackageRegistry, folder: Path, support: list[str]
    ) -> None:
        """``support``: requirements the trial itself needs (modelseal's own dependencies);
        a locked pin of the same name takes their place."""
        self.uv = uv
        self.registry = registry
        self.folder = folder
        self.support = support

    def build(self, pins: list[str]) -> BuildResult:
        """An environment holding ``pins`` (``name==version``) and modelseal's needs."""
        started = time.perf_counter()
        requirements = sorted(pins) + [
            text for text in self.support if _name(text) not in {_name(pin) for pin in pins}
        ]
        key = self.key(requirements)
        root = self.folder / f"env-{key}"
        if (root / READY_FILE).is_file():
            return BuildResult(BuildStatus.CACHED, key, root, _since(started))
        staging = self.folder / f".env-{key}.building"
        shutil.rmtree(staging, ignore_errors=True)
        problem = self._create(staging, requirements)
        if problem is not None:
            shutil.rmtree(staging, ignore_errors=True)
            status = (
                BuildStatus.UNRESOLVABLE
                if any(marker in problem for marker in UNRESOLVABLE_MARKERS)
                else BuildStatus.FAILED
            )
            return BuildResult(status, key, None, _since(started), problem)
        (staging / READY_FILE).write_text(
            json.dumps({"requirements": requirements, "registry": self.registry.described()})
        )
        shutil.rmtree(root, ignore_errors=True)
        staging.rename(root)
        return BuildResult(BuildStatus.BUILT, key, root, _since(started))

    def key(self, requirements: list[str]) -> str:
        """Names the exact package set, for this Python and this registry."""
        identity = {
            "python": sys.version,
            "platform": platform.platform(),
            "requirements": requirements,
            "registry": self.registry.uv_arguments(),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    def _create(self, root: Path, requirements: list[str]) -> str | None:
        """Build the venv; None on success, else what uv said."""
        self.folder.mkdir(parents=True, exist_ok=True)
        create = [
            "venv", "--quiet", "--no-project", "--no-python-downloads",
            "--python", sys.executable, str(root),
        ]  # fmt: skip
        problem = self._uv(create)
        if problem is not None:
            return problem
        requirements_file = root / "bisect-requirements.txt"
        requirements_file.write_text("\n".join(requirements) + "\n")
        install = [
            "pip", "install", "--quiet", "--no-progress", "--color", "never",
            "--python", str(python_of(root)), "-r", str(requirements_file),
            *self.registry.uv_arguments(),
        ]  # fmt: skip
        return self._uv(install)

    def _uv(self, arguments: list[str]) -> str | None:
        # Run outside any project folder so uv picks up no pyproject.toml of the caller.
        environment = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        try:
            result = subprocess.run(
                [str(self.uv), *arguments],
                cwd=self.folder,
                env=environment,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"uv {arguments[0]} took longer than {BUILD_TIMEOUT_S} s"
        except OSError as exc:
            return f"uv could not be run ({self.uv}): {exc}"
        if result.returncode == 0:
            return None
        return (result.stderr.strip() or result.stdout.strip()) or f"uv exit {result.returncode}"


def python_of(root: Path) -> Path:
    if os.name == "nt":
        return root / "Scripts" / "python.exe"
    return root / "bin" / "python"


def _name(requirement: str) -> str:
    return canonicalize_name(Requirement(requirement).name)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


class EnvironmentPool:
    """The environment for each package set a search asks for, within its budget.

    ``max_envs`` bounds the environments that run a trial (built, or reused from a kept
    folder). A set that cannot be resolved builds nothing and costs a second, so it does
    not count there; ``RESOLUTIONS_PER_ENV`` times as many attempts bound the search anyway.
    """

    RESOLUTIONS_PER_ENV = 4

    def __init__(
        self,
        folder: Path,
        lock: dict[str, str],
        max_envs: int,
        make_builder: Callable[[Path], EnvironmentBuilder],
    ) -> None:
        """``lock``: the seal's pins; ``make_builder`` is called once, on the first build."""
        self.folder = folder
        self.lock = lock
        self.max_envs = max_envs
        self.results: dict[frozenset[str], BuildResult] = {}
        self._make_builder = make_builder
        self._builder: EnvironmentBuilder | None = None

    def environment_for(self, current: dict[str, str | None]) -> BuildResult:
        """An environment with the packages in ``current`` at those versions (None: not
        installed), and every other locked package at its sealed version.

        Raises ``BudgetSpentError`` when the set is new and the budget is spent."""
        names = frozenset(current)
        if names in self.results:
            return self.results[names]
        usable = sum(result.usable for result in self.results.values())
        if usable >= self.max_envs or len(self.results) >= self.max_envs * self.RESOLUTIONS_PER_ENV:
            raise BudgetSpentError
        pins = []
        for name, sealed in sorted(self.lock.items()):
            version = current.get(name, sealed)
            if version is not None:
                pins.append(f"{name}=={version}")
        result = self.builder().build(pins)
        self.results[names] = result
        return result

    def builder(self) -> EnvironmentBuilder:
        """The builder, made on first use: only package changes need uv."""
        if self._builder is None:
            self._builder = self._make_builder(self.folder)
        return self._builder

    @property
    def registry(self) -> PackageRegistry | None:
        return self._builder.registry if self._builder else None

    def count(self, status: BuildStatus) -> int:
        return sum(result.status is status for result in self.results.values())
