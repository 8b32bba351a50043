"""The start-up measurement of `modelseal k8s`/`dockerfile` meets the pickle gate.

The measurement runs `modelseal verify` in a fresh interpreter; an unsigned joblib seal is
refused there unless something vouches for it. The generated manifests and Dockerfile pin the
seal's digest (MODELSEAL_EXPECT_DIGEST), which vouches for it in the container, so the
measurement pins it too and the pickled model is loaded and timed as it will be there.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelseal import pack
from modelseal.demo import DemoModel
from modelseal.runtimes.sklearn import SklearnRuntime
from tests.cli_process import run_modelseal

pytestmark = pytest.mark.slow


def test_an_unsigned_joblib_seal_is_measured_under_the_digest_the_manifests_pin(
    demo_model: DemoModel, tmp_path: Path
) -> None:
    seal = pack(
        demo_model.estimator, runtime=SklearnRuntime(serialization="joblib"),
        name="digits-joblib", version="1", golden=demo_model.golden_inputs,
        output=tmp_path / "digits-joblib-1.seal",
    )  # fmt: skip
    refused = run_modelseal("verify", "--json", str(seal.root))
    assert refused.returncode == 2, "nobody vouched for the pickle: verify alone refuses it"

    out = tmp_path / "k8s"
    result = run_modelseal("k8s", str(seal.root), "--image", "digits:1", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "measured start-up" in result.stderr
    deployment = yaml.safe_load((out / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {entry["name"]: entry["value"] for entry in container["env"]}
    assert env["MODELSEAL_EXPECT_DIGEST"] == f"sha256:{seal.digest}"
    annotations = deployment["metadata"]["annotations"]
    assert float(annotations["modelseal.dev/startup-measured-seconds"]) > 0
