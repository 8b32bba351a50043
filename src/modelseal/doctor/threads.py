"""Thread checks: BLAS, OpenMP and torch thread counts against the CPUs the process may use.

More compute threads than CPUs (a 64-core host's default inside a 2-CPU container) makes
the threads wait on each other and on CFS throttling: a common tenfold slowdown. The pools
are the live ones of this process (threadpoolctl), so OpenMP runtimes that the model's
libraries loaded count too.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_info

from modelseal.doctor.report import Check, Facts, Status, new_check
from modelseal.doctor.subject import SealFacts

THREAD_VARIABLES = {
    "openblas": "OPENBLAS_NUM_THREADS",
    "mkl": "MKL_NUM_THREADS",
    "blis": "BLIS_NUM_THREADS",
    "openmp": "OMP_NUM_THREADS",
}
TORCH_VARIABLE = "OMP_NUM_THREADS"


@dataclass(frozen=True)
class LivePool:
    """A thread pool running in this process: who, how many threads, which variable sets it."""

    name: str
    threads: int
    variable: str


def live_pools() -> list[LivePool]:
    """The BLAS and OpenMP pools loaded in this process, and torch's when it is imported."""
    pools = [
        LivePool(
            name=f"{pool.get('internal_api')} ({Path(str(pool.get('filepath', ''))).name})",
            threads=int(pool.get("num_threads") or 0),
            variable=THREAD_VARIABLES.get(str(pool.get("internal_api")), "OMP_NUM_THREADS"),
        )
        for pool in threadpool_info()
    ]
    torch: Any = sys.modules.get("torch")
    if torch is not None:
        pools.append(LivePool("torch intra-op", int(torch.get_num_threads()), TORCH_VARIABLE))
    return pools


def thread_checks(
    pools: list[LivePool], effective_cpus: float, seal: SealFacts | None
) -> list[Check]:
    return [check_threads(pools, effective_cpus, seal)]


def check_threads(pools: list[LivePool], effective_cpus: float, seal: SealFacts | None) -> Check:
    allowed = max(1, math.ceil(effective_cpus - 1e-9))
    listed = ", ".join(f"{pool.name} {pool.threads}" for pool in pools) or "none loaded"
    settings_here = ", ".join(
        f"{name}={value}" for name, value in sorted(os.environ.items()) if name.endswith("THREADS")
    )
    evidence = f"{effective_cpus:g} CPU(s) usable; thread pools: {listed}"
    if settings_here:
        evidence += f"; {settings_here}"
    facts: Facts = {
        "usable_cpus": effective_cpus,
        "max_threads": max((pool.threads for pool in pools), default=0),
    }
    over = [pool for pool in pools if pool.threads > allowed]
    if not over:
        return new_check(
            "threads", "oversubscription", "threads vs CPUs", Status.OK, evidence, None, facts
        )
    names = ", ".join(f"{pool.name} runs {pool.threads} threads" for pool in over)
    evidence = f"{names} on {effective_cpus:g} usable CPU(s): oversubscribed; {evidence}"
    variables = sorted({pool.variable for pool in over})
    settings = " and ".join(f"{variable}={allowed}" for variable in variables)
    fix = f"set {settings} in the serving environment (container env, Kubernetes env)"
    packed = _packed_blas_threads(seal)
    if packed is not None:
        fix += (
            f"; the seal was validated with {packed} BLAS thread(s) and a different count can "
            "round sums differently, so run `modelseal verify SEAL` after the change"
        )
    return new_check(
        "threads", "oversubscription", "threads vs CPUs", Status.WARN, evidence, fix, facts
    )


def _packed_blas_threads(seal: SealFacts | None) -> str | None:
    if seal is None:
        return None
    counts = sorted({pool.num_threads for pool in seal.environment.blas})
    return "/".join(str(count) for count in counts) if counts else None
