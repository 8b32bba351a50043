"""Ship a seal: its serving image's Dockerfile (and compose.yaml), and the Kubernetes and
KServe manifests that run it, each derived from what the seal recorded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modelseal.deploy.context import BuildContext, write_build_context
from modelseal.deploy.image import ImagePlan, Weights, plan_image
from modelseal.deploy.kserve import render_kserve
from modelseal.deploy.kubernetes import KubernetesOptions, render_kubernetes, workload
from modelseal.deploy.sizing import (
    Sizing,
    StartupMeasurement,
    measure_startup,
    size,
    startup_budget,
)
from modelseal.deploy.yaml import dump
from modelseal.seal.artifact import Seal

KSERVE_DIR = "kserve"

__all__ = [
    "BuildContext",
    "ImagePlan",
    "KubernetesOptions",
    "Manifests",
    "Sizing",
    "StartupMeasurement",
    "Weights",
    "write_dockerfile",
    "write_manifests",
]


@dataclass(frozen=True)
class Manifests:
    root: Path
    files: tuple[Path, ...]
    """What was written, relative to ``root``."""
    sizing: Sizing


def write_dockerfile(
    seal: Seal,
    out: Path,
    *,
    weights: Weights = Weights.BAKED,
    gpu: bool = False,
    base_image: str | None = None,
    wheelhouse: Path | None = None,
    with_compose: bool = False,
    source: str | None = None,
    pins: Sequence[str] = (),
    startup_seconds: float | None = None,
    measurement: StartupMeasurement | None = None,
) -> tuple[ImagePlan, BuildContext]:
    """Write the build context of ``seal``'s serving image into ``out``.

    ``startup_seconds`` (or a ``measurement``) sizes the HEALTHCHECK's start period; without
    either, the seal's start-up is measured here (see ``modelseal.deploy.sizing``).
    """
    if startup_seconds is None:
        startup_seconds = (measurement or measure_startup(seal)).seconds
    plan = plan_image(
        seal,
        startup_budget_seconds=startup_budget(startup_seconds),
        weights=weights,
        gpu=gpu,
        base_image=base_image,
        source=source,
        pins=pins,
    )
    context = write_build_context(seal, plan, out, wheelhouse=wheelhouse, with_compose=with_compose)
    return plan, context


def write_manifests(
    seal: Seal,
    out: Path,
    options: KubernetesOptions,
    *,
    startup_seconds: float | None = None,
    memory_request_bytes: int | None = None,
    measurement: StartupMeasurement | None = None,
) -> Manifests:
    """Write the Kubernetes manifests into ``out`` and the KServe ones into ``out/kserve``."""
    sizing = size(
        seal,
        measurement,
        startup_seconds=startup_seconds,
        memory_request_bytes=memory_request_bytes,
    )
    work = workload(seal, sizing, options)
    written = []
    for folder, files in ((out, render_kubernetes(work)), (out / KSERVE_DIR, render_kserve(work))):
        folder.mkdir(parents=True, exist_ok=True)
        for name, manifest in files.items():
            (folder / name).write_text(dump(manifest), encoding="utf-8")
            written.append((folder / name).relative_to(out))
    return Manifests(out, tuple(written), sizing)
