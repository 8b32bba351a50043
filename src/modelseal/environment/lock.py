"""The serving lock (``requirements.lock``): computed, rendered and parsed here, only here.

The lock is the runtime's dependency closure at the installed versions, computed from the
installed distributions' metadata (``Requires-Dist`` with environment markers evaluated,
extras only where a requirement asks for them), so a scikit-learn seal lists scikit-learn
and what it needs, never the test or lint tools that happen to be here. Its text is one
``name==version`` pin a line under ``#`` comment lines.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Sequence
from importlib import metadata

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from modelseal.errors import SealFormatError, UsageError


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


def render_lock(closure: dict[str, str], header: str, options: Sequence[str] = ()) -> str:
    """Lock text: ``header`` as comment lines, pip ``options`` lines (``--extra-index-url
    URL``), then one ``name==version`` pin a line."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += options
    lines += [f"{name}=={version}" for name, version in closure.items()]
    return "\n".join(lines) + "\n"


def pins_in_text(text: str) -> dict[str, str]:
    """The exact pins found in free text (a lock label: pins separated by spaces, commas,
    semicolons or newlines), normalized name -> version; anything else is ignored."""
    pins = (exact_pin(token) for token in re.split(r"[\s,;]+", text.strip()) if token)
    return {
        canonicalize_name(pin.name): next(iter(pin.specifier)).version
        for pin in pins
        if pin is not None
    }


def lock_lines(text: str) -> list[str]:
    """The pins of lock text (``name==version`` lines), without comments or blank lines."""
    stripped = (_without_comment(line) for line in text.splitlines())
    return [line for line in stripped if line]


def parse_lock(lines: Iterable[str]) -> dict[str, str]:
    """Lock lines -> normalized name -> pinned version.

    A pin whose environment marker does not hold here is kept: it is what was sealed. When a
    name is pinned twice under different markers, the pin whose marker holds here wins.
    """
    pins: dict[str, tuple[str, bool]] = {}
    for number, line in enumerate(lines, start=1):
        text = _without_comment(line)
        if not text:
            continue
        name, version, holds = _parse_pin(text, number)
        if name not in pins or (holds and not pins[name][1]):
            pins[name] = (version, holds)
    return {name: version for name, (version, _) in pins.items()}


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


def _without_comment(line: str) -> str:
    return line.split("#", 1)[0].strip()


def _parse_pin(text: str, number: int) -> tuple[str, str, bool]:
    """One lock line -> (normalized name, version, whether its marker holds here)."""
    requirement = exact_pin(text)
    if requirement is None:
        raise SealFormatError(
            f"requirements.lock line {number}: {text!r} is not an exact pin 'name==version'; "
            "every line of the lock must pin one distribution (re-seal to regenerate it)"
        )
    (specifier,) = requirement.specifier
    marker = requirement.marker
    holds = marker is None or marker.evaluate({"extra": ""})
    return canonicalize_name(requirement.name), specifier.version, holds


def exact_pin(text: str) -> Requirement | None:
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return None
    specifiers = list(requirement.specifier)
    if requirement.url or len(specifiers) != 1:
        return None
    (specifier,) = specifiers
    if specifier.operator not in ("==", "===") or specifier.version.endswith(".*"):
        return None
    return requirement
