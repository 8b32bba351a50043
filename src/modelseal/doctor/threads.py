"""Thread checks: BLAS, OpenMP and torch thread counts against the CPUs the process may use.

More compute threads than CPUs (a 64-core host's default inside a 2-CPU container) makes
the threads wait on each other and on CFS throttling: a common tenfold slowdown.
"""

from __future__ import annotations

import math

from modelseal.doctor.report import Check, Facts, Status, new_check
from modelseal.doctor.subject import SealFacts
from modelseal.environment.record import EnvironmentRecord, ThreadPool

THREAD_VARIABLES = {
    "openblas": "OPENBLAS_NUM_THREADS",
    "mkl": "MKL_NUM_THREADS",
    "blis": "BLIS_NUM_THREADS",
    "openmp": "OMP_NUM_THREADS",
}


def thread_checks(
    current: EnvironmentRecord, effective_cpus: float, seal: SealFacts | None
) -> list[Check]:
    return [check_threads(current, effective_cpus, seal)]


def check_threads(
    current: EnvironmentRecord, effective_cpus: float, seal: SealFacts | None
) -> Check:
    allowed = max(1, math.ceil(effective_cpus - 1e-9))
    pools = [(_pool_name(pool), pool.num_threads, _variable(pool)) for pool in current.threadpools]
    torch_threads = current.torch.num_threads if current.torch else None
    if torch_threads is not None:
        pools.append(("torch intra-op", torch_threads, "OMP_NUM_THREADS"))
    listed = ", ".join(f"{name} {threads}" for name, threads, _ in pools) or "none loaded"
    env = ", ".join(f"{k}={v}" for k, v in current.numerics_env.items() if "THREADS" in k)
    evidence = f"{effective_cpus:g} CPU(s) usable; thread pools: {listed}"
    if env:
        evidence += f"; {env}"
    facts: Facts = {
        "usable_cpus": effective_cpus,
        "max_threads": max((threads for _, threads, _ in pools), default=0),
    }
    over = [(name, threads, variable) for name, threads, variable in pools if threads > allowed]
    if not over:
        return new_check(
            "threads", "oversubscription", "threads vs CPUs", Status.OK, evidence, None, facts
        )
    names = ", ".join(f"{name} runs {threads} threads" for name, threads, _ in over)
    evidence = f"{names} on {effective_cpus:g} usable CPU(s): oversubscribed; {evidence}"
    variables = sorted({variable for _, _, variable in over})
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


def _pool_name(pool: ThreadPool) -> str:
    return f"{pool.internal_api} ({pool.library})"


def _variable(pool: ThreadPool) -> str:
    return THREAD_VARIABLES.get(pool.internal_api, "OMP_NUM_THREADS")


def _packed_blas_threads(seal: SealFacts | None) -> str | None:
    if seal is None:
        return None
    counts = sorted({pool.num_threads for pool in seal.environment.blas})
    return "/".join(str(count) for count in counts) if counts else None
