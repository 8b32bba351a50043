"""Seal the demo digits model with the Python API (the CLI's `modelseal demo` does the same).

Run: ``.venv/bin/python examples/digits/seal_digits.py [OUT]``. The data ships inside
scikit-learn, and training is deterministic, so every run seals the same model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import modelseal
from modelseal.demo import train_demo_model


def main(out: Path) -> None:
    demo = train_demo_model()
    seal = modelseal.pack(
        demo.estimator,
        runtime="sklearn",
        name="digits",
        version="1.0.0",
        golden=demo.golden_inputs,
        output=out,
    )
    print(f"sealed {seal.name} {seal.version} at {seal.root}")
    print(f"digest {seal.digest}")
    for line in seal.lock_lines():
        print(f"  {line}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("build/examples/digits-1.0.0.seal"))
