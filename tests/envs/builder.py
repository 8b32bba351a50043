"""Real second Python environments for tests, cached under .cache/envs.

An environment is built once per requirements file (the cache key is its content) and
reused; modelseal itself is reinstalled from a wheel of the current source on each test
session, so the environment always runs the code under test.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "envs"
READY_MARK = ".modelseal-test-env-ready"


def build_environment(requirements: Path) -> Path:
    """A venv holding exactly ``requirements``; returns its python executable."""
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    root = CACHE / f"{requirements.stem}-{key}"
    python = root / "bin" / "python"
    if (root / READY_MARK).exists():
        return python
    staging = CACHE / f".{root.name}.building"
    shutil.rmtree(staging, ignore_errors=True)
    venv.EnvBuilder(with_pip=True, symlinks=True).create(staging)
    _pip(staging / "bin" / "python", "install", "-qq", "-r", str(requirements))
    (staging / READY_MARK).write_text(requirements.read_text())
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)
    return python


def install_modelseal(python: Path, wheel_dir: Path) -> None:
    """Install modelseal, built from the current source, into the environment (no deps)."""
    wheels = sorted(wheel_dir.glob("modelseal-*.whl"))
    if not wheels:
        _pip(
            Path(sys.executable), "wheel", "-qq", "--no-deps", "--no-build-isolation",
            "-w", str(wheel_dir), str(REPO),
        )  # fmt: skip
        wheels = sorted(wheel_dir.glob("modelseal-*.whl"))
    _pip(python, "install", "-qq", "--no-deps", "--force-reinstall", str(wheels[-1]))


def _pip(python: Path, *args: str) -> None:
    result = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pip {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
