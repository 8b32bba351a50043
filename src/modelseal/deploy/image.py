"""What the serving image of a seal must hold, decided once from the seal and the options.

The Dockerfile, the build context and compose.yaml are rendered from this plan:
the Python version the seal recorded, the base image for it (or for its CUDA build), the
seal's lock (with any pins the caller moved), modelseal's own serving requirements pinned at
the versions installed where the plan is made, and where the weights come from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from modelseal._version import __version__
from modelseal.deploy.container import BAKED_SEAL, MODELS_MOUNT
from modelseal.deploy.cuda import CudaBuild, cuda_build, torch_index
from modelseal.environment.lock import dependency_closure, exact_pin, parse_lock
from modelseal.errors import UsageError
from modelseal.seal.artifact import Seal

SERVING_EXTRA = "serve"
IMAGE_REFERENCE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*$")
TORCH_FAMILY = ("torch", "torchvision", "torchaudio")


class Weights(str, Enum):
    """Where the serving container finds the seal."""

    BAKED = "baked"
    """Copied into the image, in a layer after the dependencies."""
    VOLUME = "volume"
    """A mounted folder: MODELSEAL_SOURCE names the seal under /models."""
    S3 = "s3"
    """Object storage: MODELSEAL_SOURCE is an s3:// URI, credentials from the environment."""
    REGISTRY = "registry"
    """The MLflow model registry: MODELSEAL_SOURCE is a models:/ URI."""


SOURCE_SCHEMES = {Weights.S3: "s3://", Weights.REGISTRY: "models:/"}
SOURCE_EXTRAS = {Weights.S3: "s3", Weights.REGISTRY: "mlflow"}
"""What the server needs to fetch the seal: boto3 for s3://, MLflow's client for models:/."""
CREDENTIAL_VARIABLES = {
    Weights.S3: (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
    ),
    Weights.REGISTRY: (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_TOKEN",
    ),
}
"""Read from the environment at run time only: never written into an image or a file."""


@dataclass(frozen=True)
class ImagePlan:
    seal_name: str
    seal_version: str
    seal_digest: str
    runtime: str
    seal_file: str
    """The seal's folder or archive name, as it lies in a volume."""
    python_version: str
    base_image: str
    builder_image: str
    gpu: bool
    cuda: CudaBuild | None
    lock: dict[str, str]
    moved_pins: dict[str, tuple[str | None, str]]
    """Pins the caller moved: name -> (sealed version or None, version in the image)."""
    serving: dict[str, str]
    extras: tuple[str, ...]
    index_urls: tuple[str, ...]
    weights: Weights
    source: str | None
    numerics_env: dict[str, str]
    startup_budget_seconds: int
    modelseal_version: str = __version__

    @property
    def image_name(self) -> str:
        """The seal's name as an image repository (lower case; ``-`` for other characters)."""
        return _restricted(self.seal_name.lower(), "-_.").strip("-_.") or "model"

    @property
    def image_tag(self) -> str:
        tag = _restricted(self.seal_version, "-_.").lstrip("-.")[:128] or "latest"
        return f"{self.image_name}:{tag}"

    @property
    def installed(self) -> dict[str, str]:
        """Every distribution the serving environment holds, with its version."""
        everything = {**self.serving, **self.lock, "modelseal": self.modelseal_version}
        return dict(sorted(everything.items()))


def plan_image(
    seal: Seal,
    *,
    startup_budget_seconds: int,
    weights: Weights = Weights.BAKED,
    gpu: bool = False,
    base_image: str | None = None,
    source: str | None = None,
    pins: Sequence[str] = (),
) -> ImagePlan:
    environment = seal.environment()
    if environment.python.implementation != "CPython" and base_image is None:
        raise UsageError(
            f"the seal was made on {environment.python.implementation}; the default base "
            "images are CPython: pass --base-image with an image of that interpreter"
        )
    lock, moved = _move_pins(parse_lock(seal.lock_lines()), _parse_pins(pins))
    python_image = f"python:{environment.python.version}-slim-bookworm"
    cuda = cuda_build(environment, lock) if gpu and base_image is None else None
    base = _checked_image(base_image) if base_image else (cuda.image if cuda else python_image)
    extras = tuple(
        dict.fromkeys((SERVING_EXTRA, *_runtime_extra(seal.runtime), *_source_extra(weights)))
    )
    return ImagePlan(
        seal_name=seal.name,
        seal_version=seal.version,
        seal_digest=seal.digest,
        runtime=seal.runtime,
        seal_file=Path(seal.source).name,
        python_version=environment.python.version,
        base_image=base,
        builder_image=python_image if gpu else base,
        gpu=gpu,
        cuda=cuda,
        lock=lock,
        moved_pins=moved,
        serving=serving_pins(extras, lock),
        extras=extras,
        index_urls=_index_urls(lock),
        weights=weights,
        source=_checked_source(weights, source, Path(seal.source).name),
        numerics_env=dict(sorted(environment.numerics_env.items())),
        startup_budget_seconds=startup_budget_seconds,
    )


