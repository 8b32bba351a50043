"""Golden reference data, tolerance policies and the comparison of outputs."""

from modelseal.golden.store import Golden, load_golden, save_golden

__all__ = ["Golden", "load_golden", "save_golden"]
