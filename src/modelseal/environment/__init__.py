"""The environment fingerprint: capture, serving lock, and diff ranked by numerical risk."""

from modelseal.environment.diff import DiffRow, diff_environments
from modelseal.environment.fingerprint import capture_environment
from modelseal.environment.lock import parse_lock
from modelseal.environment.record import EnvironmentRecord
from modelseal.environment.risk import Risk

__all__ = [
    "DiffRow",
    "EnvironmentRecord",
    "Risk",
    "capture_environment",
    "diff_environments",
    "parse_lock",
]
