"""``model/runtime.json``: the options a runtime saved beside the model (digest-checked)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelseal.errors import SealFormatError

OPTIONS_FILE = "runtime.json"


def write_options(model_dir: Path, options: dict[str, Any]) -> None:
    text = json.dumps(options, indent=2, sort_keys=True) + "\n"
    (model_dir / OPTIONS_FILE).write_text(text, encoding="utf-8")


def read_options(model_dir: Path) -> dict[str, Any]:
    path = model_dir / OPTIONS_FILE
    try:
        options = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SealFormatError(f"{path}: runtime options cannot be read ({exc})") from exc
    if not isinstance(options, dict):
        raise SealFormatError(f"{path}: expected a JSON object")
    return options
