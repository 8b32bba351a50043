"""The build context folder: Dockerfile, .dockerignore, requirement files, seal and wheels.

Only what the Dockerfile copies is in the context, and ``.dockerignore`` lets nothing else
in, so a stray file in the folder cannot change or bloat the image.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from modelseal.deploy import compose
from modelseal.deploy.dockerfile import (
    APP_DIR,
    LOCK_FILE,
    SEAL_DIR,
    SERVING_FILE,
    WHEELHOUSE_DIR,
    render_dockerfile,
)
from modelseal.deploy.image import ImagePlan, Weights
from modelseal.deploy.yaml import dump
from modelseal.environment.lock import render_lock
from modelseal.errors import UsageError
from modelseal.seal.artifact import Seal

DOCKERFILE = "Dockerfile"
DOCKERIGNORE = ".dockerignore"
COMPOSE_FILE = "compose.yaml"


@dataclass(frozen=True)
class BuildContext:
    root: Path
    files: tuple[Path, ...]
    """What was written, relative to ``root``."""


def write_build_context(
    seal: Seal,
    plan: ImagePlan,
    out: Path,
    *,
    wheelhouse: Path | None = None,
    with_compose: bool = False,
) -> BuildContext:
    """Write the context for ``plan`` into ``out`` (created; earlier outputs replaced)."""
    wheels = _wheels_for(plan, wheelhouse) if wheelhouse is not None else None
    out.mkdir(parents=True, exist_ok=True)
    for stale in (SEAL_DIR, WHEELHOUSE_DIR, APP_DIR):
        shutil.rmtree(out / stale, ignore_errors=True)
    written = [
        _write(out / DOCKERFILE, render_dockerfile(plan, wheelhouse=wheels is not None)),
        _write(out / DOCKERIGNORE, render_dockerignore(plan, wheelhouse=wheels is not None)),
        _write(out / LOCK_FILE, render_image_lock(plan)),
        _write(out / SERVING_FILE, render_serving_requirements(plan)),
    ]
    if plan.weights is Weights.BAKED:
        shutil.copytree(seal.root, out / SEAL_DIR)
        written.append(out / SEAL_DIR)
    if wheels is not None:
        app, dependencies = wheels
        written += [_link_all(dependencies, out / WHEELHOUSE_DIR), _link_all(app, out / APP_DIR)]
    if with_compose:
        written.append(_write(out / COMPOSE_FILE, dump(compose.render_compose(plan))))
    return BuildContext(out, tuple(path.relative_to(out) for path in written))


def render_image_lock(plan: ImagePlan) -> str:
    """The seal's lock as pip reads it; nothing seal-specific beyond the pins, so another
    seal with the same lock reuses the dependency layers."""
    header = ["The seal's lock: the versions its model was validated with."]
    header += [
        f"MOVED by --pin: {name} {sealed or '(not in the seal)'} -> {version}; the server's "
        "start-up verification judges whether the model still reproduces."
        for name, (sealed, version) in plan.moved_pins.items()
    ]
    options = [f"--extra-index-url {url}" for url in plan.index_urls]
    return render_lock(plan.lock, "\n".join(header), options)


def render_serving_requirements(plan: ImagePlan) -> str:
    header = (
        f"# modelseal's requirements for [{','.join(plan.extras)}] beyond the seal's lock, "
        "pinned as installed where this file was generated."
    )
    return "\n".join([header, *(f"{n}=={v}" for n, v in plan.serving.items())]) + "\n"


def render_dockerignore(plan: ImagePlan, *, wheelhouse: bool) -> str:
    allowed = [LOCK_FILE, SERVING_FILE]
    if plan.weights is Weights.BAKED:
        allowed.append(SEAL_DIR)
    if wheelhouse:
        allowed += [WHEELHOUSE_DIR, APP_DIR]
    lines = ["# Only what the Dockerfile copies enters the build context.", "*"]
    return "\n".join([*lines, *(f"!{name}" for name in allowed)]) + "\n"


def _wheels_for(plan: ImagePlan, wheelhouse: Path) -> tuple[list[Path], list[Path]]:
    """(modelseal's wheel, every dependency's file) from ``wheelhouse``, all pins present."""
    if not wheelhouse.is_dir():
        raise UsageError(f"--wheelhouse {wheelhouse}: no such folder")
    found: dict[tuple[str, str], list[Path]] = {}
    for path in sorted(wheelhouse.iterdir()):
        key = _distribution_of(path)
        if key is not None:
            found.setdefault(key, []).append(path)
    pins = {name: _normalized(version) for name, version in plan.installed.items()}
    missing = [f"{n}=={v}" for n, v in pins.items() if (n, v) not in found]
    if missing:
        raise UsageError(
            f"--wheelhouse {wheelhouse} lacks {', '.join(missing)}; fill it with "
            f"`pip wheel -w {wheelhouse} -r {LOCK_FILE} -r {SERVING_FILE}` (the files this "
            f"command writes) and `pip wheel --no-deps -w {wheelhouse} "
            f"modelseal=={plan.modelseal_version}`, on a Linux machine with Python "
            f"{'.'.join(plan.python_version.split('.')[:2])}"
        )
    app = found[("modelseal", pins["modelseal"])]
    dependencies = [p for (n, v), paths in found.items() if n != "modelseal" and pins.get(n) == v
                    for p in paths]  # fmt: skip
    return app, dependencies


def _distribution_of(path: Path) -> tuple[str, str] | None:
    try:
        if path.name.endswith(".whl"):
            name, version, _build, _tags = parse_wheel_filename(path.name)
        elif path.name.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(path.name)
        else:
            return None
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return canonicalize_name(name), str(version)


def _normalized(version: str) -> str:
    try:
        return str(Version(version))
    except InvalidVersion:
        return version


def _link_all(files: list[Path], folder: Path) -> Path:
    """Hard links where the file system allows (wheelhouses are large), copies elsewhere."""
    folder.mkdir()
    for path in files:
        try:
            os.link(path, folder / path.name)
        except OSError:
            shutil.copy2(path, folder / path.name)
    return folder


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
