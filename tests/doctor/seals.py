"""Seals for the doctor's tests: an ONNX model, and copies whose packing environment records
other hardware (built through the environment record's own model, then restamped)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from modelseal import pack
from modelseal.environment.record import EnvironmentRecord, GpuInfo
from modelseal.seal.digests import describe_files
from modelseal.seal.manifest import (
    ENVIRONMENT_FILE,
    MANIFEST_FILE,
    parse_manifest,
    seal_manifest,
)
from tests.conftest import mlp_weights, onnx_mlp

A100 = GpuInfo(
    name="NVIDIA A100-SXM4-40GB", memory_mib=40960, compute_capability="8.0", driver="535.104.05"
)


def onnx_seal(folder: Path) -> Path:
    features = np.random.default_rng(3).standard_normal((16, 16)).astype(np.float32)
    return pack(
        onnx_mlp(mlp_weights(0)), runtime="onnx", name="mlp", version="1", golden=features,
        output=folder / "mlp.seal",
    ).root  # fmt: skip


def packed_with_gpus(seal_dir: Path, gpus: list[GpuInfo], out: Path) -> Path:
    """A copy of ``seal_dir`` whose environment.json says these GPUs were visible."""
    shutil.copytree(seal_dir, out)
    record = EnvironmentRecord.model_validate_json((out / ENVIRONMENT_FILE).read_bytes())
    updated = record.model_copy(update={"gpus": gpus})
    (out / ENVIRONMENT_FILE).write_text(updated.model_dump_json(indent=2))
    restamp(out)
    return out


def restamp(seal_dir: Path) -> None:
    """Re-digest every file and the manifest after a test changed the seal on purpose."""
    path = seal_dir / MANIFEST_FILE
    manifest = parse_manifest(path.read_text(), str(path))
    body = manifest.model_dump(mode="json", exclude={"digest", "files"})
    path.write_text(seal_manifest(**body, files=describe_files(seal_dir)).to_json())
