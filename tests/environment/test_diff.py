from __future__ import annotations

import json

import pytest

from modelseal.environment.diff import DiffRow, diff_environments
from modelseal.environment.fingerprint import capture_environment
from modelseal.environment.lock import parse_lock
from modelseal.environment.record import (
    EnvironmentRecord,
    GpuInfo,
    OnnxRuntimeInfo,
    ThreadPool,
    TorchInfo,
)
from modelseal.environment.risk import Risk
from modelseal.errors import SealFormatError


@pytest.fixture(scope="module")
def here() -> EnvironmentRecord:
    return capture_environment()


def with_packages(record: EnvironmentRecord, **versions: str | None) -> EnvironmentRecord:
    """``record`` with packages set (a version) or removed (None); names use _ for -."""
    packages = dict(record.packages)
    for key, version in versions.items():
        name = key.replace("_", "-")
        if version is None:
            packages.pop(name, None)
        else:
            packages[name] = version
    return record.model_copy(update={"packages": packages})


def by_subject(rows: list[DiffRow]) -> dict[str, DiffRow]:
    subjects = [row.subject for row in rows]
    assert len(subjects) == len(set(subjects)), subjects
    return {row.subject: row for row in rows}


def only_row(rows: list[DiffRow]) -> DiffRow:
    assert len(rows) == 1, rows
    return rows[0]


def blas(
    vendor: str = "openblas",
    version: str | None = "0.3.27",
    num_threads: int = 8,
    architecture: str | None = "Haswell",
    owner: str | None = None,
) -> ThreadPool:
    return ThreadPool(
        user_api="blas",
        internal_api=vendor,
        version=version,
        num_threads=num_threads,
        architecture=architecture,
        library=f"lib{vendor}.so",
        owner=owner,
    )


def openmp(num_threads: int) -> ThreadPool:
    return ThreadPool(
        user_api="openmp",
        internal_api="openmp",
        version=None,
        num_threads=num_threads,
        library="libgomp.so.1",
    )


# --- identical records -------------------------------------------------------------------


def test_identical_records_have_no_rows(here: EnvironmentRecord) -> None:
    assert diff_environments(here, here.model_copy(deep=True), None) == []
    assert diff_environments(here, here, dict(here.packages)) == []


def test_captured_at_is_never_a_row(here: EnvironmentRecord) -> None:
    later = here.model_copy(update={"captured_at": "2099-01-01T00:00:00+00:00"})
    assert diff_environments(here, later, None) == []


# --- packages ----------------------------------------------------------------------------


def test_numerical_major_change_is_critical(here: EnvironmentRecord) -> None:
    packed = with_packages(here, numpy="2.4.6")
    current = with_packages(here, numpy="1.26.4")
    row = only_row(diff_environments(packed, current, {"numpy": "2.4.6"}))
    assert (row.subject, row.category, row.packed, row.current) == (
        "numpy",
        "package",
        "2.4.6",
        "1.26.4",
    )
    assert row.risk is Risk.CRITICAL
    assert "major" in row.why


def test_numerical_minor_change_is_critical(here: EnvironmentRecord) -> None:
    packed = with_packages(here, scikit_learn="1.3.2")
    current = with_packages(here, scikit_learn="1.9.1")
    row = only_row(diff_environments(packed, current, {"scikit-learn": "1.3.2"}))
    assert row.risk is Risk.CRITICAL
    assert "minor" in row.why


def test_numerical_patch_change_is_a_warning(here: EnvironmentRecord) -> None:
    packed = with_packages(here, scikit_learn="1.9.1")
    current = with_packages(here, scikit_learn="1.9.2")
    row = only_row(diff_environments(packed, current, {"scikit-learn": "1.9.1"}))
    assert row.subject == "scikit-learn"
    assert row.risk is Risk.WARNING
    assert "patch" in row.why


def test_build_variant_change_is_a_warning(here: EnvironmentRecord) -> None:
    packed = with_packages(here, torch="2.13.0+cpu")
    current = with_packages(here, torch="2.13.0+cu121")
    row = only_row(diff_environments(packed, current, {"torch": "2.13.0+cpu"}))
    assert (row.packed, row.current) == ("2.13.0+cpu", "2.13.0+cu121")
    assert row.risk is Risk.WARNING
    assert "build variant" in row.why


