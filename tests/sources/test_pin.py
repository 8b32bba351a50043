"""--expect-digest / MODELSEAL_EXPECT_DIGEST: a seal other than the pinned one is refused,
exit 2, before anything is loaded (the test model leaves a mark when it is loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelseal import UsageError, open_seal
from modelseal.sources import parse_pin
from modelseal.sources.publish import push
from tests.cli_process import run_modelseal
from tests.sources.processes import launch, wait_ready

WRONG = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("command", ["verify", "inspect", "serve"])
def test_a_wrong_pin_exits_2_naming_both_digests_before_loading(
    marker_seal_path: Path, tmp_path: Path, command: str
) -> None:
    marker = tmp_path / "loaded"
    result = run_modelseal(
        command, str(marker_seal_path), "--expect-digest", WRONG,
        *(["--port", "0"] if command == "serve" else []),
        extra_env={"MODELSEAL_TEST_LOAD_MARKER": str(marker)},
    )  # fmt: skip
    actual = open_seal(marker_seal_path).digest
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"sha256:{actual}" in result.stderr
    assert WRONG in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()


def test_the_right_pin_loads_and_the_variable_pins_too(
    marker_seal_path: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "loaded"
    actual = open_seal(marker_seal_path).digest
    result = run_modelseal(
        "verify", str(marker_seal_path), "--expect-digest", f"sha256:{actual}",
        extra_env={"MODELSEAL_TEST_LOAD_MARKER": str(marker)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert marker.exists()
    from_env = run_modelseal(
        "verify", str(marker_seal_path), extra_env={"MODELSEAL_EXPECT_DIGEST": WRONG}
    )
    assert from_env.returncode == 2
    assert f"sha256:{actual}" in from_env.stderr


def test_a_pinned_server_from_s3_starts_and_a_wrong_pin_never_downloads(
    marker_seal_path: Path, bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    pushed = push(marker_seal_path, f"s3://{bucket}/", progress=lambda _: None)
    refused = run_modelseal("serve", pushed.uri, "--expect-digest", WRONG, extra_env=s3_env)
    assert refused.returncode == 2
    assert f"sha256:{pushed.digest}" in refused.stderr and WRONG in refused.stderr
    assert not (Path(s3_env["MODELSEAL_CACHE_DIR"]) / "seals").exists()
    server = launch(
        pushed.uri, tmp_path / "logs", {**s3_env, "MODELSEAL_EXPECT_DIGEST": pushed.digest}
    )
    try:
        wait_ready(server)
    finally:
        server.stop()


@pytest.mark.parametrize("pin", ["sha256:abc", "md5:" + "0" * 64, "x" * 64])
def test_a_malformed_pin_is_a_usage_error(pin: str) -> None:
    with pytest.raises(UsageError, match="expected sha256: and 64 hex digits"):
        parse_pin(pin)
    assert parse_pin("SHA256:".lower() + "AB" * 32) == "ab" * 32
