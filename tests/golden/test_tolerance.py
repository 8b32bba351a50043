"""Tolerance policies: the text grammar round-trips, bad text is refused, defaults per output."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from modelseal.errors import UsageError
from modelseal.golden.compare import compare_output
from modelseal.golden.tolerance import (
    GRAMMAR,
    AllClose,
    Argmax,
    Check,
    Exact,
    TolerancePolicy,
    TopK,
    Ulp,
    default_policy,
    parse_policy,
    parse_tolerance_options,
)
from modelseal.types import Array, OutputKind, TensorSpec

# --- grammar ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "checks", "canonical"),
    [
        ("exact", (Exact(),), "exact"),
        ("ulp:0", (Ulp(0),), "ulp:0"),
        ("ulp:16", (Ulp(16),), "ulp:16"),
        ("allclose:1e-4,1e-5", (AllClose(1e-4, 1e-5),), "allclose:0.0001,1e-05"),
        ("allclose:0,0", (AllClose(0.0, 0.0),), "allclose:0.0,0.0"),
        ("allclose:-0,0", (AllClose(0.0, 0.0),), "allclose:0.0,0.0"),
        # '+' in an exponent is part of the number, not a separator between checks.
        ("allclose:1e+20,2.5E3", (AllClose(1e20, 2500.0),), "allclose:1e20,2500.0"),
        ("topk:10", (TopK(10),), "topk:10"),
        ("topk:3,1.0", (TopK(3),), "topk:3"),
        ("topk:10,0.9", (TopK(10, 0.9),), "topk:10,0.9"),
        ("topk:5,ordered", (TopK(5, ordered=True),), "topk:5,ordered"),
        ("topk:5,0.8,ordered", (TopK(5, 0.8, ordered=True),), "topk:5,0.8,ordered"),
        ("argmax", (Argmax(),), "argmax"),
        ("argmax:1", (Argmax(),), "argmax"),
        ("argmax:0.95", (Argmax(0.95),), "argmax:0.95"),
        (
            " allclose : 1e-4 , 1e-5 + topk:10,0.9 ",
            (AllClose(1e-4, 1e-5), TopK(10, 0.9)),
            "allclose:0.0001,1e-05+topk:10,0.9",
        ),
        (
            "EXACT+argmax:0.5+ulp:2+topk: 4 , ORDERED",
            (Exact(), Argmax(0.5), Ulp(2), TopK(4, ordered=True)),
            "exact+argmax:0.5+ulp:2+topk:4,ordered",
        ),
    ],
)
def test_every_grammar_form_parses_and_round_trips(
    text: str, checks: tuple[Check, ...], canonical: str
) -> None:
    policy = parse_policy(text)

    assert policy == TolerancePolicy(checks)
    assert str(policy) == canonical
    assert parse_policy(canonical) == policy


@pytest.mark.parametrize(
    "value", [1e-300, 5e-324, 3e-05, 0.1, 1 / 3, 123456.789, 1e16, 1.7976931348623157e308]
)
def test_numbers_of_any_magnitude_round_trip_without_a_stray_plus(value: float) -> None:
    policy = TolerancePolicy((AllClose(value, value), TopK(7, min(value, 1.0))))

    text = str(policy)

    assert text.count("+") == 1
    assert parse_policy(text) == policy


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty tolerance policy"),
        ("   ", "empty tolerance policy"),
        ("exact+", "stray '+'"),
        ("exact++argmax", "stray '+'"),
        ("tpok:5", "unknown check 'tpok'"),
        ("exact:1", "exact takes no arguments"),
        ("ulp", "ulp takes 1 argument(s), got 0"),
        ("ulp:-1", "N must be >= 0, got -1"),
        ("ulp:1.5", "N must be a whole number, got '1.5'"),
        ("allclose:1e-4", "allclose takes 2 argument(s), got 1"),
        ("allclose:-1e-4,0", "RTOL must be >= 0"),
        ("allclose:1e-4,-1", "ATOL must be >= 0"),
        ("allclose:nan,0", "RTOL must be finite"),
        ("allclose:1e-4,inf", "ATOL must be finite"),
        ("allclose:x,0", "RTOL must be a number, got 'x'"),
        ("topk:0", "K must be >= 1, got 0"),
        ("topk:5,1.5", "MIN_OVERLAP must be a fraction in [0, 1]"),
        ("topk:5,-0.1", "MIN_OVERLAP must be a fraction in [0, 1]"),
        ("topk:5,ordered,0.9", "expected topk:K[,MIN_OVERLAP][,ordered]"),
        ("topk:5,0.9,ordered,ordered", "topk takes 1 to 3 argument(s), got 4"),
        ("argmax:1.01", "MIN_AGREEMENT must be a fraction in [0, 1]"),
        ("argmax:0.5,0.5", "argmax takes 0 to 1 argument(s), got 2"),
    ],
)
def test_bad_policy_text_is_refused_naming_the_problem_and_showing_the_grammar(
    text: str, problem: str
) -> None:
    with pytest.raises(UsageError) as caught:
        parse_policy(text)

    message = str(caught.value)
    assert problem in message
    assert GRAMMAR in message


def test_the_error_names_the_bad_check_within_a_combination() -> None:
    with pytest.raises(UsageError, match=r"bad check 'topk:0': K must be >= 1"):
        parse_policy("allclose:1e-4,1e-5+topk:0")


def test_checks_built_in_code_are_validated_like_parsed_ones() -> None:
    with pytest.raises(UsageError, match="at least one check"):
        TolerancePolicy(())
    with pytest.raises(UsageError, match="N must be >= 0"):
        Ulp(-3)
    with pytest.raises(UsageError, match="MIN_AGREEMENT"):
        Argmax(-0.5)


# --- CLI options --------------------------------------------------------------------------------


def test_no_options_give_no_overrides() -> None:
    assert parse_tolerance_options([], ["logits", "label"]) == {}


def test_a_bare_policy_applies_to_every_output() -> None:
    policies = parse_tolerance_options(["exact"], ["logits", "label"])

    assert policies == {"logits": parse_policy("exact"), "label": parse_policy("exact")}


def test_a_named_policy_applies_to_its_output_and_later_options_win() -> None:
    outputs = ["logits", "label"]

    specific_last = parse_tolerance_options(["allclose:1e-3,1e-3", " label = argmax "], outputs)
    everything_last = parse_tolerance_options(["label=argmax", "allclose:1e-3,1e-3"], outputs)
    repeated = parse_tolerance_options(["logits=topk:3,0.5", "logits=ulp:2"], outputs)

    assert specific_last == {
        "logits": parse_policy("allclose:1e-3,1e-3"),
        "label": parse_policy("argmax"),
    }
    assert everything_last == {
        "logits": parse_policy("allclose:1e-3,1e-3"),
        "label": parse_policy("allclose:1e-3,1e-3"),
    }
    assert repeated == {"logits": parse_policy("ulp:2")}


def test_an_unknown_output_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(UsageError) as caught:
        parse_tolerance_options(["probs=exact"], ["logits", "label"])

    message = str(caught.value)
    assert "'probs'" in message
    assert "logits, label" in message


def test_a_bad_policy_in_an_option_is_refused() -> None:
    with pytest.raises(UsageError, match="unknown check 'bogus'"):
        parse_tolerance_options(["logits=bogus"], ["logits"])


# --- defaults -----------------------------------------------------------------------------------


def _spec(golden: Array, kind: OutputKind | None) -> TensorSpec:
    return TensorSpec(name="out", dtype=str(golden.dtype), shape=golden.shape, kind=kind)


def _default(golden: Array, kind: OutputKind | None) -> TolerancePolicy:
    return default_policy(_spec(golden, kind), golden)


@pytest.mark.parametrize(
    "golden",
    [
        np.array([0.0, 1.0, 2.0], dtype=np.float32),
        np.array([0, 1, 2], dtype=np.int64),
        np.array(["cat", "dog"]),
    ],
)
def test_labels_are_exact_whatever_their_dtype(golden: Array) -> None:
    assert _default(golden, OutputKind.LABEL) == TolerancePolicy((Exact(),))


@pytest.mark.parametrize(
    "golden",
    [
        np.array([[1, 2], [3, 4]], dtype=np.int64),
        np.array([[1, 2, 3]], dtype=np.uint8),
        np.array([True, False]),
        np.array(["cat", "dog"]),
        np.array([b"cat", b"dog"]),
    ],
)
def test_non_float_outputs_are_exact_even_when_called_scores(golden: Array) -> None:
    assert _default(golden, OutputKind.SCORES) == TolerancePolicy((Exact(),))


@pytest.mark.parametrize(
    ("dtype", "largest", "rtol", "atol"),
    [
        # atol = rtol * max finite |golden|, rounded to 3 significant digits.
        (np.float16, 3.0, 1e-2, 0.03),
        (np.float32, 2.5, 1e-4, 0.00025),
        (np.float64, 123.456, 1e-6, 0.000123),
    ],
)
def test_float_outputs_get_allclose_scaled_to_the_largest_finite_value(
    dtype: npt.DTypeLike, largest: float, rtol: float, atol: float
) -> None:
    golden = np.array([0.5, -largest, np.nan, np.inf, -np.inf], dtype=dtype)

    policy = _default(golden, OutputKind.REGRESSION)

    assert policy == TolerancePolicy((AllClose(rtol, atol),))
    assert parse_policy(str(policy)) == policy


@pytest.mark.parametrize(
    "golden",
    [
        np.zeros((3, 2), dtype=np.float32),
        np.full((3, 2), np.nan, dtype=np.float32),
        np.array([], dtype=np.float32),
    ],
)
def test_a_float_output_with_no_nonzero_finite_value_uses_scale_one(golden: Array) -> None:
    assert _default(golden, None) == TolerancePolicy((AllClose(1e-4, 1e-4),))


def test_wide_2d_scores_add_top10_with_overlap_0_9() -> None:
    golden = np.linspace(-4.0, 2.0, 4 * 50, dtype=np.float32).reshape(4, 50)

    policy = _default(golden, OutputKind.SCORES)

    assert policy == TolerancePolicy((AllClose(1e-4, 0.0004), TopK(10, 0.9)))
    assert str(policy) == "allclose:0.0001,0.0004+topk:10,0.9"


@pytest.mark.parametrize(
    ("columns", "k", "overlap"),
    [(4, 2, 0.5), (7, 3, 0.66), (10, 5, 0.8), (13, 6, 0.83), (19, 9, 0.88), (20, 10, 0.9)],
)
def test_narrower_scores_check_the_top_half_allowing_one_swap(
    columns: int, k: int, overlap: float
) -> None:
    golden = np.ones((4, columns), dtype=np.float32)

    policy = _default(golden, OutputKind.SCORES)

    assert policy.checks[1:] == (TopK(k, overlap),)


@pytest.mark.parametrize("k", range(2, 11))
def test_the_default_topk_allows_exactly_one_item_to_cross_the_boundary(k: int) -> None:
    columns = 2 * k
    golden = np.arange(columns, 0, -1, dtype=np.float32)[None, :]
    policy = _default(golden, OutputKind.SCORES)
    (topk,) = [check for check in policy.checks if isinstance(check, TopK)]
    assert topk.k == k
    # Swap the item at rank K with the one just outside (one swap), then two such swaps.
    one_swap, two_swaps = golden.copy(), golden.copy()
    one_swap[0, [k - 1, k]] = one_swap[0, [k, k - 1]]
    two_swaps[0, [k - 2, k - 1, k, k + 1]] = two_swaps[0, [k, k + 1, k - 2, k - 1]]
    assert compare_output("s", golden, one_swap, TolerancePolicy((topk,))).passed
    assert not compare_output("s", golden, two_swaps, TolerancePolicy((topk,))).passed


@pytest.mark.parametrize("columns", [2, 3])
def test_three_columns_or_fewer_get_no_topk(columns: int) -> None:
    golden = np.ones((4, columns), dtype=np.float32)

    assert _default(golden, OutputKind.SCORES) == TolerancePolicy((AllClose(1e-4, 1e-4),))


@pytest.mark.parametrize(
    ("shape", "kind"),
    [
        ((4, 2), OutputKind.SCORES),
        ((4,), OutputKind.SCORES),
        ((4, 3, 5), OutputKind.SCORES),
        ((4, 50), OutputKind.PROBABILITIES),
        ((4, 50), OutputKind.EMBEDDING),
        ((4, 50), None),
    ],
)
def test_other_float_outputs_get_allclose_alone(shape: tuple[int, ...], kind: OutputKind) -> None:
    golden = np.ones(shape, dtype=np.float32)

    assert _default(golden, kind) == TolerancePolicy((AllClose(1e-4, 1e-4),))
