"""The CLI in real subprocesses: output shapes and exit codes."""

from __future__ import annotations

import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

import joblib
import numpy as np

from modelseal.demo import DemoModel
from tests.cli_process import run_modelseal as modelseal


def test_inspect_json_shows_the_digest_and_every_file_sha256(seal_copy: Path) -> None:
    result = modelseal("inspect", "--json", str(seal_copy))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    manifest = json.loads((seal_copy / "seal.json").read_text())
    assert report["digest"] == manifest["digest"]
    files = {entry["path"]: entry["sha256"] for entry in report["files"]}
    on_disk = [p for p in seal_copy.rglob("*") if p.is_file() and p.name != "seal.json"]
    assert len(files) == len(on_disk) == 5
    for path in on_disk:
        relative = path.relative_to(seal_copy).as_posix()
        assert files[relative] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_inspect_exits_2_naming_a_changed_model_file(seal_copy: Path) -> None:
    model_file = seal_copy / "model" / "model.skops"
    data = bytearray(model_file.read_bytes())
    data[100] ^= 0xFF
    model_file.write_bytes(bytes(data))
    result = modelseal("inspect", str(seal_copy))
    assert result.returncode == 2
    assert "model/model.skops" in result.stderr
    assert "Traceback" not in result.stderr


def test_inspect_exits_2_naming_the_digest_of_an_edited_manifest(seal_copy: Path) -> None:
    manifest_file = seal_copy / "seal.json"
    manifest_file.write_text(manifest_file.read_text().replace('"1.0.0"', '"1.0.1"'))
    result = modelseal("inspect", "--json", str(seal_copy))
    assert result.returncode == 2
    assert "digest" in result.stderr
    document = json.loads(result.stdout)
    assert document["exit_code"] == 2
    assert document["error"]["type"] == "IntegrityError"
    assert "seal.json was edited after sealing" in document["error"]["message"]


def test_inspect_lists_each_blas_pool_once_with_whose_copy_it_is(seal_copy: Path) -> None:
    result = modelseal("inspect", str(seal_copy))
    assert result.returncode == 0, result.stderr
    packed_on = next(line for line in result.stdout.splitlines() if line.startswith("packed on"))
    pools = json.loads((seal_copy / "environment.json").read_text())["threadpools"]
    labels = {
        f"{pool['internal_api']} {pool['version']} ({pool['owner']}) {pool['num_threads']} threads"
        for pool in pools
    }
    assert {"numpy", "scipy"} <= {pool["owner"] for pool in pools}
    for label in labels:
        assert packed_on.count(label) == 1, (label, packed_on)


def test_version_prints_the_package_version() -> None:
    result = modelseal("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"modelseal {metadata.version('modelseal')}"


def test_pack_from_files_then_inspect(demo_model: DemoModel, tmp_path: Path) -> None:
    model_file = tmp_path / "digits.joblib"
    joblib.dump(demo_model.estimator, model_file)
    np.save(tmp_path / "golden.npy", demo_model.golden_inputs[:16])
    out = tmp_path / "digits.seal"
    result = modelseal(
        "pack", str(model_file), "--runtime", "sklearn", "--name", "digits",
        "--version", "3", "--golden", str(tmp_path / "golden.npy"), "-o", str(out),
        "--tolerance", "probabilities=allclose:1e-06,1e-09",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    inspected = json.loads(modelseal("inspect", "--json", str(out)).stdout)
    assert inspected["manifest"]["version"] == "3"
    assert inspected["manifest"]["tolerance"]["probabilities"] == "allclose:1e-06,1e-09"
    assert inspected["manifest"]["signature"]["inputs"][0]["shape"] == [-1, 64]


def test_pack_usage_errors_exit_2_with_a_message(tmp_path: Path) -> None:
    np.save(tmp_path / "golden.npy", np.zeros((2, 64)))
    result = modelseal(
        "pack", str(tmp_path / "absent.joblib"), "--runtime", "sklearn", "--name", "x",
        "--version", "1", "--golden", str(tmp_path / "golden.npy"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "absent.joblib: no such model file" in result.stderr
    no_golden = modelseal(
        "pack", str(tmp_path / "absent.joblib"), "--runtime", "sklearn", "--name", "x",
        "--version", "1", "--golden", str(tmp_path / "absent.npy"),
    )  # fmt: skip
    assert no_golden.returncode == 2
    assert "absent.npy: no such golden inputs file" in no_golden.stderr


def test_missing_option_is_a_usage_error() -> None:
    result = modelseal("pack", "model.joblib")
    assert result.returncode == 2
    assert "--runtime" in result.stderr


def test_env_json_describes_this_interpreter() -> None:
    result = modelseal("env", "--json", env={"OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin"})
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert record["numerics_env"] == {"OPENBLAS_NUM_THREADS": "1"}
    assert record["packages"]["numpy"] == np.__version__
    blas = [pool for pool in record["threadpools"] if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == 1 for pool in blas)
