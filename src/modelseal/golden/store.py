"""``golden.npz``: reference inputs and the outputs the sealed model produced from them.

A tabular model's golden inputs are a DataFrame of mixed columns, which an npz cannot hold
faithfully (text with missing values, nullable integers, categories, zoned datetimes): they
are stored beside it as ``golden-inputs.parquet``, written from the DataFrame the model
received, and ``golden.npz`` holds only the outputs. Both are digest-checked seal files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelseal.errors import SealFormatError
from modelseal.tabular.frames import frame_columns, pandas, to_frame
from modelseal.types import NamedArrays, TableSpec

INPUT_PREFIX = "inputs/"
OUTPUT_PREFIX = "outputs/"
TABLE_FILE = "golden-inputs.parquet"
"""Where a tabular seal keeps its golden inputs, beside ``golden.npz``."""


@dataclass(frozen=True)
class Golden:
    """Golden inputs and outputs by name, batch on axis 0 (a tabular model's inputs are its
    columns, as ``types.Table`` describes them)."""

    inputs: NamedArrays
    outputs: NamedArrays

    @property
    def rows(self) -> int:
        return len(next(iter(self.inputs.values())))

    def input_rows(self, start: int, stop: int) -> NamedArrays:
        return {name: array[start:stop] for name, array in self.inputs.items()}


def save_golden(path: Path, golden: Golden, table: TableSpec | None = None) -> None:
    """Write ``golden`` to ``path`` (``golden.npz``); with ``table``, its inputs go to
    ``golden-inputs.parquet`` beside it, as the DataFrame the model received."""
    arrays = {f"{OUTPUT_PREFIX}{name}": array for name, array in golden.outputs.items()}
    if table is None:
        arrays |= {f"{INPUT_PREFIX}{name}": array for name, array in golden.inputs.items()}
    else:
        to_frame(golden.inputs, table).to_parquet(path.with_name(TABLE_FILE), index=False)
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
    table_path = path.with_name(TABLE_FILE)
    if table_path.is_file() and not inputs:
        inputs = _read_table(table_path)
    if not inputs or not outputs:
        raise SealFormatError(
            f"{path}: expected arrays named inputs/<name> (or the inputs of a tabular model "
            f"in {TABLE_FILE} beside it) and outputs/<name>, found {sorted(arrays)}"
        )
    return Golden(inputs=inputs, outputs=outputs)


def _read_table(path: Path) -> NamedArrays:
    try:
        frame = pandas().read_parquet(path)
    except ImportError as exc:
        raise SealFormatError(
            f"{path}: reading the golden inputs of a tabular model needs pyarrow ({exc}); "
            "pip install 'modelseal[tabular]'"
        ) from exc
    except Exception as exc:
        raise SealFormatError(
            f"{path}: golden inputs cannot be read ({type(exc).__name__}: {exc})"
        ) from exc
    if len(frame.columns) == 0 or len(frame) == 0:
        raise SealFormatError(f"{path}: holds no golden inputs (no columns or no rows)")
    return frame_columns(frame)


def _strip(arrays: NamedArrays, prefix: str) -> NamedArrays:
    return {name[len(prefix) :]: a for name, a in arrays.items() if name.startswith(prefix)}
