"""A server imports what its seal's runtime needs and nothing more, in a development
environment (which has torch installed) as much as in the generated image."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest

from tests.serving.server import start_server


def mapped_files(pid: int) -> set[str]:
    """The files mapped into a process: every shared library it has imported."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {line.split()[-1] for line in lines if line.count("/")}


@pytest.mark.skipif(find_spec("torch") is None, reason="torch is not installed here")
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_a_scikit_learn_server_does_not_load_torch(demo_seal_path: Path, tmp_path: Path) -> None:
    server = start_server(demo_seal_path, tmp_path)
    try:
        files = mapped_files(server.process.pid)
    finally:
        assert server.stop() == 0
    names = {Path(file).name for file in files}
    # What the model needs is mapped (so the check sees imported libraries at all) ...
    assert any("sklearn" in file for file in files), sorted(names)
    # ... and torch, which scikit-learn's array-API adapter would pull in, is not.
    assert not [name for name in names if name.startswith(("libtorch", "libc10"))], sorted(names)
