"""The serving lock: the runtime's dependency closure at the installed versions.

Computed from the installed distributions' metadata (``Requires-Dist`` with environment
markers evaluated, extras only where a requirement asks for them), so a scikit-learn seal
lists scikit-learn and what it needs, never the test or lint tools that happen to be here.
"""

from __future__ import annotations

from collections import deque
from importlib import metadata

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from modelseal.errors import UsageError


def dependency_closure(roots: list[str]) -> dict[str, str]:
    """Installed name -> version for ``roots`` (names, extras allowed: ``uvicorn[standard]``)
    and everything they need, transitively."""
    resolved: dict[str, str] = {}
    root_requirements = [Requirement(root) for root in roots]
    root_names = {canonicalize_name(root.name) for root in root_requirements}
    pending: deque[tuple[str, frozenset[str]]] = deque(
        (canonicalize_name(root.name), frozenset(root.extras)) for root in root_requirements
    )
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.popleft()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if name in root_names:
                raise UsageError(
                    f"the runtime needs {name!r}, which is not installed here; install it "
                    "before sealing so its version can be recorded"
                ) from None
            continue
        resolved[name] = dist.version
        for requirement in _requirements_of(dist, extras):
            pending.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return dict(sorted(resolved.items()))


def render_lock(closure: dict[str, str], header: str) -> str:
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"{name}=={version}" for name, version in closure.items()]
    return "\n".join(lines) + "\n"


def _requirements_of(dist: metadata.Distribution, extras: frozenset[str]) -> list[Requirement]:
    wanted = []
    for text in dist.requires or []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker is None or _marker_holds(requirement.marker, extras):
            wanted.append(requirement)
    return wanted


def _marker_holds(marker: Marker, extras: frozenset[str]) -> bool:
    if not extras:
        return marker.evaluate({"extra": ""})
    return any(marker.evaluate({"extra": extra}) for extra in extras)