def serving_pins(extras: Sequence[str], lock: dict[str, str]) -> dict[str, str]:
    """modelseal's own requirements for ``extras``, pinned as installed here, minus the lock's."""
    root = f"modelseal[{','.join(extras)}]"
    try:
        closure = dependency_closure([root])
    except UsageError:
        raise UsageError(
            "modelseal is not installed as a distribution here, so its serving requirements "
            "cannot be pinned; install it (pip install 'modelseal[serve]') and run again"
        ) from None
    missing = _missing_requirements(extras, closure)
    if missing:
        raise UsageError(
            f"the serving image pins modelseal's requirements at the versions installed here, "
            f"but {', '.join(missing)} is not installed; run pip install '{root}' and again"
        )
    return {name: v for name, v in closure.items() if name not in lock and name != "modelseal"}


def _restricted(text: str, allowed: str) -> str:
    return "".join(c if (c.isascii() and c.isalnum()) or c in allowed else "-" for c in text)


def _runtime_extra(runtime: str) -> tuple[str, ...]:
    extras = metadata.metadata("modelseal").get_all("Provides-Extra") or []
    return (runtime,) if runtime in extras else ()


def _missing_requirements(extras: Sequence[str], closure: dict[str, str]) -> list[str]:
    missing = []
    for text in metadata.requires("modelseal") or []:
        requirement = Requirement(text)
        marker = requirement.marker
        wanted = marker is None or any(marker.evaluate({"extra": extra}) for extra in extras)
        if wanted and canonicalize_name(requirement.name) not in closure:
            missing.append(requirement.name)
    return missing


def _source_extra(weights: Weights) -> tuple[str, ...]:
    extra = SOURCE_EXTRAS.get(weights)
    return (extra,) if extra else ()


def _parse_pins(lines: Sequence[str]) -> dict[str, str]:
    """``--pin NAME==VERSION`` arguments -> normalized name -> version."""
    pins: dict[str, str] = {}
    for line in lines:
        requirement = exact_pin(line)
        if requirement is None:
            raise UsageError(f"--pin {line!r} is not a pin; expected NAME==VERSION")
        (specifier,) = requirement.specifier
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def _move_pins(
    sealed: dict[str, str], moved: dict[str, str]
) -> tuple[dict[str, str], dict[str, tuple[str | None, str]]]:
    changes = {
        name: (sealed.get(name), version)
        for name, version in sorted(moved.items())
        if sealed.get(name) != version
    }
    return dict(sorted({**sealed, **moved}.items())), changes


def _index_urls(lock: dict[str, str]) -> tuple[str, ...]:
    urls = {torch_index(lock[name]) for name in TORCH_FAMILY if name in lock}
    return tuple(sorted(url for url in urls if url))


def _checked_image(reference: str) -> str:
    if not IMAGE_REFERENCE.match(reference):
        raise UsageError(
            f"--base-image {reference!r} is not an image reference; expected NAME[:TAG] or "
            "NAME@sha256:DIGEST (lower case, no spaces)"
        )
    return reference


def _checked_source(weights: Weights, source: str | None, seal_file: str) -> str | None:
    if weights is Weights.BAKED:
        if source is not None:
            raise UsageError(
                f"--source {source!r} is for --weights volume, s3 or registry; a baked image "
                f"serves the seal copied into it ({BAKED_SEAL})"
            )
        return BAKED_SEAL
    if weights is Weights.VOLUME:
        path = source or f"{MODELS_MOUNT}/{seal_file}"
        if not path.startswith("/"):
            raise UsageError(
                f"--source {source!r}: --weights volume takes the seal's absolute path inside "
                f"the container, for example {MODELS_MOUNT}/{seal_file}"
            )
        return path
    scheme = SOURCE_SCHEMES[weights]
    if source is not None and not source.startswith(scheme):
        raise UsageError(f"--source {source!r}: --weights {weights.value} takes a {scheme}... URI")
    return source
