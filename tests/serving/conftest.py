"""Seals of small numpy models that the serving tests hold the server with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelseal import pack
from modelseal.runtimes.numpy_function import NumpyFunction

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="session")
def slow_seal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every batch takes 0.2 s: a few concurrent clients fill the queue."""
    weights = {"seconds": np.array([0.2]), "scale": np.array([2.0])}
    seal = pack(
        NumpyFunction(source=FIXTURES / "slow_function.py", weights=weights),
        runtime="numpy", name="slow", version="1", golden=np.ones((2, 4)),
        output=tmp_path_factory.mktemp("slow") / "slow.seal",
    )  # fmt: skip
    return seal.root


@pytest.fixture(scope="session")
def gated_seal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Held in loading, verifying or warming by a gate file (see gated_function.py)."""
    seal = pack(
        NumpyFunction(source=FIXTURES / "gated_function.py", weights={"scale": np.array([3.0])}),
        runtime="numpy", name="gated", version="1", golden=np.ones((2, 4)),
        output=tmp_path_factory.mktemp("gated") / "gated.seal",
    )  # fmt: skip
    return seal.root
