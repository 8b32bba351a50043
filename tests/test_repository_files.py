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
