"""How long fingerprinting an environment takes, against baselines measured in the same run.

Run: ``.venv/bin/python benchmarks/bench_environment.py``. Not part of the test suite.

Baselines: ``pip freeze`` (what teams run today to record an environment, and which knows
far less), and a cold interpreter that only imports numpy (the floor for any fingerprint
that must ask numpy for its BLAS).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from modelseal.environment.fingerprint import capture_environment

REPEATS = 7


def median_seconds(action: Callable[[], object], repeats: int = REPEATS) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def run_python(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def main() -> None:
    capture_environment()  # warm the metadata and threadpoolctl caches once
    warm = median_seconds(capture_environment)
    pip_freeze = median_seconds(
        lambda: subprocess.run(
            [sys.executable, "-m", "pip", "freeze"], check=True, capture_output=True
        ),
        repeats=3,
    )
    cold_numpy = median_seconds(lambda: run_python("import numpy"), repeats=3)
    cold_capture = median_seconds(
        lambda: run_python(
            "from modelseal.environment.fingerprint import capture_environment;"
            "capture_environment()"
        ),
        repeats=3,
    )
    packages = len(capture_environment().packages)
    print(f"packages installed:                 {packages}")
    print(f"capture_environment, in process:    {warm * 1000:8.1f} ms")
    print(f"pip freeze (baseline):              {pip_freeze * 1000:8.1f} ms")
    print(f"  ratio capture / pip freeze:       {warm / pip_freeze:8.2f}")
    print(f"cold process, import numpy only:    {cold_numpy * 1000:8.1f} ms")
    print(f"cold process, import + capture:     {cold_capture * 1000:8.1f} ms")
    print(f"  ratio cold capture / cold numpy:  {cold_capture / cold_numpy:8.2f}")


if __name__ == "__main__":
    main()
