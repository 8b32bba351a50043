"""What verifying the demo seal costs at server start, against what loading alone costs.

Run: ``.venv/bin/python benchmarks/bench_verify.py``. Not part of the test suite.

Baseline, measured in the same run: what every server pays anyway — open the seal, load the
model, predict the 64 golden rows once. ``verify`` adds the environment fingerprint and diff
and the replay at batch sizes 1 and 64 with the tolerance comparison.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from modelseal import open_seal, pack
from modelseal.demo import train_demo_model
from modelseal.golden import load_golden
from modelseal.runtimes import get_runtime
from modelseal.verify import verify

REPEATS = 9


def median_seconds(action: Callable[[], object]) -> float:
    timings = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def load_and_predict(seal_dir: Path) -> None:
    seal = open_seal(seal_dir)
    loaded = get_runtime(seal.runtime).load(seal.model_dir, "cpu")
    loaded.predict(load_golden(seal.golden_path).inputs)


def main() -> None:
    demo = train_demo_model()
    with tempfile.TemporaryDirectory() as folder:
        seal_dir = Path(folder) / "digits.seal"
        pack(
            demo.estimator,
            runtime="sklearn",
            name="digits",
            version="1",
            golden=demo.golden_inputs,
            output=seal_dir,
        )
        load_and_predict(seal_dir)  # imports the framework once, outside the timings
        baseline = median_seconds(lambda: load_and_predict(seal_dir))
        verified = median_seconds(lambda: verify(seal_dir))
        steps = verify(seal_dir).timings
    print(f"baseline: open + load + predict 64 rows  {baseline * 1000:8.1f} ms")
    print(f"verify: + environment diff + replay 1/64 {verified * 1000:8.1f} ms")
    print(f"  ratio verify / baseline                {verified / baseline:8.2f}")
    print("  steps: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in steps.items()))


if __name__ == "__main__":
    main()
