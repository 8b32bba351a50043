"""The acceptance pipeline, fitted and sealed once per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelseal import pack
from tests.tabular.dataset import golden_frame, patient_frame, patient_pipeline


@pytest.fixture(scope="session")
def patients() -> tuple[Any, Any]:
    return patient_frame()


@pytest.fixture(scope="session")
def pipeline(patients: tuple[Any, Any]) -> Any:
    return patient_pipeline(*patients)


@pytest.fixture(scope="session")
def golden(patients: tuple[Any, Any]) -> Any:
    return golden_frame(patients[0])


@pytest.fixture(scope="session")
def tabular_seal_path(tmp_path_factory: pytest.TempPathFactory, pipeline: Any, golden: Any) -> Path:
    """The pipeline sealed with a shuffled golden DataFrame; copy it before changing it."""
    sealed = pack(
        pipeline, runtime="sklearn", name="patients", version="1", golden=golden,
        output=tmp_path_factory.mktemp("tabular") / "patients.seal",
    )  # fmt: skip
    return sealed.root
