"""The benchmark's models: FIELD-NOTES' two float32 MLPs as ONNX files and as seals, run
with one intra-op thread everywhere, and the demo scikit-learn seal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tests.conftest import mlp_weights, onnx_mlp

from modelseal import pack
from modelseal.runtimes.onnx import OnnxRuntime, SessionSettings

INPUT = "features"
OUTPUT = "scores"
WIDTH = 128


@dataclass(frozen=True)
class BenchModel:
    name: str
    sizes: tuple[int, ...]
    onnx_file: Path
    seal: Path

    @property
    def layers(self) -> str:
        return "->".join(str(size) for size in self.sizes)


SIZES = {"small": (WIDTH, 256, 256, 1), "heavy": (WIDTH, 2048, 2048, 2048, 1)}


def build_models(folder: Path) -> dict[str, BenchModel]:
    """Both MLPs, written and sealed under ``folder`` (reused when already there)."""
    return {name: build_model(folder, name, sizes) for name, sizes in SIZES.items()}


def build_model(folder: Path, name: str, sizes: tuple[int, ...]) -> BenchModel:
    onnx_file = folder / f"{name}.onnx"
    seal = folder / f"{name}.seal"
    if not seal.exists():
        folder.mkdir(parents=True, exist_ok=True)
        model = onnx_mlp(mlp_weights(0, sizes), input_name=INPUT)
        onnx_file.write_bytes(model)
        golden = np.random.default_rng(1).standard_normal((64, sizes[0])).astype(np.float32)
        pack(
            model, runtime=OnnxRuntime(SessionSettings(intra_op_num_threads=1)), name=name,
            version="1", golden=golden, output=seal,
        )  # fmt: skip
    return BenchModel(name, sizes, onnx_file, seal)
