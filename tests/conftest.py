"""Shared fixtures: real models sealed once per session, and a CLI runner."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelseal import Seal, pack
from modelseal.demo import DemoModel, train_demo_model


@pytest.fixture(scope="session")
def demo_model() -> DemoModel:
    return train_demo_model()


@pytest.fixture(scope="session")
def demo_seal_path(tmp_path_factory: pytest.TempPathFactory, demo_model: DemoModel) -> Path:
    """The demo digits model sealed once; copy it (``seal_copy``) before changing it."""
    seal = pack(
        demo_model.estimator,
        runtime="sklearn",
        name="digits",
        version="1.0.0",
        golden=demo_model.golden_inputs,
        output=tmp_path_factory.mktemp("seals") / "digits-1.0.0.seal",
    )
    return seal.root


@pytest.fixture
def seal_copy(demo_seal_path: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / demo_seal_path.name
    shutil.copytree(demo_seal_path, copy)
    yield copy


@pytest.fixture
def demo_seal(demo_seal_path: Path) -> Seal:
    from modelseal import open_seal

    return open_seal(demo_seal_path)


def mlp_weights(seed: int, sizes: tuple[int, ...] = (16, 32, 8)) -> list[np.ndarray]:
    """Float32 weights of a small MLP, reproducible from the seed."""
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]
