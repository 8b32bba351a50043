"""The contract every generated artifact shares: paths, port, user and server timings.

The Dockerfile, compose.yaml and the Kubernetes/KServe manifests all describe the same
container, so what they must agree on lives here once.
"""

from __future__ import annotations

PORT = 8080
USER_ID = 10001
"""Numeric, non-root, group 0: OpenShift runs the image under an arbitrary UID in group 0."""
GROUP_ID = 0
VENV = "/opt/modelseal/venv"
BAKED_SEAL = "/opt/modelseal/seal"
MODELS_MOUNT = "/models"
"""Where the ``volume`` strategy expects the folder holding the seal."""
TMP = "/tmp"
CACHE_DIR = "/tmp/modelseal"
"""Writable even with a read-only root filesystem: /tmp is a tmpfs or an emptyDir."""
KSERVE_MODEL_DIR = "/mnt/models"
"""Where KServe's storage initializer puts what ``storageUri`` names."""

READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"

DRAIN_SECONDS = 5
"""``modelseal serve --drain-seconds`` default: keep serving this long after SIGTERM."""
LINGER_SECONDS = 10
"""After the drain window the server finishes its queue and gives a connection it accepted, but
that has not sent its request yet, up to ``--header-timeout`` (default 10 s) to send it."""
STOP_MARGIN_SECONDS = 5
"""Slack for signal delivery and interpreter exit on a busy node."""


def grace_seconds(drain_seconds: int, pre_stop_seconds: int = 0) -> int:
    """How long a stop must wait before it kills: preStop, drain window, linger, margin."""
    return pre_stop_seconds + drain_seconds + LINGER_SECONDS + STOP_MARGIN_SECONDS


# Python's standard library only: slim images have no curl or wget.
HEALTHCHECK_SCRIPT = (
    "import os, sys, urllib.request\n"
    "port = os.environ.get('MODELSEAL_PORT', '8080')\n"
    "try:\n"
    f"    urllib.request.urlopen(f'http://127.0.0.1:{{port}}{READY_PATH}', timeout=3)\n"
    "except Exception as exc:\n"
    "    sys.exit(f'not ready: {exc}')\n"
)
HEALTHCHECK_COMMAND = ("python", "-c", HEALTHCHECK_SCRIPT)
