"""``model/runtime.json``: the options a runtime saved beside the model (digest-checked).

Each runtime declares what it saves as a ``RuntimeOptions`` model and reads it back through
``read_options``, so a malformed file is a ``SealFormatError`` naming the file and the
field, never a ``KeyError`` from deep inside a loader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from modelseal.errors import SealFormatError

OPTIONS_FILE = "runtime.json"


class RuntimeOptions(BaseModel):
    """Base of every runtime's options: immutable, and no field it does not declare."""

    model_config = ConfigDict(frozen=True, extra="forbid")


Options = TypeVar("Options", bound=RuntimeOptions)


def write_options(model_dir: Path, options: RuntimeOptions) -> None:
    text = json.dumps(options.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    (model_dir / OPTIONS_FILE).write_text(text, encoding="utf-8")


def read_options(model_dir: Path, schema: type[Options]) -> Options:
    """The options in ``model_dir/runtime.json``, as ``schema`` declares them."""
    path = model_dir / OPTIONS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SealFormatError(f"{path}: runtime options cannot be read ({exc})") from exc
    try:
        return schema.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors(include_url=False))
        raise SealFormatError(
            f"{path}: malformed runtime options: {problems} (the seal was not written by this "
            "runtime, or by an incompatible modelseal; re-seal the model)"
        ) from exc


def _describe(error: ErrorDetails) -> str:
    location = ".".join(str(part) for part in error["loc"])
    return f"{location}: {error['msg']}" if location else error["msg"]
