"""Delta debugging: the smallest set of changes that still reproduces a failure.

``ddmin`` (Zeller and Hildebrandt, 2002) with three outcomes per test: the failure
reproduces, the result passes, or the test cannot tell (the combination cannot be installed,
or it fails in another way). It splits the changes into chunks, keeps any chunk or
complement that still fails, and refines the chunks until no single change can be left out.
The result is 1-minimal: leaving out any one member passes or cannot be tested, which is how
a change that only rides along (needed to install the others) is told from a cause.

Tests are expensive (an environment and a replay each), so a subset of a set that passed is
taken to pass without a test: one change does not undo the breakage of another. That can
only make the search miss a smaller set in that unusual case; what it returns was tested.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

T = TypeVar("T")


class Outcome(str, Enum):
    REPRODUCES = "reproduces"
    PASSES = "passes"
    UNRESOLVED = "unresolved"


class BudgetSpentError(Exception):
    """The test refused to run: the search may not spend more environments."""


@dataclass(frozen=True)
class SearchResult(Generic[T]):
    culprits: tuple[T, ...]
    complete: bool


def ddmin(changes: Sequence[T], test: Callable[[tuple[T, ...]], Outcome]) -> SearchResult[T]:
    """A 1-minimal subset of ``changes`` for which ``test`` reproduces.

    ``test(changes)`` must reproduce and ``test(())`` must pass; neither is tested again.
    ``test`` may raise ``BudgetSpentError``: the smallest failing set found so far is
    returned, marked incomplete.
    """
    current = tuple(changes)
    granularity = 2
    known = _PassingSets(test)
    try:
        while len(current) >= 2:
            chunks = _split(current, granularity)
            smaller = _first_reproducing(chunks, known.test)
            if smaller is not None:
                current, granularity = smaller, 2
                continue
            complements = [tuple(c for c in current if c not in chunk) for chunk in chunks]
            smaller = _first_reproducing(complements, known.test)
            if smaller is not None:
                current, granularity = smaller, max(granularity - 1, 2)
                continue
            if granularity >= len(current):
                break
            granularity = min(granularity * 2, len(current))
    except BudgetSpentError:
        return SearchResult(current, complete=False)
    return SearchResult(current, complete=True)


class _PassingSets(Generic[T]):
    """``test``, except that a subset of a set that passed passes without being tested."""

    def __init__(self, test: Callable[[tuple[T, ...]], Outcome]) -> None:
        self._test = test
        self._passed: list[frozenset[T]] = []

    def test(self, changes: tuple[T, ...]) -> Outcome:
        candidate = frozenset(changes)
        if any(candidate <= passed for passed in self._passed):
            return Outcome.PASSES
        outcome = self._test(changes)
        if outcome is Outcome.PASSES:
            self._passed.append(candidate)
        return outcome


def _first_reproducing(
    candidates: Sequence[tuple[T, ...]], test: Callable[[tuple[T, ...]], Outcome]
) -> tuple[T, ...] | None:
    for candidate in candidates:
        if candidate and test(candidate) is Outcome.REPRODUCES:
            return candidate
    return None


def _split(items: tuple[T, ...], parts: int) -> list[tuple[T, ...]]:
    """``items`` in ``parts`` contiguous chunks whose sizes differ by at most one."""
    size, extra = divmod(len(items), parts)
    chunks, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        chunks.append(items[start:end])
        start = end
    return chunks
