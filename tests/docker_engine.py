"""A real Docker engine for tests, and a Python base image that needs no registry.

``start_engine`` runs our own ``dockerd``: its own data-root (under .cache/docker, removed
at the end), exec-root, pidfile and socket (in a short /tmp folder: unix socket paths are
limited to 108 bytes), no bridge, no iptables. It is ready when its socket answers
``/_ping``, and ``stop_engine`` ends it by PID. No registry is reachable, so
``ensure_base_image`` makes the base image with debootstrap (Debian bookworm's Python 3.11)
once, keeps its tarball under .cache/docker/base for later runs, and imports it.

Fixtures in tests/conftest.py wrap these (``docker_engine``, ``docker_base_image``) so that
any test package can use them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "docker"
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 60.0
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "python-is-python3")
BASE_IMAGE = "modelseal-test/python:3.11-bookworm"
DEBOOTSTRAP_TIMEOUT_SECONDS = 1200


class EngineUnavailableError(Exception):
    """No Docker engine can run here; the message says why (tests skip with it)."""


@dataclass
class DockerEngine:
    process: subprocess.Popen[bytes]
    data_root: Path
    run_root: Path
    client: str

    @property
    def socket(self) -> Path:
        return self.run_root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        """The environment for the docker client: this engine, with BuildKit."""
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "1"}

    def docker(
        self, *args: str, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker ARGS`` against this engine; ``check``: raise with its output on failure."""
        result = subprocess.run(
            [self.client, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"docker {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def log(self) -> str:
        return (self.data_root.parent / f"{self.data_root.name}.log").read_text(errors="replace")


def start_engine() -> DockerEngine:
    """Start a private dockerd and wait until it answers; EngineUnavailableError says why not."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineUnavailableError(
            "dockerd is not installed (apt-get install -y docker.io debootstrap; .ci/run does)"
        )
    if os.geteuid() != 0:
        raise EngineUnavailableError("starting dockerd needs root; these tests run only as root")
    client = _client(Path(dockerd))
    CACHE.mkdir(parents=True, exist_ok=True)
    data_root = Path(tempfile.mkdtemp(prefix="engine-", dir=CACHE))
    run_root = Path(tempfile.mkdtemp(prefix="msd-", dir="/tmp"))
    log = data_root.parent / f"{data_root.name}.log"
    command = [
        dockerd,
        f"--data-root={data_root}",
        f"--exec-root={run_root / 'exec'}",
        f"--pidfile={run_root / 'dockerd.pid'}",
        f"--host=unix://{run_root / 'docker.sock'}",
        "--bridge=none",
        "--iptables=false",
        "--ip-masq=false",
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    engine = DockerEngine(process, data_root, run_root, client)
    try:
        _wait_until_answering(engine)
    except EngineUnavailableError:
        stop_engine(engine)
        raise
    return engine


def stop_engine(engine: DockerEngine) -> None:
    """SIGTERM dockerd by PID (it stops its containers and containerd), SIGKILL if it hangs."""
    process = engine.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
            _kill_leftover_containerd(engine.run_root)
    shutil.rmtree(engine.data_root, ignore_errors=True)
    shutil.rmtree(engine.run_root, ignore_errors=True)
    (engine.data_root.parent / f"{engine.data_root.name}.log").unlink(missing_ok=True)


def ensure_base_image(engine: DockerEngine) -> str:
    """The debootstrap base image in ``engine``: imported from the cached tarball (made once)."""
    tarball = base_tarball()
    engine.docker("import", str(tarball), BASE_IMAGE, timeout=600)
    return BASE_IMAGE


def base_tarball() -> Path:
    """Debian bookworm minbase with Python 3.11, as a tar; built once, then reused."""
    recipe = f"debootstrap --variant=minbase {SUITE} {' '.join(BASE_PACKAGES)}"
    key = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    folder = CACHE / "base"
    tarball = folder / f"{SUITE}-python-{key}.tar"
    if tarball.is_file():
        return tarball
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise EngineUnavailableError("debootstrap is missing (apt-get install -y debootstrap)")
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".rootfs-", dir=folder))
    try:
        root = staging / "rootfs"
        result = subprocess.run(
            [debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
             SUITE, str(root)],
            capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT_SECONDS, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise EngineUnavailableError(
                f"debootstrap {SUITE} failed (is a Debian mirror reachable?):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
        apt_leftovers = ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*")
        for pattern in apt_leftovers:
            for leftover in root.glob(pattern):
                leftover.unlink()
        partial = staging / "rootfs.tar"
        subprocess.run(
            ["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."],
            check=True, timeout=600,
        )  # fmt: skip
        partial.replace(tarball)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tarball


def _client(dockerd: Path) -> str:
    """Debian's docker.io client first: it builds with BuildKit without the buildx plugin
    (a newer client on PATH may lack buildx and refuse)."""
    for candidate in (Path("/usr/bin/docker"), dockerd.parent / "docker"):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("docker")
    if found is None:
        raise EngineUnavailableError("no docker client is installed beside dockerd")
    return found


def _wait_until_answering(engine: DockerEngine) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if engine.process.poll() is not None:
            raise EngineUnavailableError(
                f"dockerd exited with {engine.process.returncode}:\n{engine.log()[-3000:]}"
            )
        if _pings(engine.socket):
            return
        time.sleep(0.2)
    raise EngineUnavailableError(
        f"dockerd did not answer within {START_TIMEOUT_SECONDS:.0f} s:\n{engine.log()[-3000:]}"
    )


def _pings(path: Path) -> bool:
    """True when the engine's socket answers GET /_ping with 200."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(5)
            client.connect(str(path))
            client.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = client.recv(64).split(b"\r\n", 1)[0]
    except OSError:
        return False
    return status_line.split(b" ")[1:2] == [b"200"]


def _kill_leftover_containerd(run_root: Path) -> None:
    """dockerd stops the containerd it started, unless it was killed itself."""
    pidfile = run_root / "exec" / "containerd" / "containerd.pid"
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
