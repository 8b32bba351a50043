"""Trial environments built with uv: isolation from this one, caching, and refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from modelseal.bisect.environments import BuildStatus, EnvironmentBuilder, find_uv
from modelseal.bisect.registry import pip_registry
from modelseal.bisect.trial import TrialLauncher, support_requirements

pytestmark = pytest.mark.slow
OLD_NUMPY = "1.26.4"


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> EnvironmentBuilder:
    folder = tmp_path_factory.mktemp("envs")
    return EnvironmentBuilder(find_uv(), pip_registry(), folder, support_requirements())


def test_a_trial_imports_only_from_its_environment(
    builder: EnvironmentBuilder, tmp_path: Path
) -> None:
    built = builder.build([f"numpy=={OLD_NUMPY}"])
    assert built.status in (BuildStatus.BUILT, BuildStatus.CACHED), built.detail
    assert built.python is not None
    launcher = TrialLauncher.prepare(tmp_path / "trial")
    # Even with this environment's packages offered through PYTHONPATH, the trial's own win.
    here = sysconfig.get_paths()["purelib"]
    result = subprocess.run(
        launcher.command(built.python, "env", "--json"),
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": here},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["numpy_version"] == OLD_NUMPY != np.__version__
    assert "scikit-learn" not in record["packages"]  # installed here, not there
    assert "uv" not in record["packages"]


def test_the_same_package_set_is_built_once(builder: EnvironmentBuilder) -> None:
    first = builder.build([f"numpy=={OLD_NUMPY}"])
    again = builder.build([f"numpy=={OLD_NUMPY}"])
    assert again.status is BuildStatus.CACHED
    assert (again.key, again.python) == (first.key, first.python)


def test_pins_that_cannot_hold_together_are_refused_with_uv_reason(
    builder: EnvironmentBuilder,
) -> None:
    refused = builder.build([f"numpy=={np.__version__}", "scipy==1.11.4"])
    assert refused.status is BuildStatus.UNRESOLVABLE
    assert refused.python is None
    assert refused.detail is not None and "scipy" in refused.detail
    assert not list(builder.folder.glob(f"*{refused.key}*"))
