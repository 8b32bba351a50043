"""Drift bisect: which change since sealing (a package version, a numerics setting) breaks
a seal's replay here, found by replaying it in throw-away environments that revert subsets
of the changes."""

from modelseal.bisect.bisector import DEFAULT_MAX_ENVS, bisect_seal
from modelseal.bisect.report import BisectReport

__all__ = ["DEFAULT_MAX_ENVS", "BisectReport", "bisect_seal"]
