from __future__ import annotations

import pytest

from modelseal.environment.risk import (
    NUMERICAL_PACKAGES,
    Risk,
    VersionChange,
    numerical_why,
    version_change,
)


def test_risk_rank_sorts_critical_first() -> None:
    assert sorted([Risk.INFO, Risk.CRITICAL, Risk.WARNING], key=lambda risk: risk.rank) == [
        Risk.CRITICAL,
        Risk.WARNING,
        Risk.INFO,
    ]


def test_risk_values_are_the_report_words() -> None:
    assert [risk.value for risk in Risk] == ["critical", "warning", "info"]


@pytest.mark.parametrize(
    ("packed", "current", "expected"),
    [
        ("1.26.4", "1.26.4", VersionChange.SAME),
        ("1.0", "1.0.0", VersionChange.SAME),
        ("2.13.0", "2.13.0+cpu", VersionChange.LOCAL),
        ("2.13.0+cpu", "2.13.0+cu121", VersionChange.LOCAL),
        ("2.13+cpu", "2.13.0+cu121", VersionChange.LOCAL),
        ("1.9.1", "1.9.2", VersionChange.PATCH),
        ("1.9.1", "1.9.1.1", VersionChange.PATCH),
        ("2.1.0.dev20240101", "2.1.0", VersionChange.PATCH),
        ("1.26.4", "1.26.4.post1", VersionChange.PATCH),
        ("2.0.0rc1", "2.0.0", VersionChange.PATCH),
        ("1.3.2", "1.9.1", VersionChange.MINOR),
        ("1.26.4", "2.4.6", VersionChange.MAJOR),
        ("2.4.6", "1.26.4", VersionChange.MAJOR),
        ("1!1.0", "1.0", VersionChange.MAJOR),
        ("abc", "1.0", VersionChange.UNPARSEABLE),
        ("1.0", "not a version", VersionChange.UNPARSEABLE),
        ("abc", "abc", VersionChange.SAME),
    ],
)
def test_version_change(packed: str, current: str, expected: VersionChange) -> None:
    assert version_change(packed, current) is expected


@pytest.mark.parametrize(
    "name",
    [
        "numpy",
        "scipy",
        "scikit-learn",
        "torch",
        "onnxruntime",
        "onnxruntime-gpu",
        "xgboost",
        "lightgbm",
        "catboost",
        "tensorflow",
        "tensorflow-cpu",
        "jax",
        "jaxlib",
        "pandas",
        "numba",
        "llvmlite",
        "mkl",
        "scipy-openblas32",
        "scipy-openblas64",
        "nvidia-cublas-cu12",
        "nvidia-cudnn-cu12",
        "nvidia-cufft-cu12",
        "nvidia-cuda-runtime-cu12",
        "nvidia-nccl-cu12",
        "Scikit_Learn",
    ],
)
def test_numerical_packages_have_a_reason(name: str) -> None:
    why = numerical_why(name)
    assert why is not None
    assert len(why) > 10


@pytest.mark.parametrize("name", ["requests", "rich", "nvidia-ml-py", "numpydoc"])
def test_other_packages_are_not_numerical(name: str) -> None:
    assert numerical_why(name) is None


def test_numerical_table_keys_are_normalized_names_or_patterns() -> None:
    for name in NUMERICAL_PACKAGES:
        assert name == name.lower()
        assert "_" not in name
