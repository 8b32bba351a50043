"""The fingerprint of this interpreter: complete, truthful, and free of framework imports."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from modelseal.environment.fingerprint import capture_environment, library_owner


def test_the_record_describes_this_interpreter() -> None:
    record = capture_environment()
    assert record.python.version == platform.python_version()
    assert record.platform.machine == platform.machine()
    assert record.numpy_version == np.__version__
    assert record.packages["numpy"] == np.__version__
    assert record.packages["pydantic"] == metadata.version("pydantic")
    assert len(record.packages) == len(
        {d.metadata["Name"].lower() for d in metadata.distributions()}
    )


def test_blas_pools_are_the_ones_threadpoolctl_sees() -> None:
    record = capture_environment()
    expected = sorted(
        (p["internal_api"], p["version"], p["num_threads"])
        for p in threadpool_info()
        if p["user_api"] == "blas"
    )
    assert sorted((p.internal_api, p.version, p.num_threads) for p in record.threadpools) == (
        expected
    )
    assert record.blas == record.threadpools, "only BLAS pools are recorded"
    owners = {pool.owner for pool in record.blas}
    assert "numpy" in owners, "numpy always loads its BLAS"
    assert "scipy" in owners, "scipy is installed here, so its BLAS is loaded and recorded"


CAPTURE_AFTER = """
import json, sys
for module in sys.argv[1:]:
    __import__(module)
from modelseal.environment.fingerprint import capture_environment
print(json.dumps([pool.model_dump() for pool in capture_environment().threadpools]))
"""


def test_the_blas_pools_do_not_depend_on_what_was_imported_before() -> None:
    def pools_after(*modules: str) -> list[dict[str, object]]:
        result = subprocess.run(
            [sys.executable, "-c", CAPTURE_AFTER, *modules],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        pools: list[dict[str, object]] = json.loads(result.stdout)
        return pools

    bare = pools_after()
    assert bare == pools_after("scipy.linalg")
    assert bare == pools_after("sklearn.linear_model", "torch")


@pytest.mark.parametrize(
    ("filepath", "owner"),
    [
        ("/v/lib/python3.11/site-packages/numpy.libs/libscipy_openblas64_-56d6093b.so", "numpy"),
        ("/v/lib/python3.11/site-packages/scipy.libs/libscipy_openblas-68440149.so", "scipy"),
        (
            "/v/lib/python3.11/site-packages/scikit_learn.libs/libgomp-a34b3233.so.1.0.0",
            "scikit-learn",
        ),
        ("/usr/lib/python3/dist-packages/torch/lib/libgomp-98b21ff3.so.1", "torch"),
        ("/usr/lib/x86_64-linux-gnu/libopenblas.so.0", None),
        ("/opt/conda/lib/libmkl_rt.so.2", None),
    ],
)
def test_library_owner_is_the_folder_under_site_packages(filepath: str, owner: str | None) -> None:
    assert library_owner(filepath) == owner


def test_cpu_flags_are_the_numerics_subset_of_proc_cpuinfo() -> None:
    if platform.system() != "Linux":
        pytest.skip("/proc/cpuinfo exists on Linux only")
    record = capture_environment()
    cpuinfo = open("/proc/cpuinfo").read()  # noqa: PTH123, SIM115
    flags_line = next(
        line for line in cpuinfo.splitlines() if line.startswith(("flags", "Features"))
    )
    all_flags = set(flags_line.split(":", 1)[1].split())
    assert set(record.cpu.flags) <= all_flags
    for flag in ("avx2", "fma", "sse4_2"):
        assert (flag in record.cpu.flags) == (flag in all_flags)
    assert "fpu" not in record.cpu.flags


def test_capture_imports_no_framework_even_when_installed() -> None:
    script = """
import json, sys
from modelseal.environment.fingerprint import capture_environment
record = capture_environment()
print(json.dumps({
    "imported": [m for m in ("torch", "onnxruntime", "sklearn") if m in sys.modules],
    "torch": record.torch and record.torch.model_dump(),
    "ort": record.onnxruntime and record.onnxruntime.model_dump(),
}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    seen = json.loads(result.stdout)
    assert seen["imported"] == []
    assert seen["torch"]["version"] == metadata.version("torch")
    assert seen["torch"]["tf32_matmul"] is None, "live torch state is read only when imported"
    assert seen["ort"]["version"] == metadata.version("onnxruntime")
    assert seen["ort"]["providers"] is None


def test_live_framework_state_is_recorded_once_imported() -> None:
    import onnxruntime
    import torch

    record = capture_environment()
    assert record.torch is not None and record.onnxruntime is not None
    assert record.torch.cuda == torch.version.cuda
    assert record.torch.tf32_matmul == torch.backends.cuda.matmul.allow_tf32
    assert record.torch.num_threads == torch.get_num_threads()
    assert record.onnxruntime.providers == onnxruntime.get_available_providers()


def test_numerics_environment_variables_are_captured() -> None:
    script = (
        "from modelseal.environment.fingerprint import capture_environment;"
        "print(capture_environment().model_dump_json())"
    )
    env = {
        "OMP_NUM_THREADS": "3",
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        "HOME": "/root",
        "PATH": "/usr/bin",
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    )
    record = json.loads(result.stdout)
    assert record["numerics_env"] == {"CUBLAS_WORKSPACE_CONFIG": ":4096:8", "OMP_NUM_THREADS": "3"}
