"""Loading the model here, as the server would: does it load, and how much memory does it
take once loaded? Loading also brings in the runtime's native libraries, so the thread and
dependency checks that follow see the same BLAS and OpenMP pools as a server.

Inside a serving container the server already holds a copy: the doctor loads a second one
only when it fits under the memory limit, so that triage never gets the server OOM-killed.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from modelseal.cgroup import CgroupLimits
from modelseal.doctor.limits import memory_needed
from modelseal.doctor.report import Check, Status, new_check
from modelseal.doctor.subject import SealFacts, size_text
from modelseal.runtimes.registry import get_runtime


@dataclass(frozen=True)
class LoadFacts:
    """``loaded`` is None when loading was not tried (``why_not`` says why)."""

    loaded: bool | None
    seconds: float | None = None
    resident_before: int | None = None
    resident_after: int | None = None
    error: str | None = None
    why_not: str | None = None

    @property
    def resident_growth(self) -> int | None:
        if self.resident_before is None or self.resident_after is None:
            return None
        return max(0, self.resident_after - self.resident_before)


def load_here(seal: SealFacts, limits: CgroupLimits) -> LoadFacts:
    """Load the sealed model on the CPU, measuring the time and the resident memory it adds."""
    room = _room(limits)
    _, peak = memory_needed(seal.model_bytes)
    if room is not None and room < peak:
        return LoadFacts(
            loaded=None,
            why_not=f"only {size_text(room)} left under the memory limit and loading needs "
            f"~{size_text(peak)}: a second copy could get the server OOM-killed",
        )
    before = resident_bytes()
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            get_runtime(seal.seal.runtime).load(seal.seal.model_dir, "cpu")
    except Exception as exc:
        return LoadFacts(loaded=False, error=f"{type(exc).__name__}: {exc}")
    return LoadFacts(
        loaded=True,
        seconds=time.perf_counter() - started,
        resident_before=before,
        resident_after=resident_bytes(),
    )


def check_load(seal: SealFacts | None, facts: LoadFacts | None) -> Check:
    title = "model loads here"
    if seal is None or facts is None:
        return new_check("deps", "load", title, Status.SKIPPED, "no seal given: no model to load")
    runtime = seal.seal.runtime
    if facts.loaded is None:
        return new_check("deps", "load", title, Status.SKIPPED, facts.why_not or "not tried")
    if not facts.loaded:
        return new_check(
            "deps", "load", title, Status.FAIL,
            f"the {runtime} runtime cannot load the model here: {facts.error}",
            "install what the seal's lock pins (the error names what is missing or "
            "incompatible), or serve from an image built for the seal (`modelseal dockerfile`)",
        )  # fmt: skip
    growth = facts.resident_growth
    evidence = f"loaded with the {runtime} runtime on the CPU in {facts.seconds or 0:.2f} s"
    if growth is not None and facts.resident_after is not None:
        evidence += (
            f"; resident memory grew by {size_text(growth)} to {size_text(facts.resident_after)}"
        )
    return new_check(
        "deps", "load", title, Status.OK, evidence, None,
        {"load_seconds": facts.seconds, "resident_bytes": facts.resident_after,
         "resident_growth_bytes": growth},
    )  # fmt: skip


def resident_bytes() -> int | None:
    """This process's resident memory (``/proc/self/statm``), or None off Linux."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
    except OSError:
        return None
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


def _room(limits: CgroupLimits) -> int | None:
    if limits.memory_limit is None:
        return None
    return limits.memory_limit - (limits.memory_usage or 0)
