"""Framework adapters behind one protocol, found by entry point."""

from modelseal.runtimes.base import ColumnsProvider, ExampleProvider, Loaded, Runtime
from modelseal.runtimes.registry import available_runtimes, get_runtime

__all__ = [
    "ColumnsProvider",
    "ExampleProvider",
    "Loaded",
    "Runtime",
    "available_runtimes",
    "get_runtime",
]
