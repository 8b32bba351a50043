"""Seals of other builds for rendering tests: the demo seal with its environment record and
lock rewritten (as if packed where torch+cu121 or onnxruntime-gpu was installed), every
digest restamped, so it opens and verifies like any seal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from modelseal.seal.artifact import Seal, open_seal
from modelseal.seal.digests import describe_files
from modelseal.seal.manifest import ENVIRONMENT_FILE, LOCK_FILE, MANIFEST_FILE, seal_manifest


def seal_with(
    seal_dir: Path,
    out: Path,
    environment: dict[str, Any] | None = None,
    lock: list[str] | None = None,
) -> Seal:
    """A copy of ``seal_dir`` with environment.json fields and lock lines replaced."""
    shutil.copytree(seal_dir, out)
    if environment:
        record = json.loads((out / ENVIRONMENT_FILE).read_text())
        record.update(environment)
        (out / ENVIRONMENT_FILE).write_text(json.dumps(record, indent=2) + "\n")
    if lock is not None:
        (out / LOCK_FILE).write_text("\n".join(["# rewritten for a test", *lock]) + "\n")
    manifest = open_seal(seal_dir).manifest
    body = manifest.model_dump(mode="json", exclude={"digest", "files"})
    (out / MANIFEST_FILE).write_text(seal_manifest(**body, files=describe_files(out)).to_json())
    return open_seal(out)


def torch_build(version: str, cuda: str | None) -> dict[str, Any]:
    return {"torch": {"version": version, "cuda": cuda}}