def test_missing_numerical_package_is_critical(here: EnvironmentRecord) -> None:
    packed = with_packages(here, numpy="2.4.6")
    current = with_packages(here, numpy=None)
    row = only_row(diff_environments(packed, current, {"numpy": "2.4.6"}))
    assert (row.subject, row.packed, row.current) == ("numpy", "2.4.6", None)
    assert row.risk is Risk.CRITICAL
    assert "not installed here" in row.why


def test_locked_other_package_change_is_a_warning(here: EnvironmentRecord) -> None:
    packed = with_packages(here, requests="2.31.0")
    current = with_packages(here, requests="2.32.0")
    row = only_row(diff_environments(packed, current, {"requests": "2.31.0"}))
    assert row.risk is Risk.WARNING
    assert row.category == "package"


def test_locked_other_package_missing_is_a_warning(here: EnvironmentRecord) -> None:
    packed = with_packages(here, joblib="1.4.2")
    current = with_packages(here, joblib=None)
    row = only_row(diff_environments(packed, current, {"joblib": "1.4.2"}))
    assert row.risk is Risk.WARNING
    assert "serving may fail to import it" in row.why


def test_packages_outside_the_lock_are_info(here: EnvironmentRecord) -> None:
    packed = with_packages(here, rich="13.0.0", leftover="1.0", added=None)
    current = with_packages(here, rich="14.0.0", leftover=None, added="2.0")
    rows = by_subject(diff_environments(packed, current, {"numpy": here.packages["numpy"]}))
    assert set(rows) == {"rich", "leftover", "added"}
    assert {row.risk for row in rows.values()} == {Risk.INFO}
    assert (rows["leftover"].packed, rows["leftover"].current) == ("1.0", None)
    assert (rows["added"].packed, rows["added"].current) == (None, "2.0")


def test_numerical_package_outside_the_lock_is_info(here: EnvironmentRecord) -> None:
    packed = with_packages(here, scipy="1.11.0")
    current = with_packages(here, scipy="1.17.1")
    row = only_row(diff_environments(packed, current, {"requests": "2.31.0"}))
    assert row.subject == "scipy"
    assert row.risk is Risk.INFO


def test_without_a_lock_numerical_packages_count_as_locked(here: EnvironmentRecord) -> None:
    packed = with_packages(here, numpy="2.4.6", requests="2.31.0", pandas="2.2.0")
    current = with_packages(here, numpy="1.26.4", requests="2.32.0", pandas=None)
    rows = by_subject(diff_environments(packed, current, None))
    assert rows["numpy"].risk is Risk.CRITICAL
    assert rows["pandas"].risk is Risk.CRITICAL
    assert rows["requests"].risk is Risk.INFO


def test_without_a_lock_a_numerical_package_new_here_is_info(here: EnvironmentRecord) -> None:
    packed = with_packages(here, jax=None)
    current = with_packages(here, jax="0.4.30")
    row = only_row(diff_environments(packed, current, None))
    assert (row.subject, row.packed, row.risk) == ("jax", None, Risk.INFO)


def test_packed_version_falls_back_to_the_lock(here: EnvironmentRecord) -> None:
    packed = with_packages(here, xgboost=None)
    current = with_packages(here, xgboost="2.1.0")
    row = only_row(diff_environments(packed, current, {"XGBoost": "1.7.6"}))
    assert (row.subject, row.packed, row.current) == ("xgboost", "1.7.6", "2.1.0")
    assert row.risk is Risk.CRITICAL


def test_cuda_library_wheels_are_numerical(here: EnvironmentRecord) -> None:
    packed = with_packages(here, nvidia_cublas_cu12="12.1.3.1")
    current = with_packages(here, nvidia_cublas_cu12="12.4.5.8")
    row = only_row(diff_environments(packed, current, None))
    assert row.subject == "nvidia-cublas-cu12"
    assert row.risk is Risk.CRITICAL


# --- python, platform, cpu ---------------------------------------------------------------


