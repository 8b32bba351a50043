"""``golden.npz``: reference inputs and the outputs the sealed model produced from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelseal.errors import SealFormatError
from modelseal.types import NamedArrays

INPUT_PREFIX = "inputs/"
OUTPUT_PREFIX = "outputs/"


@dataclass(frozen=True)
class Golden:
    """Golden inputs and outputs by name, batch on axis 0."""

    inputs: NamedArrays
    outputs: NamedArrays

    @property
    def rows(self) -> int:
        return len(next(iter(self.inputs.values())))

    def input_rows(self, start: int, stop: int) -> NamedArrays:
        return {name: array[start:stop] for name, array in self.inputs.items()}


def save_golden(path: Path, golden: Golden) -> None:
    arrays = {f"{INPUT_PREFIX}{name}": array for name, array in golden.inputs.items()}
    arrays |= {f"{OUTPUT_PREFIX}{name}": array for name, array in golden.outputs.items()}
    with path.open("wb") as stream:
        np.savez_compressed(stream, allow_pickle=False, **arrays)


def load_golden(path: Path) -> Golden:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as exc:
        raise SealFormatError(f"{path}: golden data cannot be read ({exc})") from exc
    inputs = _strip(arrays, INPUT_PREFIX)
    outputs = _strip(arrays, OUTPUT_PREFIX)
    if not inputs or not outputs:
        raise SealFormatError(
            f"{path}: expected arrays named inputs/<name> and outputs/<name>, "
            f"found {sorted(arrays)}"
        )
    return Golden(inputs=inputs, outputs=outputs)


def _strip(arrays: NamedArrays, prefix: str) -> NamedArrays:
    return {name[len(prefix) :]: a for name, a in arrays.items() if name.startswith(prefix)}
