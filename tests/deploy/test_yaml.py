"""The YAML writer, read back by PyYAML (a YAML 1.1 reader, as most Kubernetes tools are)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from modelseal.deploy.yaml import dump, dump_all

TRICKY: dict[str, Any] = {
    "booleans-as-words": ["yes", "no", "on", "off", "y", "n", "true", "False", "null", "~"],
    "numbers-as-text": ["8080", "1.0", "1e3", "0x1F", "012", "1_000", ".5", "-1", "+1"],
    "punctuation": ["sha256:abc", "a: b", "#comment", "- item", "*ref", "&anchor", "{x}", ""],
    "paths-and-names": ["/v2/health/ready", "nvidia.com/gpu", "app.kubernetes.io/name"],
    "unicode": "drift ✓ naïve",
    "pem": "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
    "no-final-newline": "line one\nline two",
    "numbers": [0, 1, -5, 1.5, True, False, None],
    "empty": {"mapping": {}, "sequence": []},
    "list-of-mappings": [{"name": "a", "value": "1"}, {"name": "b", "nested": {"k": [1, 2]}}],
    "8080": "a key that looks like a number",
}


def test_what_is_written_reads_back_unchanged() -> None:
    assert yaml.safe_load(dump(TRICKY)) == TRICKY


def test_documents_are_separated_and_each_reads_back() -> None:
    documents: list[dict[str, Any]] = [
        {"kind": "A", "n": 1},
        {"kind": "B", "items": [{"x": "yes"}]},
    ]
    assert list(yaml.safe_load_all(dump_all(documents))) == documents


def test_plain_words_stay_plain_and_a_key_is_readable() -> None:
    text = dump({"image": "python", "path": "/v2/health/live", "port": 8080})
    assert text == "image: python\npath: /v2/health/live\nport: 8080\n"


def test_a_value_it_cannot_write_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot write set"):
        dump({"x": {1, 2}})