def test_python_minor_change_is_critical(here: EnvironmentRecord) -> None:
    packed = here.model_copy(
        update={"python": here.python.model_copy(update={"version": "3.11.9"})}
    )
    current = here.model_copy(
        update={"python": here.python.model_copy(update={"version": "3.12.4"})}
    )
    row = only_row(diff_environments(packed, current, None))
    assert (row.subject, row.category, row.risk) == ("python version", "python", Risk.CRITICAL)


def test_python_patch_change_is_a_warning(here: EnvironmentRecord) -> None:
    packed = here.model_copy(
        update={"python": here.python.model_copy(update={"version": "3.11.7"})}
    )
    current = here.model_copy(
        update={"python": here.python.model_copy(update={"version": "3.11.9"})}
    )
    row = only_row(diff_environments(packed, current, None))
    assert (row.packed, row.current, row.risk) == ("3.11.7", "3.11.9", Risk.WARNING)


def test_python_implementation_is_critical_and_compiler_is_info(here: EnvironmentRecord) -> None:
    python = here.python.model_copy(update={"implementation": "PyPy", "compiler": "Clang 17"})
    rows = by_subject(diff_environments(here, here.model_copy(update={"python": python}), None))
    assert set(rows) == {"python implementation", "python compiler"}
    assert rows["python implementation"].risk is Risk.CRITICAL
    assert rows["python compiler"].risk is Risk.INFO


def test_architecture_change_is_critical(here: EnvironmentRecord) -> None:
    machine = "aarch64" if here.platform.machine != "aarch64" else "x86_64"
    platform = here.platform.model_copy(update={"machine": machine})
    row = only_row(diff_environments(here, here.model_copy(update={"platform": platform}), None))
    assert (row.subject, row.category) == ("platform machine", "platform")
    assert (row.packed, row.current) == (here.platform.machine, machine)
    assert row.risk is Risk.CRITICAL


def test_platform_rules(here: EnvironmentRecord) -> None:
    platform = here.platform.model_copy(
        update={"system": "Darwin", "libc_version": "0.1", "release": "0.0.1-test"}
    )
    rows = by_subject(diff_environments(here, here.model_copy(update={"platform": platform}), None))
    assert rows["platform system"].risk is Risk.CRITICAL
    assert rows["platform libc_version"].risk is Risk.WARNING
    assert rows["platform release"].risk is Risk.INFO


def test_cpu_flag_change_lists_the_flags(here: EnvironmentRecord) -> None:
    packed = here.model_copy(update={"cpu": here.cpu.model_copy(update={"flags": ["avx2", "fma"]})})
    current = here.model_copy(
        update={"cpu": here.cpu.model_copy(update={"flags": ["avx2", "avx512f", "avx512bw"]})}
    )
    row = only_row(diff_environments(packed, current, None))
    assert (row.subject, row.category, row.risk) == ("cpu flags", "cpu", Risk.WARNING)
    assert row.packed == "fma"
    assert row.current == "avx512bw, avx512f"
    assert "SIMD" in row.why


def test_cpu_model_and_count_are_info(here: EnvironmentRecord) -> None:
    cpu = here.cpu.model_copy(update={"model": "Some Other CPU", "count": here.cpu.count + 7})
    rows = by_subject(diff_environments(here, here.model_copy(update={"cpu": cpu}), None))
    assert set(rows) == {"cpu model", "cpu count"}
    assert {row.risk for row in rows.values()} == {Risk.INFO}


# --- thread pools and environment variables ----------------------------------------------


def test_blas_vendor_change_is_critical(here: EnvironmentRecord) -> None:
    packed = here.model_copy(update={"threadpools": [blas("openblas")]})
    current = here.model_copy(update={"threadpools": [blas("mkl", version="2024.2")]})
    row = only_row(diff_environments(packed, current, None))
    assert (row.subject, row.category) == ("blas vendors", "blas")
    assert (row.packed, row.current, row.risk) == ("openblas", "mkl", Risk.CRITICAL)


def test_blas_thread_count_change_is_a_warning(here: EnvironmentRecord) -> None:
    packed = here.model_copy(update={"threadpools": [blas(num_threads=8)]})
    current = here.model_copy(update={"threadpools": [blas(num_threads=1)]})
    row = only_row(diff_environments(packed, current, None))
    assert row.subject == "blas openblas num_threads"
    assert (row.packed, row.current, row.risk) == ("8", "1", Risk.WARNING)


