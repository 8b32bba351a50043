"""Resolving a SOURCE to a local seal: paths and file:// today, a clear refusal otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelseal import SourceError
from modelseal.sources import resolve_source
from tests.cli_process import run_modelseal


def test_a_path_and_a_file_uri_resolve_to_the_same_seal(demo_seal_path: Path) -> None:
    assert resolve_source(str(demo_seal_path)) == demo_seal_path
    assert resolve_source(demo_seal_path.as_uri()) == demo_seal_path


@pytest.mark.parametrize("source", ["s3://bucket/model.seal", "models:/digits/1", "https://x/y"])
def test_remote_sources_are_refused_with_what_to_do(source: str) -> None:
    with pytest.raises(SourceError, match="not supported by this version"):
        resolve_source(source)


def test_a_missing_path_and_an_unknown_scheme_are_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no seal there"):
        resolve_source(str(tmp_path / "absent.seal"))
    with pytest.raises(SourceError, match="unknown source scheme 'gopher'"):
        resolve_source("gopher://old/seal")


def test_verify_takes_a_file_uri(demo_seal_path: Path) -> None:
    result = run_modelseal("verify", demo_seal_path.as_uri())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("CONSISTENT")
