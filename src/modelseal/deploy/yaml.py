"""A small YAML writer for the manifests modelseal generates (no YAML library needed).

It writes block style only, and a string plainly only when no YAML 1.1 or 1.2 reader could
take it for anything but that string; every other string is written as a JSON string, which
is a valid YAML double-quoted scalar. Multi-line strings (a PEM key) become literal blocks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

INDENT = "  "
PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$")
# Words YAML 1.1 readers (PyYAML, many Kubernetes tools) take as booleans or null.
RESERVED = frozenset(
    {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", "nan", "inf"}
)


def dump_all(documents: Iterable[Mapping[str, Any]]) -> str:
    """Documents separated by ``---``, each ending in a newline."""
    return "---\n".join(dump(document) for document in documents)


def dump(document: Mapping[str, Any]) -> str:
    return "\n".join(_mapping(document, 0)) + "\n"


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, str):
        if PLAIN.match(value) and value.lower() not in RESERVED:
            return value
        return json.dumps(value)
    raise TypeError(f"cannot write {type(value).__name__} as a YAML scalar: {value!r}")


def _mapping(mapping: Mapping[str, Any], depth: int) -> list[str]:
    pad = INDENT * depth
    lines = []
    for key, value in mapping.items():
        head = f"{pad}{scalar(key)}:"
        lines += _value_lines(head, value, depth)
    return lines


def _sequence(items: Sequence[Any], depth: int) -> list[str]:
    pad = INDENT * depth
    lines = []
    for item in items:
        if isinstance(item, Mapping) and item:
            # The first key goes on the dash's line; the rest line up under it.
            nested = _mapping(item, depth + 1)
            lines.append(f"{pad}- {nested[0].lstrip()}")
            lines += nested[1:]
        else:
            lines += _value_lines(f"{pad}-", item, depth)
    return lines


def _value_lines(head: str, value: Any, depth: int) -> list[str]:
    if isinstance(value, Mapping):
        return [f"{head} {{}}"] if not value else [head, *_mapping(value, depth + 1)]
    if isinstance(value, (list, tuple)):
        return [f"{head} []"] if not value else [head, *_sequence(value, depth + 1)]
    if isinstance(value, str) and "\n" in value.rstrip("\n") and _literal_ok(value):
        chomp = "" if value.endswith("\n") and not value.endswith("\n\n") else "-"
        body = [f"{INDENT * (depth + 1)}{line}" if line else "" for line in value.splitlines()]
        return [f"{head} |{chomp}", *body]
    return [f"{head} {scalar(value)}"]


def _literal_ok(value: str) -> bool:
    lines = value.splitlines()
    return not value.startswith((" ", "\t")) and all(
        line == line.rstrip() and line.isprintable() for line in lines
    )
