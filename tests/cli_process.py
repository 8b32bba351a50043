"""The modelseal command in a real subprocess, as users and CI run it."""

from __future__ import annotations

import os
import subprocess
import sys


def run_modelseal(
    *args: str,
    env: dict[str, str] | None = None,
    extra_env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``python -m modelseal ARGS``; ``env`` replaces the environment, ``extra_env`` adds."""
    base = dict(os.environ) if env is None else env
    return subprocess.run(
        [sys.executable, "-m", "modelseal", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, **(extra_env or {})},
        check=False,
    )
