"""Running the doctor: which check families run where, collected into one report.

Checks run where the model runs: here by default, or inside the container with
``--container`` (the engine's own view is added from outside). ``--url`` adds the server
checks; with ``--container`` the URL is the one the container itself answers on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from modelseal._version import __version__
from modelseal.doctor.container import container_checks
from modelseal.doctor.deps import deps_checks
from modelseal.doctor.gpu import gather_gpu_facts, gpu_checks
from modelseal.doctor.limits import gather_limit_facts, limit_checks
from modelseal.doctor.load import LoadFacts, check_load, load_here
from modelseal.doctor.report import (
    Check,
    DoctorReport,
    Family,
    SealRef,
    Status,
    count_statuses,
    new_check,
)
from modelseal.doctor.server import DEFAULT_LATENCY_BUDGET_S, gather_server_facts, server_checks
from modelseal.doctor.subject import SealFacts
from modelseal.doctor.threads import live_pools, thread_checks
from modelseal.environment.fingerprint import capture_environment
from modelseal.environment.record import EnvironmentRecord
from modelseal.errors import UsageError
from modelseal.seal.artifact import Seal


@dataclass(frozen=True)
class DoctorOptions:
    url: str | None = None
    container: str | None = None
    latency_budget_s: float = DEFAULT_LATENCY_BUDGET_S
    root: Path = Path("/")
    """Where ``proc/`` and the cgroup mounts are read (``/`` except in tests)."""
    temp_dir: Path | None = None
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.url is not None:
            object.__setattr__(self, "url", server_url(self.url))
        if self.latency_budget_s <= 0:
            raise UsageError(
                f"latency budget {self.latency_budget_s:g} s: expected a positive number"
            )
        if self.container is not None and not self.container.strip():
            raise UsageError("--container: expected a container name or ID, got an empty string")


def server_url(text: str) -> str:
    """The server's base URL; ``HOST:PORT`` without a scheme is taken as ``http://``."""
    candidate = text.strip() if "://" in text else f"http://{text.strip()}"
    parts = urlparse(candidate)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--url {text!r}: expected the server's base URL, e.g. http://127.0.0.1:8080"
        )
    return candidate.rstrip("/")


def run_doctor(seal: Seal | None, options: DoctorOptions | None = None) -> DoctorReport:
    """Run every check that applies and return the report (``report.passes``: no fail)."""
    options = options or DoctorOptions()
    facts = SealFacts(seal) if seal is not None else None
    checks: list[Check] = []
    if options.container is None:
        checks += _here_checks(facts, options)
        if options.url is not None:
            checks += _server_checks(options.url, facts, options.latency_budget_s)
    else:
        checks += _guarded(
            "container", lambda: container_checks(options.container or "", facts, options.url)
        )
    return DoctorReport(
        modelseal_version=__version__,
        seal=_seal_ref(seal),
        url=options.url,
        container=options.container,
        checks=checks,
        counts=count_statuses(checks),
    )


def _here_checks(facts: SealFacts | None, options: DoctorOptions) -> list[Check]:
    # Order matters: the GPU facts import torch when it is installed and loading the model
    # imports its runtime's libraries, so the fingerprint taken after them sees the thread
    # pools and library versions a server would have.
    gpu = _guarded("gpu", lambda: gpu_checks(gather_gpu_facts(), facts))
    limits = gather_limit_facts(options.root, options.temp_dir, options.cache_dir)
    loaded = load_here(facts, limits.cgroup) if facts is not None else None
    current = capture_environment()
    return [
        *gpu,
        *_guarded("deps", lambda: [check_load(facts, loaded), *_deps(facts, current, loaded)]),
        *_guarded("limits", lambda: limit_checks(limits, facts)),
        *_guarded("threads", lambda: thread_checks(live_pools(), limits.effective_cpus, facts)),
    ]


def _deps(
    facts: SealFacts | None, current: EnvironmentRecord, loaded: LoadFacts | None
) -> list[Check]:
    model_loaded = loaded is not None and loaded.loaded is True
    return deps_checks(facts, current, model_loaded=model_loaded)


def _server_checks(url: str, facts: SealFacts | None, budget_s: float) -> list[Check]:
    checks = _guarded("server", lambda: server_checks(gather_server_facts(url), facts, budget_s))
    return [check.model_copy(update={"where": url.rstrip("/")}) for check in checks]


def _guarded(family: Family, run: Callable[[], list[Check]]) -> list[Check]:
    """The family's checks; a crash in one family becomes a failed check, not a lost report."""
    try:
        return run()
    except Exception as exc:
        return [
            new_check(
                family, "error", f"{family} checks", Status.FAIL,
                f"the {family} checks crashed: {type(exc).__name__}: {exc}",
                "an unexpected environment or a modelseal bug: please report it with this output",
            )
        ]  # fmt: skip


def _seal_ref(seal: Seal | None) -> SealRef | None:
    if seal is None:
        return None
    return SealRef(
        name=seal.name,
        version=seal.version,
        runtime=seal.runtime,
        digest=seal.digest,
        source=seal.source,
    )
