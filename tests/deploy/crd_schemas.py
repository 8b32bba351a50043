"""Validation of KServe resources against the real CRD schemas, as strictly as an API server.

The schemas live beside the project (``../shared/kserve-crd-schemas`` from the repository
root, or from the main checkout when this one is a git worktree); tests skip where they
are absent. An API server with strict field validation rejects undeclared fields, so
every object schema with ``properties`` gets ``additionalProperties: false`` unless it
preserves unknown fields, and ``x-kubernetes-int-or-string`` becomes integer-or-string.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

REPO = Path(__file__).resolve().parents[2]
RELATIVE = Path("shared") / "kserve-crd-schemas"


def schemas_folder() -> Path | None:
    for root in (REPO, _main_checkout()):
        if root is not None and (root.parent / RELATIVE / "index.json").is_file():
            return root.parent / RELATIVE
    return None


def kserve_errors(folder: Path, document: dict[str, Any]) -> list[str]:
    """Every way ``document`` breaks its CRD's schema (empty when it is valid)."""
    index = json.loads((folder / "index.json").read_text())
    group, _, version = document["apiVersion"].partition("/")
    (entry,) = [
        e for e in index
        if (e["kind"], e["group"], e["version"]) == (document["kind"], group, version)
    ]  # fmt: skip
    schema = strict(json.loads((folder / entry["file"]).read_text()))
    validator = Draft7Validator(schema)
    return [
        f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict(value) for key, value in schema.items()}
    if schema.get("x-kubernetes-int-or-string"):
        result["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


def _main_checkout() -> Path | None:
    try:
        common = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--path-format=absolute", "--git-common-dir"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(common).parent