def test_blas_architecture_and_version_changes_are_warnings(here: EnvironmentRecord) -> None:
    packed = here.model_copy(update={"threadpools": [blas(architecture="Haswell")]})
    current = here.model_copy(
        update={"threadpools": [blas(architecture="SkylakeX", version="0.3.28")]}
    )
    rows = by_subject(diff_environments(packed, current, None))
    assert set(rows) == {"blas openblas architecture", "blas openblas version"}
    assert (
        rows["blas openblas architecture"].packed,
        rows["blas openblas architecture"].current,
    ) == (
        "Haswell",
        "SkylakeX",
    )
    assert {row.risk for row in rows.values()} == {Risk.WARNING}


def test_a_second_blas_vendor_is_critical(here: EnvironmentRecord) -> None:
    packed = here.model_copy(update={"threadpools": [blas("openblas")]})
    current = here.model_copy(update={"threadpools": [blas("openblas"), blas("mkl")]})
    row = only_row(diff_environments(packed, current, None))
    assert (row.packed, row.current, row.risk) == ("openblas", "mkl, openblas", Risk.CRITICAL)


def test_openmp_pools_of_older_records_are_not_compared(here: EnvironmentRecord) -> None:
    # Whether an OpenMP runtime was loaded depended on what the process had imported.
    packed = here.model_copy(update={"threadpools": [blas(), openmp(8)]})
    assert diff_environments(packed, here.model_copy(update={"threadpools": [blas()]}), None) == []
    current = here.model_copy(update={"threadpools": [blas(), openmp(2)]})
    assert diff_environments(packed, current, None) == []


def test_blas_values_name_whose_copy_changed_when_both_records_know(
    here: EnvironmentRecord,
) -> None:
    packed = [blas(version="0.3.30", owner="numpy"), blas(version="0.3.31", owner="scipy")]
    current = [blas(version="0.3.30", owner="numpy"), blas(version="0.3.32", owner="scipy")]
    row = only_row(
        diff_environments(
            here.model_copy(update={"threadpools": packed}),
            here.model_copy(update={"threadpools": current}),
            None,
        )
    )
    assert row.subject == "blas openblas version"
    assert (row.packed, row.current) == (
        "0.3.30 (numpy), 0.3.31 (scipy)",
        "0.3.30 (numpy), 0.3.32 (scipy)",
    )
    assert row.risk is Risk.WARNING


def test_blas_values_stay_plain_against_a_record_without_owners(here: EnvironmentRecord) -> None:
    old = here.model_copy(update={"threadpools": [blas(version="0.3.30")]})
    new = here.model_copy(update={"threadpools": [blas(version="0.3.30", owner="numpy")]})
    assert diff_environments(old, new, None) == []


def test_numerics_env_changes_are_warnings(here: EnvironmentRecord) -> None:
    packed = here.model_copy(
        update={"numerics_env": {"OPENBLAS_NUM_THREADS": "4", "MKL_CBWR": "AVX2"}}
    )
    current = here.model_copy(
        update={"numerics_env": {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "2"}}
    )
    rows = by_subject(diff_environments(packed, current, None))
    assert set(rows) == {"env OPENBLAS_NUM_THREADS", "env MKL_CBWR", "env OMP_NUM_THREADS"}
    assert {row.category for row in rows.values()} == {"env"}
    assert {row.risk for row in rows.values()} == {Risk.WARNING}
    assert (rows["env OPENBLAS_NUM_THREADS"].packed, rows["env OPENBLAS_NUM_THREADS"].current) == (
        "4",
        "1",
    )
    assert rows["env MKL_CBWR"].current is None
    assert rows["env OMP_NUM_THREADS"].packed is None


# --- accelerators ------------------------------------------------------------------------


def with_torch(record: EnvironmentRecord, **fields: object) -> EnvironmentRecord:
    base = TorchInfo(version="2.13.0", cuda="12.1", cudnn="90100")
    return record.model_copy(update={"torch": base.model_copy(update=fields)})


