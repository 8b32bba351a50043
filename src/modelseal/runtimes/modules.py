"""Which installed distributions a pickled object graph refers to.

A scikit-learn pipeline may hold an xgboost or lightgbm estimator: serving then needs
those packages too. Pickling the model once with a hook that sees every object tells us
which modules it refers to; numpy buffers go out of band, so this costs no array copies.
"""

from __future__ import annotations

import io
import pickle
import sys
from importlib import metadata
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
