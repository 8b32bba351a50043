"""A real Docker engine for tests, and a Python base image that needs no registry.

``start_engine`` runs our own ``dockerd``: its own data-root, exec-root, pidfile and socket
(the last three in a short /tmp folder: unix socket paths are limited to 108 bytes), no
bridge, no iptables. It is ready when its socket answers ``/_ping``; ``stop_engine`` ends it
by PID. The data-root is .cache/docker/engine, kept across runs so later runs reuse image
layers, and held by a file lock for the session: a concurrent session in the same checkout
gets a throw-away data-root instead, and a dockerd left running on it by a killed session is
stopped first. No registry is reachable, so
``ensure_base_image`` makes the base image with debootstrap (Debian bookworm's Python 3.11)
once, keeps its tarball under .cache/docker/base for later runs, and imports it.

Fixtures in tests/conftest.py wrap these (``docker_engine``, ``docker_base_image``) so that
any test package can use them.
"""

from __future__ import annotations

import contextlib
import fcntl
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
from typing import IO

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "docker"
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 60.0
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "python-is-python3")
BASE_IMAGE = "modelseal-test/python:3.11-bookworm"
BASE_LABEL = "modelseal-test.base-tarball"
DEBOOTSTRAP_TIMEOUT_SECONDS = 1200
ORPHAN_PIDFILE = CACHE / "engine.pid"
BUILD_CACHE_LIMIT = "6GB"


class EngineUnavailableError(Exception):
    """No Docker engine can run here; the message says why (tests skip with it)."""


@dataclass
class DockerEngine:
    process: subprocess.Popen[bytes]
    data_root: Path
    run_root: Path
    client: str
    lock: IO[str] | None
    """Held while this session owns the shared data-root; None for a throw-away one."""

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
        return (self.run_root / "dockerd.log").read_text(errors="replace")


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
    lock = _lock_shared_root()
    if lock is not None:
        data_root = CACHE / "engine"
        _stop_orphan(data_root)
    else:
        data_root = Path(tempfile.mkdtemp(prefix="engine-", dir=CACHE))
    run_root = Path(tempfile.mkdtemp(prefix="msd-", dir="/tmp"))
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
    with (run_root / "dockerd.log").open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    if lock is not None:
        ORPHAN_PIDFILE.write_text(f"{process.pid}\n")
    engine = DockerEngine(process, data_root, run_root, client, lock)
    try:
        _wait_until_answering(engine)
    except EngineUnavailableError:
        stop_engine(engine)
        raise
    # What killed sessions left behind (stopped containers, untagged images), and a bound on
    # the build cache the shared data-root keeps from run to run.
    engine.docker("container", "prune", "-f", check=False)
    engine.docker("image", "prune", "-f", check=False)
    engine.docker("builder", "prune", "-f", "--keep-storage", BUILD_CACHE_LIMIT, check=False)
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
    _unmount_under(engine.run_root)
    shutil.rmtree(engine.run_root, ignore_errors=True)
    if engine.lock is None:
        shutil.rmtree(engine.data_root, ignore_errors=True)
        return
    ORPHAN_PIDFILE.unlink(missing_ok=True)
    engine.lock.close()


def ensure_base_image(engine: DockerEngine) -> str:
    """The debootstrap base image in ``engine``: imported from the cached tarball (made once)."""
    tarball = base_tarball()
    found = engine.docker(
        "image", "inspect", "-f", f'{{{{index .Config.Labels "{BASE_LABEL}"}}}}', BASE_IMAGE,
        check=False,
    )  # fmt: skip
    if found.returncode != 0 or found.stdout.strip() != tarball.name:
        change = f"LABEL {BASE_LABEL}={tarball.name}"
        engine.docker("import", "--change", change, str(tarball), BASE_IMAGE, timeout=600)
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


def _lock_shared_root() -> IO[str] | None:
    """The lock of the shared data-root, or None when another session holds it."""
    lock = (CACHE / "engine.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock


def _stop_orphan(data_root: Path) -> None:
    """Stop a dockerd a killed session left running on ``data_root`` (checked by cmdline)."""
    try:
        pid = int(ORPHAN_PIDFILE.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if f"--data-root={data_root}".encode() not in cmdline:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)


def _unmount_under(folder: Path) -> None:
    """dockerd leaves its default network namespace bind-mounted under its exec-root."""
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    points = [line.split()[4] for line in mounts if line.split()[4].startswith(f"{folder}/")]
    for point in sorted(points, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=60, check=False)


def _kill_leftover_containerd(run_root: Path) -> None:
    """dockerd stops the containerd it started, unless it was killed itself."""
    pidfile = run_root / "exec" / "containerd" / "containerd.pid"
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