@pytest.mark.parametrize(
    ("packed_cuda", "current_cuda", "risk"),
    [
        ("12.1", None, Risk.CRITICAL),
        (None, "12.1", Risk.CRITICAL),
        ("12.1", "12.4", Risk.CRITICAL),
        ("11.8", "12.1", Risk.CRITICAL),
        ("12.1.0", "12.1.1", Risk.WARNING),
    ],
)
def test_torch_cuda_rules(
    here: EnvironmentRecord, packed_cuda: str | None, current_cuda: str | None, risk: Risk
) -> None:
    packed = with_torch(here, cuda=packed_cuda)
    current = with_torch(here, cuda=current_cuda)
    row = only_row(diff_environments(packed, current, None))
    assert (row.subject, row.category, row.risk) == ("torch cuda", "cuda", risk)


@pytest.mark.parametrize(
    ("packed_cudnn", "current_cudnn", "risk"),
    [
        ("8902", "90100", Risk.CRITICAL),
        ("8.9.2.26", "9.1.0.70", Risk.CRITICAL),
        ("90100", "90300", Risk.WARNING),
        ("9.1.0.70", "9.1.1.17", Risk.WARNING),
        ("90100", None, Risk.WARNING),
    ],
)
def test_cudnn_rules(
    here: EnvironmentRecord, packed_cudnn: str | None, current_cudnn: str | None, risk: Risk
) -> None:
    packed = with_torch(here, cudnn=packed_cudnn)
    current = with_torch(here, cudnn=current_cudnn)
    row = only_row(diff_environments(packed, current, None))
    assert (row.subject, row.category, row.risk) == ("torch cudnn", "cuda", risk)


def test_torch_flags_are_warnings_only_when_both_recorded(here: EnvironmentRecord) -> None:
    packed = with_torch(here, tf32_matmul=False, cudnn_deterministic=True, tf32_cudnn=None)
    current = with_torch(here, tf32_matmul=True, cudnn_deterministic=True, tf32_cudnn=True)
    row = only_row(diff_environments(packed, current, None))
    assert (row.subject, row.category) == ("torch tf32_matmul", "cuda")
    assert (row.packed, row.current, row.risk) == ("False", "True", Risk.WARNING)


def test_no_cuda_rows_when_one_side_has_no_torch(here: EnvironmentRecord) -> None:
    packed = with_torch(here)
    current = here.model_copy(update={"torch": None})
    assert diff_environments(packed, current, {}) == []


def test_gpu_rules(here: EnvironmentRecord) -> None:
    a100 = GpuInfo(name="NVIDIA A100-SXM4-80GB", compute_capability="8.0")
    h100 = GpuInfo(name="NVIDIA H100 80GB HBM3", compute_capability="9.0")
    packed = here.model_copy(update={"gpus": [a100]})
    current = here.model_copy(update={"gpus": [h100, h100]})
    rows = by_subject(diff_environments(packed, current, None))
    assert set(rows) == {"gpu count", "gpu names", "gpu compute capability"}
    assert {row.category for row in rows.values()} == {"gpu"}
    assert {row.risk for row in rows.values()} == {Risk.WARNING}
    assert (rows["gpu count"].packed, rows["gpu count"].current) == ("1", "2")
    assert (rows["gpu compute capability"].packed, rows["gpu compute capability"].current) == (
        "8.0",
        "9.0",
    )


def test_same_gpus_with_other_memory_readings_have_no_rows(here: EnvironmentRecord) -> None:
    packed = here.model_copy(update={"gpus": [GpuInfo(name="T4", memory_mib=15000)]})
    current = here.model_copy(update={"gpus": [GpuInfo(name="T4", memory_mib=15360)]})
    assert diff_environments(packed, current, None) == []


def test_onnxruntime_rules(here: EnvironmentRecord) -> None:
    packed = here.model_copy(
        update={
            "onnxruntime": OnnxRuntimeInfo(
                version="1.18.0", distribution="onnxruntime", providers=["CPUExecutionProvider"]
            )
        }
    )
    current = here.model_copy(
        update={
            "onnxruntime": OnnxRuntimeInfo(
                version="1.18.0",
                distribution="onnxruntime-gpu",
                providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
            )
        }
    )
    rows = by_subject(diff_environments(packed, current, None))
    assert set(rows) == {"onnxruntime distribution", "onnxruntime providers"}
    assert {row.risk for row in rows.values()} == {Risk.WARNING}
    assert rows["onnxruntime providers"].current == "CUDAExecutionProvider, CPUExecutionProvider"


