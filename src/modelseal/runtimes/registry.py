"""Finding runtimes by name through the ``modelseal.runtimes`` entry point group."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from modelseal.errors import RuntimeLoadError, UsageError
from modelseal.runtimes.base import Runtime

ENTRY_POINT_GROUP = "modelseal.runtimes"


def available_runtimes() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def get_runtime(name: str, **options: object) -> Runtime:
    """The runtime registered as ``name``, built with ``options`` (e.g. ``half=True``)."""
    entry = _entry_point(name)
    try:
        runtime_class = entry.load()
    except ImportError as exc:
        raise RuntimeLoadError(
            f"runtime {name!r} needs a package that is not installed here: {exc}; "
            f"install the extra (pip install 'modelseal[{name}]')"
        ) from exc
    try:
        runtime: Runtime = runtime_class(**options)
    except TypeError as exc:
        raise UsageError(
            f"runtime {name!r} does not take the options {sorted(options)}: {exc}"
        ) from exc
    return runtime


def _entry_point(name: str) -> EntryPoint:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            return entry
    known = ", ".join(available_runtimes()) or "none (is modelseal installed?)"
    raise UsageError(f"unknown runtime {name!r}; available runtimes: {known}")
