"""Checks on the repository's own files that no unit test of the product would catch."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
CONFLICT_MARKER = re.compile(r"^(<{7} |>{7} |={7}$)", re.MULTILINE)


def tracked_text_files() -> list[Path]:
    listing = subprocess.run(
        ["git", "ls-files", "-z"],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    paths = [REPOSITORY_ROOT / name for name in listing.split("\0") if name]
    return [
        path
        for path in paths
        if path.suffix in {".py", ".md", ".toml", ".yaml", ".yml", ".txt", ".in", ".lock", ""}
    ]


def test_no_tracked_file_holds_a_merge_conflict_marker() -> None:
    files = tracked_text_files()
    assert any(path.name == "README.md" for path in files)
    marked = [
        str(path.relative_to(REPOSITORY_ROOT))
        for path in files
        if path.is_file() and CONFLICT_MARKER.search(path.read_text(errors="replace"))
    ]
    assert marked == []


def test_the_readme_command_list_names_every_command_exactly_once() -> None:
    import typer.main

    from modelseal.cli import app

    readme = (REPOSITORY_ROOT / "README.md").read_text()
    block = readme.split("## The command line", 1)[1].split("```", 2)[1]
    listed = re.findall(r"^modelseal ([a-z][a-z0-9-]*)", block, re.MULTILINE)
    commands = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert len(commands) >= 17, commands
    # verify has two forms (a seal here, or a running server by --url); the rest one line each.
    assert sorted(set(listed)) == commands
    assert {name: listed.count(name) for name in commands if listed.count(name) > 1} == {
        "verify": 2
    }