def test_onnxruntime_providers_not_recorded_have_no_row(here: EnvironmentRecord) -> None:
    info = OnnxRuntimeInfo(version="1.18.0", distribution="onnxruntime", providers=None)
    packed = here.model_copy(update={"onnxruntime": info})
    current = here.model_copy(
        update={"onnxruntime": info.model_copy(update={"providers": ["CPUExecutionProvider"]})}
    )
    assert diff_environments(packed, current, None) == []


# --- ordering and serialization ----------------------------------------------------------


def test_rows_are_ranked_critical_first_then_category_then_subject(
    here: EnvironmentRecord,
) -> None:
    packed = with_packages(here, numpy="2.4.6", rich="13.0.0", scipy="1.11.0")
    packed = packed.model_copy(
        update={"threadpools": [blas(num_threads=8)], "numerics_env": {"OMP_NUM_THREADS": "4"}}
    )
    current = with_packages(here, numpy="1.26.4", rich="14.0.0", scipy="1.17.1")
    python = here.python.model_copy(update={"version": "3.99.0", "compiler": "other"})
    current = current.model_copy(
        update={"threadpools": [blas(num_threads=2)], "numerics_env": {}, "python": python}
    )
    rows = diff_environments(packed, current, None)
    assert [(row.risk, row.subject) for row in rows] == [
        (Risk.CRITICAL, "numpy"),
        (Risk.CRITICAL, "scipy"),
        (Risk.CRITICAL, "python version"),
        (Risk.WARNING, "blas openblas num_threads"),
        (Risk.WARNING, "env OMP_NUM_THREADS"),
        (Risk.INFO, "rich"),
        (Risk.INFO, "python compiler"),
    ]


def test_rows_round_trip_through_plain_json(here: EnvironmentRecord) -> None:
    packed = with_packages(here, numpy="2.4.6", leftover="1.0")
    current = with_packages(here, numpy="1.26.4", leftover=None)
    rows = diff_environments(packed, current, None)
    assert len(rows) == 2
    for row in rows:
        dumped = row.model_dump(mode="json")
        text = json.dumps(dumped)
        assert json.loads(text) == dumped
        assert dumped["risk"] in ("critical", "warning", "info")
        assert DiffRow.model_validate_json(text) == row


# --- parse_lock --------------------------------------------------------------------------


def test_parse_lock_reads_pins_markers_comments_and_local_versions() -> None:
    lock = parse_lock(
        [
            "# sealed by modelseal",
            "",
            "numpy==1.26.4 ; python_version < '3.0'",
            "Scikit_Learn==1.9.1  # the model",
            "torch==2.13.0+cpu",
            "   ",
            "onnxruntime===1.18.0",
        ]
    )
    assert lock == {
        "numpy": "1.26.4",
        "scikit-learn": "1.9.1",
        "torch": "2.13.0+cpu",
        "onnxruntime": "1.18.0",
    }


def test_parse_lock_prefers_the_pin_whose_marker_holds_here() -> None:
    lock = parse_lock(
        [
            "numpy==1.26.4 ; python_version < '3.0'",
            "numpy==2.4.6 ; python_version >= '3.0'",
            "scipy==1.17.1 ; python_version >= '3.0'",
            "scipy==1.11.0 ; python_version < '3.0'",
        ]
    )
    assert lock == {"numpy": "2.4.6", "scipy": "1.17.1"}


@pytest.mark.parametrize(
    "line",
    [
        "numpy>=1.26",
        "numpy",
        "numpy==1.*",
        "numpy==1.26.4,<2",
        "-e .",
        "--index-url https://example.org/simple",
        "pkg @ https://example.org/pkg-1.0.tar.gz",
    ],
)
def test_parse_lock_rejects_lines_that_are_not_exact_pins(line: str) -> None:
    with pytest.raises(SealFormatError, match=r"line 2: .*not an exact pin") as caught:
        parse_lock(["numpy==1.26.4", line])
    assert line.split()[0] in str(caught.value)
