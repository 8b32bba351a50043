"""Modules a model refers to, and modules a runtime must not pull in.

A scikit-learn pipeline may hold an xgboost or lightgbm estimator: serving then needs
those packages too. Pickling the model once with a hook that sees every object tells us
which modules it refers to; numpy buffers go out of band, so this costs no array copies.

The other way round, importing a library can import much more than it uses: ``skops.io``
walks every scikit-learn package at import (``sklearn.utils.all_estimators``), and one of
them, scikit-learn's array-API adapter for torch, imports torch when it is installed (2 s
and 300 MiB for a server that never runs torch). ``import_refusing`` imports a module with
such packages refused; the walk skips a package that cannot be imported.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import io
import pickle
import sys
from collections.abc import Collection, Sequence
from importlib import metadata
from types import ModuleType
from typing import Any


def referenced_distributions(model: object) -> list[str]:
    """Distribution names providing the modules that ``model``'s object graph refers to."""
    modules = _referenced_top_level_modules(model)
    providers = metadata.packages_distributions()
    names = {dist for module in modules for dist in providers.get(module, [])}
    return sorted(names)


def _referenced_top_level_modules(model: object) -> set[str]:
    modules: set[str] = set()

    class _Recorder(pickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            owner = obj if isinstance(obj, type) else type(obj)
            modules.add(owner.__module__.split(".", 1)[0])
            return NotImplemented

    _Recorder(io.BytesIO(), protocol=5, buffer_callback=lambda _buffer: None).dump(model)
    return {module for module in modules if module not in sys.stdlib_module_names}


def import_refusing(module: str, refused: Collection[str]) -> ModuleType:
    """``importlib.import_module(module)``, with every module named in ``refused`` (and its
    submodules) failing to import, as if absent, unless it was imported already."""
    if module in sys.modules:
        return sys.modules[module]
    finder = _Refuse(frozenset(name for name in refused if name not in sys.modules))
    sys.meta_path.insert(0, finder)
    try:
        return importlib.import_module(module)
    finally:
        sys.meta_path.remove(finder)


class _Refuse(importlib.abc.MetaPathFinder):
    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if any(fullname == name or fullname.startswith(name + ".") for name in self.names):
            raise ModuleNotFoundError(f"{fullname} is not imported here", name=fullname)
        return None
