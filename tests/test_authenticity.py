"""Authenticity, as an attacker with write access to where seals are stored would test it.

The three attacks of issue 12, each restamping every digest so that integrity checks pass:
(a) a tolerance that accepts anything and zeroed golden outputs, (b) skops' trusted types
extended, (c) the model switched to a joblib pickle whose unpickling creates a marker file.
Without a trusted key (a) and (b) verify as consistent and (c) runs its payload once pickles
are allowed; with a trusted key configured each is refused with exit 2 before anything
loads, by ``verify``, ``inspect`` and a real ``modelseal serve`` process.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest

from modelseal import open_seal, pack
from modelseal.demo import DemoModel
from modelseal.errors import UnsignedPickleError
from modelseal.runtimes.sklearn import SklearnRuntime
from modelseal.seal.digests import describe_files, is_signature_path
from modelseal.seal.keys import KeyPair, generate_key_pair
from modelseal.seal.manifest import MANIFEST_FILE, seal_manifest
from modelseal.seal.signatures import sign_seal
from modelseal.seal.trust import TrustPolicy
from modelseal.verify import Verdict, Verification, admit, verify
from tests.cli_process import run_modelseal
from tests.serving.server import free_port, start_server

pytestmark = pytest.mark.slow
Attack = Callable[[Path, Path], None]
"""Changes a seal folder (given the marker path a payload would create) and restamps it."""


class TouchOnUnpickle:
    """A pickle payload: unpickling it creates ``marker`` (the attacker's code running)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        return (pathlib.Path.touch, (self.marker,))


def restamp(seal_dir: Path) -> None:
    """Recompute every file digest and the manifest digest, as an attacker can."""
    body = json.loads((seal_dir / MANIFEST_FILE).read_text())
    files = {
        path: entry
        for path, entry in describe_files(seal_dir).items()
        if not is_signature_path(path)
    }
    fields = {key: value for key, value in body.items() if key not in ("digest", "files")}
    (seal_dir / MANIFEST_FILE).write_text(seal_manifest(**fields, files=files).to_json())


def accept_anything(seal_dir: Path, _marker: Path) -> None:
    """(a) tolerance allclose:1e300,1e300 on every output and zeroed golden outputs."""
    manifest = seal_dir / MANIFEST_FILE
    body = json.loads(manifest.read_text())
    body["tolerance"] = dict.fromkeys(body["tolerance"], "allclose:1e300,1e300")
    manifest.write_text(json.dumps(body))
    with np.load(seal_dir / "golden.npz") as golden:
        arrays = {
            name: np.zeros_like(golden[name]) if name.startswith("outputs/") else golden[name]
            for name in golden.files
        }
    np.savez(seal_dir / "golden.npz", **arrays)
    restamp(seal_dir)


def trust_more_types(seal_dir: Path, _marker: Path) -> None:
    """(b) skops' trusted types extended in runtime.json."""
    options_file = seal_dir / "model" / "runtime.json"
    options = json.loads(options_file.read_text())
    options["trusted_types"] = [*options["trusted_types"], "builtins.exec", "posix.system"]
    options_file.write_text(json.dumps(options))
    restamp(seal_dir)


def switch_to_a_crafted_pickle(seal_dir: Path, marker: Path) -> None:
    """(c) runtime options switched to joblib, with a model.joblib that runs code."""
    options_file = seal_dir / "model" / "runtime.json"
    options = json.loads(options_file.read_text())
    options["serialization"] = "joblib"
    options_file.write_text(json.dumps(options))
    (seal_dir / "model" / "model.skops").unlink()
    joblib.dump(TouchOnUnpickle(marker), seal_dir / "model" / "model.joblib")
    restamp(seal_dir)


ATTACKS: dict[str, Attack] = {
    "tolerance-and-golden": accept_anything,
    "skops-trusted-types": trust_more_types,
    "crafted-joblib": switch_to_a_crafted_pickle,
}


@pytest.fixture(scope="module")
def trusted_key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate_key_pair(tmp_path_factory.mktemp("keys") / "ci-gate")


@pytest.fixture(scope="module")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate_key_pair(tmp_path_factory.mktemp("keys") / "someone", "ed25519")


@pytest.fixture
def signed_copy(seal_copy: Path, trusted_key: KeyPair) -> Path:
    """The demo seal (skops), signed by the trusted key."""
    sign_seal(seal_copy, trusted_key.private_key)
    return seal_copy


@pytest.fixture(scope="module")
def joblib_seal_path(tmp_path_factory: pytest.TempPathFactory, demo_model: DemoModel) -> Path:
    return pack(
        demo_model.estimator, runtime=SklearnRuntime(serialization="joblib"), name="digits",
        version="1.0.0", golden=demo_model.golden_inputs,
        output=tmp_path_factory.mktemp("joblib") / "digits-joblib.seal",
    ).root  # fmt: skip


@pytest.fixture
def joblib_copy(joblib_seal_path: Path, tmp_path: Path) -> Path:
    copy = tmp_path / joblib_seal_path.name
    shutil.copytree(joblib_seal_path, copy)
    return copy


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "attacker-was-here"
    yield path


def refused_before_binding(seal: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run a real ``modelseal serve``; assert it exits 2 by itself and never bound its port.
    Returns what it wrote on stderr."""
    port = free_port()
    result = run_modelseal(
        "serve", str(seal), "--port", str(port), "--log-format", "json", *args,
        extra_env=env, timeout=240,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "listening on" not in result.stderr
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 2):
        pass
    return result.stderr


# --- the three attacks ----------------------------------------------------------------------


@pytest.mark.parametrize("attack", ["tolerance-and-golden", "skops-trusted-types"])
def test_without_a_trusted_key_the_restamped_seal_verifies(
    attack: str, signed_copy: Path, marker: Path
) -> None:
    """What the issue found: digests alone cannot tell the attacker's seal from the real one."""
    ATTACKS[attack](signed_copy, marker)
    result = run_modelseal("verify", "--json", str(signed_copy))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verdict"] == "consistent"


def test_without_the_pickle_gate_the_crafted_joblib_runs_its_payload(
    signed_copy: Path, marker: Path
) -> None:
    """The payload is real: accepting unsigned pickles runs it. (Its object is no model, so
    the verdict is load-failed, but the code already ran.)"""
    switch_to_a_crafted_pickle(signed_copy, marker)
    result = run_modelseal("verify", "--json", str(signed_copy), "--allow-unsigned-pickle")
    assert result.returncode == 1, result.stderr
    assert marker.exists()


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_each_attack_is_refused_by_verify_and_inspect_with_a_trusted_key(
    attack: str, signed_copy: Path, trusted_key: KeyPair, marker: Path
) -> None:
    old_digest = open_seal(signed_copy).digest
    ATTACKS[attack](signed_copy, marker)
    new_digest = open_seal(signed_copy).digest
    key = ("--trusted-key", str(trusted_key.public_key))

    verified = run_modelseal("verify", str(signed_copy), *key, "--allow-unsigned-pickle")
    assert verified.returncode == 2, verified.stderr
    message = " ".join(verified.stderr.split())
    assert f"(sha256:{new_digest}) is not signed by a trusted key" in message
    assert f"by {trusted_key.fingerprint}: invalid, it signs 'modelseal-seal-v1 sha256:" in message
    assert old_digest in message
    assert f"trusted keys: {trusted_key.fingerprint}" in message
    assert "Refusing it before loading anything" in message

    inspected = run_modelseal("inspect", "--json", str(signed_copy), *key)
    assert inspected.returncode == 2
    error = json.loads(inspected.stdout)["error"]
    assert error["type"] == "UntrustedSealError"
    assert trusted_key.fingerprint in error["message"]
    assert not marker.exists(), "the attacker's pickle ran"


def test_the_crafted_joblib_is_refused_by_a_real_server_before_it_binds(
    signed_copy: Path, trusted_key: KeyPair, marker: Path, tmp_path: Path
) -> None:
    switch_to_a_crafted_pickle(signed_copy, marker)
    stderr = refused_before_binding(
        signed_copy, "--trusted-key", str(trusted_key.public_key), "--allow-unsigned-pickle"
    )
    assert "is not signed by a trusted key" in stderr
    # The same through the environment, with the keys in a mounted folder.
    folder = tmp_path / "trusted-keys"
    folder.mkdir()
    shutil.copy(trusted_key.public_key, folder / "ci-gate.pem")
    stderr = refused_before_binding(
        signed_copy,
        env={"MODELSEAL_TRUSTED_KEYS": str(folder), "MODELSEAL_ALLOW_UNSIGNED_PICKLE": "1"},
    )
    assert trusted_key.fingerprint in stderr
    assert not marker.exists(), "the attacker's pickle ran"


def test_the_crafted_joblib_without_any_key_is_stopped_by_the_pickle_gate(
    signed_copy: Path, marker: Path
) -> None:
    switch_to_a_crafted_pickle(signed_copy, marker)
    stderr = refused_before_binding(signed_copy)
    assert "would unpickle (model/model.joblib is a joblib pickle" in " ".join(stderr.split())
    assert not marker.exists(), "the attacker's pickle ran"


def test_the_load_step_itself_refuses_before_deserialising(signed_copy: Path, marker: Path) -> None:
    """The gate sits in ``Verification.load``, which the server's start-up runs too: a seal
    never admitted counts as vouched for by nobody."""
    switch_to_a_crafted_pickle(signed_copy, marker)
    seal = open_seal(signed_copy)
    with pytest.raises(UnsignedPickleError, match="Refusing it before anything is deserialised"):
        Verification.start(seal).load()
    assert not marker.exists()
    admit(seal, TrustPolicy(allow_unsigned_pickle=True))
    Verification.start(seal).load()
    assert marker.exists(), "accepted, the payload runs: the gate is what stood in its way"


# --- who signed -----------------------------------------------------------------------------


def test_a_seal_signed_only_by_an_untrusted_key_is_refused(
    seal_copy: Path, trusted_key: KeyPair, other_key: KeyPair
) -> None:
    sign_seal(seal_copy, other_key.private_key)
    verified = run_modelseal("verify", str(seal_copy), "--trusted-key", str(trusted_key.public_key))
    assert verified.returncode == 2
    message = " ".join(verified.stderr.split())
    assert f"by {other_key.fingerprint} (ed25519): valid, but not a trusted key" in message
    assert f"trusted keys: {trusted_key.fingerprint}" in message
    stderr = refused_before_binding(seal_copy, "--trusted-key", str(trusted_key.public_key))
    assert other_key.fingerprint in stderr


def test_an_unsigned_seal_is_refused_once_a_key_is_trusted(
    seal_copy: Path, trusted_key: KeyPair
) -> None:
    verified = run_modelseal("verify", str(seal_copy), "--trusted-key", str(trusted_key.public_key))
    assert verified.returncode == 2
    assert "it carries no signatures" in " ".join(verified.stderr.split())


def test_a_validly_signed_seal_verifies_and_serves(
    signed_copy: Path, trusted_key: KeyPair, tmp_path: Path
) -> None:
    key = ("--trusted-key", str(trusted_key.public_key))
    verified = run_modelseal("verify", "--json", str(signed_copy), *key)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["verdict"] == "consistent"
    server = start_server(signed_copy, tmp_path, *key)
    try:
        answer = httpx.post(server.url + "/predict", json={"features": [0.0] * 64}, timeout=30)
        assert answer.status_code == 200, answer.text
    finally:
        assert server.stop() == 0


def test_two_signatures_one_trusted_serves_and_inspect_says_who_signed(
    signed_copy: Path, trusted_key: KeyPair, other_key: KeyPair, tmp_path: Path
) -> None:
    sign_seal(signed_copy, other_key.private_key)
    key = ("--trusted-key", str(trusted_key.public_key))
    inspected = run_modelseal("inspect", "--json", str(signed_copy), *key)
    assert inspected.returncode == 0, inspected.stderr
    report = json.loads(inspected.stdout)
    assert sorted(
        (s["fingerprint"], s["algorithm"], s["valid"], s["trusted"]) for s in report["signatures"]
    ) == sorted([
        (trusted_key.fingerprint, "ecdsa-p256-sha256", True, True),
        (other_key.fingerprint, "ed25519", True, False),
    ])  # fmt: skip
    assert report["trusted_keys"] == [trusted_key.fingerprint]
    assert report["pickle_on_load"] is None
    shown = run_modelseal("inspect", str(signed_copy), *key)
    assert "trusted" in shown.stdout and "untrusted" in shown.stdout

    server = start_server(signed_copy, tmp_path, *key)
    assert server.stop() == 0


# --- pickles --------------------------------------------------------------------------------


def test_an_unsigned_joblib_seal_is_refused_with_the_explanation(joblib_copy: Path) -> None:
    message = " ".join(refused_before_binding(joblib_copy).split())
    assert "would unpickle (model/model.joblib is a joblib pickle" in message
    assert "nobody trusted vouched for this seal" in message
    assert "`modelseal sign SEAL --key KEY.pem`" in message
    assert "--allow-unsigned-pickle (MODELSEAL_ALLOW_UNSIGNED_PICKLE=1)" in message
    verified = run_modelseal("verify", "--json", str(joblib_copy))
    assert verified.returncode == 2
    assert json.loads(verified.stdout)["error"]["type"] == "UnsignedPickleError"


def test_with_allow_unsigned_pickle_it_serves_and_logs_the_warning(
    joblib_copy: Path, tmp_path: Path
) -> None:
    server = start_server(joblib_copy, tmp_path, "--allow-unsigned-pickle")
    try:
        answer = httpx.post(server.url + "/predict", json={"features": [0.0] * 64}, timeout=30)
        assert answer.status_code == 200, answer.text
    finally:
        assert server.stop() == 0
    records = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    warnings = [r for r in records if r.get("unsigned_pickle") is True]
    assert len(warnings) == 1, server.logs()
    assert warnings[0]["level"] == "warning"
    assert warnings[0]["logger"] == "modelseal.trust"
    assert warnings[0]["seal_digest"] == open_seal(joblib_copy).digest
    assert "model/model.joblib is a joblib pickle" in warnings[0]["message"]
    assert "because --allow-unsigned-pickle" in warnings[0]["message"]

    from_env = run_modelseal(
        "verify", str(joblib_copy), extra_env={"MODELSEAL_ALLOW_UNSIGNED_PICKLE": "1"}
    )
    assert from_env.returncode == 0, from_env.stderr
    assert "because --allow-unsigned-pickle" in from_env.stderr


def test_a_joblib_seal_signed_by_a_trusted_key_loads_without_the_flag(
    joblib_copy: Path, trusted_key: KeyPair
) -> None:
    sign_seal(joblib_copy, trusted_key.private_key)
    verified = run_modelseal(
        "verify", "--json", str(joblib_copy), "--trusted-key", str(trusted_key.public_key)
    )
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["verdict"] == "consistent"
    assert "unpickles" not in verified.stderr


def test_a_signature_without_a_trusted_key_does_not_vouch_for_a_pickle(
    joblib_copy: Path, trusted_key: KeyPair
) -> None:
    sign_seal(joblib_copy, trusted_key.private_key)
    verified = run_modelseal("verify", str(joblib_copy))
    assert verified.returncode == 2
    message = " ".join(verified.stderr.split())
    assert f"it is signed by {trusted_key.fingerprint}, but no key is trusted here" in message


def test_a_pinned_digest_vouches_for_a_pickle(joblib_copy: Path) -> None:
    digest = open_seal(joblib_copy).digest
    verified = run_modelseal(
        "verify", "--json", str(joblib_copy), "--expect-digest", f"sha256:{digest}"
    )
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["verdict"] == "consistent"
    assert "unpickles" not in verified.stderr

    pinned = TrustPolicy(expect_digest=f"sha256:{digest}")
    assert verify(joblib_copy, trust=pinned).verdict is Verdict.CONSISTENT
    other = TrustPolicy(expect_digest="sha256:" + "0" * 64)
    with pytest.raises(UnsignedPickleError, match="its digest is not pinned"):
        verify(joblib_copy, trust=other)
