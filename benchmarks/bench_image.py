"""Serving image size against a single-stage image of the same seal holding the training tools.

Run: ``make bench`` (or ``PYTHONPATH=. .venv/bin/python benchmarks/bench_image.py``) as root
with docker.io and debootstrap installed. Not part of the test suite.

Both images are built in the same run, in the same private engine, from the same base
(Debian bookworm + Python 3.11 from debootstrap) and the same demo seal:

- serving: what ``modelseal dockerfile --wheelhouse`` generates (multi-stage; the seal's
  lock and modelseal's serving requirements only);
- single-stage (the baseline): one stage that installs the seal's whole packing
  environment as recorded in its environment.json (``pip freeze`` of where it was trained:
  the training tools), and the same seal. Its wheels are bind-mounted, so it carries no
  wheel or pip cache either: the difference is only what is installed.

Target: serving <= 40% of the single-stage image. The result (sizes, ratio, machine and
versions) goes to benchmarks/results/image-size-<time>.json.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.deploy.images import (
    REPO,
    build_image,
    cached_wheels,
    modelseal_wheel,
    wheelhouse,
)
from tests.docker_engine import DockerEngine, ensure_base_image, start_engine, stop_engine

from modelseal import __version__, pack
from modelseal.demo import train_demo_model
from modelseal.deploy import write_dockerfile
from modelseal.deploy.dockerfile import LOCK_FILE, SERVING_FILE
from modelseal.seal.artifact import Seal

RESULTS = REPO / "benchmarks" / "results"
TARGET_RATIO = 0.40
SINGLE_STAGE = """\
FROM {base}
COPY requirements-training.txt /tmp/requirements-training.txt
RUN --mount=type=bind,source=wheels,target=/tmp/wheels \\
    python3 -m venv /opt/venv \\
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels \\
       -r /tmp/requirements-training.txt
COPY seal/ /opt/seal/
USER 10001:0
ENTRYPOINT ["/opt/venv/bin/modelseal", "serve", "/opt/seal"]
"""


def main() -> None:
    engine = start_engine()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-image-") as folder:
            result = measure(engine, Path(folder))
    finally:
        stop_engine(engine)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"image-size-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    serving, single = result["serving_image"], result["single_stage_image"]
    for name, image in (("serving", serving), ("single-stage", single)):
        mib = image["bytes"] / 2**20
        print(f"{name:13} image {mib:9.1f} MiB  ({image['distributions']} distributions)")
    print(f"ratio serving / single-stage {result['ratio']:.3f} (target <= {TARGET_RATIO})")
    print(f"written to {path.relative_to(REPO)}")


def measure(engine: DockerEngine, folder: Path) -> dict[str, Any]:
    base = ensure_base_image(engine)
    demo = train_demo_model()
    seal = pack(demo.estimator, runtime="sklearn", name="digits", version="1.0.0",
                golden=demo.golden_inputs, output=folder / "digits-1.0.0.seal")  # fmt: skip
    app = modelseal_wheel(REPO, folder / "app")

    staging = folder / "requirements"
    write_dockerfile(seal, staging, startup_seconds=10)
    serving_wheels = cached_wheels(staging / LOCK_FILE, staging / SERVING_FILE)
    plan, context = write_dockerfile(
        seal, folder / "serving", base_image=base, startup_seconds=10,
        wheelhouse=wheelhouse(folder / "serving-wheels", app, serving_wheels),
    )  # fmt: skip
    build_image(engine, context.root, "modelseal-bench/digits:serving")

    training = training_requirements(seal, folder / "requirements-training.txt")
    single = single_stage_context(seal, folder / "single", base, training, app)
    build_image(engine, single, "modelseal-bench/digits:single-stage")

    serving_bytes = image_bytes(engine, "modelseal-bench/digits:serving")
    single_bytes = image_bytes(engine, "modelseal-bench/digits:single-stage")
    engine.docker("rmi", "modelseal-bench/digits:serving", "modelseal-bench/digits:single-stage")
    return {
        "benchmark": "image size: modelseal serving image vs single-stage image with the "
        "training tools, same base, same seal",
        "serving_image": {"bytes": serving_bytes, "distributions": len(plan.installed)},
        "single_stage_image": {
            "bytes": single_bytes,
            "distributions": len(training.read_text().splitlines()) + 1,
            "what": "the seal's packing environment (environment.json packages) in one stage",
        },
        "ratio": round(serving_bytes / single_bytes, 4),
        "target_ratio": TARGET_RATIO,
        "meets_target": serving_bytes / single_bytes <= TARGET_RATIO,
        "base_image": "debootstrap --variant=minbase bookworm python3 python3-venv "
        "python3-pip python-is-python3",
        "machine": {
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "docker": engine.docker("version", "-f", "{{.Server.Version}}").stdout.strip(),
        },
        "versions": {"modelseal": __version__, "seal_lock": seal.lock_lines()},
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def training_requirements(seal: Seal, path: Path) -> Path:
    """Every package of the environment the seal was packed in, modelseal apart."""
    packages = sorted(seal.environment().packages.items())
    path.write_text("".join(f"{n}=={v}\n" for n, v in packages if n != "modelseal"))
    return path


def single_stage_context(seal: Seal, folder: Path, base: str, training: Path, app: Path) -> Path:
    folder.mkdir()
    (folder / "Dockerfile").write_text(SINGLE_STAGE.format(base=base))
    (folder / "requirements-training.txt").write_text(
        training.read_text() + f"modelseal=={__version__}\n"
    )
    wheelhouse(folder / "wheels", app, cached_wheels(training))
    shutil.copytree(seal.root, folder / "seal")
    return folder


def image_bytes(engine: DockerEngine, tag: str) -> int:
    return int(engine.docker("image", "inspect", "-f", "{{.Size}}", tag).stdout.strip())


if __name__ == "__main__":
    main()
