"""The seal the doctor judges against, with the facts several check families need."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from modelseal.environment.lock import parse_lock
from modelseal.environment.record import EnvironmentRecord
from modelseal.errors import SealError
from modelseal.runtimes.registry import get_runtime
from modelseal.seal.artifact import Seal
from modelseal.seal.manifest import MODEL_DIR

MIB = 1 << 20
GIB = 1 << 30


@dataclass(frozen=True)
class SealFacts:
    """An opened seal and what it says about the model's needs."""

    seal: Seal

    @cached_property
    def environment(self) -> EnvironmentRecord:
        """The packing environment."""
        return self.seal.environment()

    @cached_property
    def lock(self) -> dict[str, str]:
        return parse_lock(self.seal.lock_lines())

    @cached_property
    def model_bytes(self) -> int:
        """Size of the model files on disk (the weights, as the runtime saved them)."""
        prefix = f"{MODEL_DIR}/"
        return sum(
            entry.size
            for path, entry in self.seal.manifest.files.items()
            if path.startswith(prefix)
        )

    @cached_property
    def runtime_can_use_gpu(self) -> bool:
        """Whether the seal's runtime runs on CUDA; assumed so when it cannot load here."""
        try:
            runtime = get_runtime(self.seal.runtime)
        except SealError:
            return True
        return runtime.supports_cuda

    @property
    def expects_gpu(self) -> bool:
        """Packed where a GPU was visible, with a runtime that runs on one: it is meant to."""
        return self.runtime_can_use_gpu and bool(self.environment.gpus)

    def packed_gpus_text(self) -> str:
        gpus = self.environment.gpus
        if not gpus:
            return "no GPU"
        names = sorted({gpu.name for gpu in gpus})
        return f"{len(gpus)} GPU(s): {', '.join(names)}"


def size_text(size: float) -> str:
    """Bytes as a person reads them: 1.5 GiB, 64 MiB, 812 KiB."""
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", 1 << 10)):
        if abs(size) >= scale:
            value = size / scale
            number = f"{value:.1f}".removesuffix(".0") if value < 100 else f"{value:.0f}"
            return f"{number} {unit}"
    return f"{size:.0f} B"
