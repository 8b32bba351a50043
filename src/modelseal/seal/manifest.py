"""``seal.json``: the manifest of a seal (format 1) and its digest."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelseal.errors import IntegrityError, SealFormatError, UsageError
from modelseal.types import Signature

SEAL_FORMAT = 1
MANIFEST_FILE = "seal.json"
ENVIRONMENT_FILE = "environment.json"
LOCK_FILE = "requirements.lock"
GOLDEN_FILE = "golden.npz"
MODEL_DIR = "model"
IDENTITY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""What a seal's name and version may be: each is one segment of OIP v2 URL paths
(``/v2/models/NAME/versions/VERSION``), so no ``/``, spaces or other characters to escape."""


class FileEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class SealManifest(BaseModel):
    """Everything ``seal.json`` states; ``digest`` covers all the other fields."""

    model_config = ConfigDict(frozen=True)

    format: Literal[1] = 1
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    runtime: str
    signature: Signature
    files: dict[str, FileEntry]
    tolerance: dict[str, str] = Field(description="output name -> tolerance policy")
    created: str
    modelseal_version: str
    digest: str

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def check_identity(name: str, version: str) -> None:
    """Refuse a name or version that cannot be one URL path segment (see IDENTITY_PATTERN)."""
    for field, value in (("name", name), ("version", version)):
        if not isinstance(value, str) or not IDENTITY_PATTERN.fullmatch(value):
            raise UsageError(
                f"--{field} {value!r}: a model {field} goes into URL paths "
                "(/v2/models/NAME/versions/VERSION), so it may hold only letters, digits, '.', "
                "'_' and '-', start with a letter or digit, and be at most 128 characters "
                f"(for example {_suggestion(value)!r})"
            )


def _suggestion(value: object) -> str:
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", str(value)).strip("-._")[:128]
    return text or "model-1"


def manifest_digest(body: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces, UTF-8) of every field but digest."""
    content = {key: value for key, value in body.items() if key != "digest"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def seal_manifest(**fields: Any) -> SealManifest:
    """Build a manifest from its fields and stamp its digest."""
    unsigned = SealManifest.model_validate({**fields, "digest": ""})
    body = unsigned.model_dump(mode="json")
    return unsigned.model_copy(update={"digest": manifest_digest(body)})


def parse_manifest(text: str, where: str) -> SealManifest:
    """Read ``seal.json`` text, refusing anything malformed or whose digest does not match."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SealFormatError(
            f"{where}: not valid JSON ({exc}); is this a modelseal seal?"
        ) from exc
    if not isinstance(body, dict):
        raise SealFormatError(f"{where}: expected a JSON object, got {type(body).__name__}")
    if body.get("format") != SEAL_FORMAT:
        raise SealFormatError(
            f"{where}: seal format {body.get('format')!r} is not supported; "
            f"this modelseal reads format {SEAL_FORMAT}"
        )
    stated = body.get("digest")
    actual = manifest_digest(body)
    if stated != actual:
        raise IntegrityError(
            f"{where}: manifest digest is {actual}, seal.json says {stated}; "
            "seal.json was edited after sealing (restore it or re-seal the model)"
        )
    try:
        return SealManifest.model_validate(body)
    except ValidationError as exc:
        raise SealFormatError(f"{where}: malformed manifest: {exc}") from exc
