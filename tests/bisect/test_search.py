"""ddmin over plain sets: what it keeps, how it treats untestable sets, and its budget."""

from __future__ import annotations

from collections.abc import Callable

from modelseal.bisect.search import BudgetSpentError, Outcome, ddmin

ITEMS = tuple("abcdefgh")
Test = Callable[[tuple[str, ...]], Outcome]


def counting(test: Test) -> tuple[Test, list[tuple[str, ...]]]:
    calls: list[tuple[str, ...]] = []

    def wrapped(subset: tuple[str, ...]) -> Outcome:
        calls.append(subset)
        return test(subset)

    return wrapped, calls


def fails_with(*needed: str) -> Test:
    return lambda subset: Outcome.REPRODUCES if set(needed) <= set(subset) else Outcome.PASSES


def test_one_cause_among_eight_is_found_in_a_few_tests() -> None:
    test, calls = counting(fails_with("f"))
    result = ddmin(ITEMS, test)
    assert result.culprits == ("f",) and result.complete
    assert len(set(calls)) <= 8


def test_two_changes_that_only_fail_together_are_both_kept() -> None:
    result = ddmin(ITEMS, fails_with("b", "g"))
    assert sorted(result.culprits) == ["b", "g"] and result.complete


def test_a_change_that_cannot_be_installed_without_another_is_kept_with_it() -> None:
    # "c" is the cause, but any set holding "c" without "h" cannot be installed.
    def test(subset: tuple[str, ...]) -> Outcome:
        if "c" in subset and "h" not in subset:
            return Outcome.UNRESOLVED
        return Outcome.REPRODUCES if "c" in subset else Outcome.PASSES

    result = ddmin(ITEMS, test)
    assert sorted(result.culprits) == ["c", "h"] and result.complete
    assert test(("h",)) is Outcome.PASSES and test(("c",)) is Outcome.UNRESOLVED


def test_a_spent_budget_returns_the_smallest_failing_set_so_far_as_incomplete() -> None:
    calls: list[tuple[str, ...]] = []

    def test(subset: tuple[str, ...]) -> Outcome:
        if len(calls) == 3:
            raise BudgetSpentError
        calls.append(subset)
        return fails_with("h")(subset)

    result = ddmin(ITEMS, test)
    assert result.complete is False
    assert result.culprits == tuple("efgh")  # abcd passed, efgh failed, then the budget ended
    assert len(calls) == 3


def test_subsets_of_a_set_that_passed_are_not_tested_again() -> None:
    test, calls = counting(fails_with("h"))
    result = ddmin(ITEMS, test)
    assert result.culprits == ("h",)
    assert calls[0] == tuple("abcd")  # passed, so none of its subsets is tried
    assert not any(set(call) < set("abcd") for call in calls)


def test_a_single_change_is_its_own_culprit_without_a_test() -> None:
    test, calls = counting(fails_with("a"))
    assert ddmin(("a",), test).culprits == ("a",)
    assert calls == []
