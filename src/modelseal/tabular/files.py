"""Golden DataFrames from files: parquet (which keeps dtypes) and CSV (which does not).

A CSV file records no dtypes, and reading one lets pandas guess them (an id column becomes
int64, a "true"/"false" column bool, a text column object or str depending on the pandas
version): exactly the silent difference a seal must not bake in. So a CSV is read only with
the dtype of every column given, by the caller or by the model format; otherwise it is
refused with the columns to name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelseal.errors import UsageError
from modelseal.tabular.frames import pandas
from modelseal.tabular.record import table_of
from modelseal.types import Table

TABLE_SUFFIXES = (".parquet", ".csv")


def read_table(
    path: Path,
    dtypes: Mapping[str, str] | None = None,
    columns: Mapping[str, str | None] | None = None,
) -> Table:
    """The golden table in ``path`` (.parquet or .csv).

    ``dtypes``: pandas dtypes by column, as the caller gives them (``--golden-dtypes``);
    ``columns``: the columns the model takes, in order, each with the dtype its format
    records (None where it records none). A CSV needs a dtype for every column it has.
    """
    if path.suffix == ".parquet":
        return table_of(_read_parquet(path), where=str(path))
    return table_of(_read_csv(path, {**_recorded(columns), **(dtypes or {})}, columns), str(path))


def parse_dtypes(options: list[str]) -> dict[str, str]:
    """``--golden-dtypes`` values: ``NAME=DTYPE[,NAME=DTYPE...]`` or a JSON file of them."""
    dtypes: dict[str, str] = {}
    for option in options:
        if option.endswith(".json"):
            dtypes.update(_dtypes_file(Path(option)))
            continue
        for item in filter(None, (part.strip() for part in option.split(","))):
            name, sep, dtype = item.partition("=")
            if not sep or not name.strip() or not dtype.strip():
                raise UsageError(
                    f"--golden-dtypes {item!r}: expected NAME=DTYPE (e.g. age=int64,city=str), "
                    "or a .json file mapping column names to dtypes"
                )
            dtypes[name.strip()] = dtype.strip()
    return dtypes


def _read_parquet(path: Path) -> Any:
    pd = pandas()
    try:
        return pd.read_parquet(path)
    except ImportError as exc:
        raise UsageError(
            f"{path}: reading parquet needs pyarrow ({exc}); pip install 'modelseal[tabular]'"
        ) from exc
    except Exception as exc:
        raise UsageError(
            f"{path}: cannot be read as parquet ({type(exc).__name__}: {exc}); expected a "
            "DataFrame saved with DataFrame.to_parquet"
        ) from exc


def _read_csv(path: Path, dtypes: dict[str, str], columns: Mapping[str, str | None] | None) -> Any:
    pd = pandas()
    try:
        header = list(pd.read_csv(path, nrows=0).columns)
    except Exception as exc:
        raise UsageError(f"{path}: cannot be read as CSV ({type(exc).__name__}: {exc})") from exc
    unknown = [name for name in header if name not in dtypes]
    if unknown:
        raise UsageError(_dtypes_needed(path, header, unknown, columns))
    dates = [name for name in header if dtypes[name].startswith("datetime64")]
    plain = {name: dtype for name, dtype in dtypes.items() if name in header and name not in dates}
    try:
        frame = pd.read_csv(path, dtype=plain, parse_dates=dates)
        return frame.astype({name: dtypes[name] for name in dates})
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"{path}: the values do not fit the dtypes given ({exc}); check --golden-dtypes"
        ) from exc


def _dtypes_needed(
    path: Path, header: list[str], unknown: list[str], columns: Mapping[str, str | None] | None
) -> str:
    names = list(columns) if columns else header
    template = ",".join(f"{name}=DTYPE" for name in names)
    trained = f"; the model was trained on the columns {names}" if columns else ""
    return (
        f"{path}: a CSV file records no dtypes, and none are known for the columns "
        f"{unknown}{trained}. Give the dtypes the model was trained with, e.g. "
        f"--golden-dtypes '{template}' (DTYPE: int64, float64, bool, str, object, category, "
        "datetime64[ns], ...), or save the golden DataFrame as parquet, which keeps them "
        "(frame.to_parquet('golden.parquet'))"
    )


def _recorded(columns: Mapping[str, str | None] | None) -> dict[str, str]:
    return {name: dtype for name, dtype in (columns or {}).items() if dtype is not None}


def _dtypes_file(path: Path) -> dict[str, str]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--golden-dtypes {path}: cannot be read as JSON ({exc})") from exc
    if not isinstance(content, dict) or not all(
        isinstance(name, str) and isinstance(dtype, str) for name, dtype in content.items()
    ):
        raise UsageError(
            f'--golden-dtypes {path}: expected a JSON object {{"column": "dtype", ...}}'
        )
    return content
