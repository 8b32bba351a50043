"""``compose.yaml``: the serving container as ``docker compose up`` runs it.

Read-only root filesystem with a tmpfs /tmp, the image's own healthcheck, a stop grace
period that covers the server's drain, and the weights as a read-only volume or a source
URI; credentials pass through from the shell by name and are never written here.
"""

from __future__ import annotations

from typing import Any

from modelseal.deploy.container import (
    DRAIN_SECONDS,
    GROUP_ID,
    HEALTHCHECK_COMMAND,
    MODELS_MOUNT,
    PORT,
    TMP,
    USER_ID,
    grace_seconds,
)
from modelseal.deploy.dockerfile import (
    HEALTHCHECK_INTERVAL_SECONDS,
    HEALTHCHECK_RETRIES,
    HEALTHCHECK_TIMEOUT_SECONDS,
)
from modelseal.deploy.image import CREDENTIAL_VARIABLES, ImagePlan, Weights

HOST_MODELS_DIR = "./models"


def render_compose(plan: ImagePlan) -> dict[str, Any]:
    service: dict[str, Any] = {
        "image": plan.image_tag,
        "build": {"context": "."},
        "read_only": True,
        "tmpfs": [TMP],
        "user": f"{USER_ID}:{GROUP_ID}",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "environment": _environment(plan),
        "ports": [f"127.0.0.1:{PORT}:{PORT}"],
        "healthcheck": {
            "test": ["CMD", *HEALTHCHECK_COMMAND],
            "interval": f"{HEALTHCHECK_INTERVAL_SECONDS}s",
            "timeout": f"{HEALTHCHECK_TIMEOUT_SECONDS}s",
            "retries": HEALTHCHECK_RETRIES,
            "start_period": f"{plan.startup_budget_seconds}s",
        },
        "stop_signal": "SIGTERM",
        "stop_grace_period": f"{grace_seconds(DRAIN_SECONDS)}s",
    }
    if plan.weights is Weights.VOLUME:
        service["volumes"] = [f"{HOST_MODELS_DIR}:{MODELS_MOUNT}:ro"]
    if plan.gpu:
        service["deploy"] = {
            "resources": {
                "reservations": {
                    "devices": [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
                }
            }
        }
    return {"name": plan.image_name, "services": {plan.image_name: service}}


def _environment(plan: ImagePlan) -> list[str]:
    env = [f"MODELSEAL_DRAIN_SECONDS={DRAIN_SECONDS}"]
    if plan.gpu:
        env.append("NVIDIA_VISIBLE_DEVICES=all")
    # A bare name passes the variable through from the shell running compose, if set.
    if plan.weights in CREDENTIAL_VARIABLES:
        env.append(f"MODELSEAL_SOURCE={plan.source}" if plan.source else "MODELSEAL_SOURCE")
        env += CREDENTIAL_VARIABLES[plan.weights]
    return env
