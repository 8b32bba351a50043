"""Importing a library with the packages it would needlessly pull in refused."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelseal.runtimes.modules import import_refusing

WALKER = """
import importlib, pkgutil
# As sklearn.utils.all_estimators: import every package found, skipping those that fail.
for _info in pkgutil.walk_packages(__path__, prefix=__name__ + "."):
    importlib.import_module(_info.name) if not _info.ispkg else None
"""


@pytest.fixture
def walking_library(tmp_path: Path) -> Iterator[Path]:
    """``walkerlib`` imports all its packages at import; ``walkerlib.adapter`` imports the
    heavy ``heavylib``."""
    (tmp_path / "heavylib.py").write_text("LOADED = True\n")
    (tmp_path / "walkerlib").mkdir()
    (tmp_path / "walkerlib" / "__init__.py").write_text(WALKER)
    (tmp_path / "walkerlib" / "core.py").write_text("VALUE = 1\n")
    (tmp_path / "walkerlib" / "adapter").mkdir()
    (tmp_path / "walkerlib" / "adapter" / "__init__.py").write_text("import heavylib\n")
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [name for name in sys.modules if name.startswith(("walkerlib", "heavylib"))]:
        del sys.modules[name]


def test_the_refused_package_is_skipped_and_its_library_never_imported(
    walking_library: Path,
) -> None:
    module = import_refusing("walkerlib", ["walkerlib.adapter"])
    assert module.__name__ == "walkerlib"
    assert "walkerlib.core" in sys.modules
    assert "heavylib" not in sys.modules
    assert "walkerlib.adapter" not in sys.modules


def test_the_refusal_ends_with_the_import(walking_library: Path) -> None:
    import_refusing("walkerlib", ["walkerlib.adapter"])
    import walkerlib.adapter  # type: ignore[import-not-found]  # noqa: F401

    assert "heavylib" in sys.modules


def test_without_the_refusal_the_walk_imports_the_heavy_library(walking_library: Path) -> None:
    import_refusing("walkerlib", [])
    assert "heavylib" in sys.modules
