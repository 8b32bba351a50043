"""Comparing outputs with golden ones: each measure against an independent computation."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from modelseal.golden.compare import OutputComparison, compare_output, ulp_distance
from modelseal.golden.tolerance import default_policy, parse_policy
from modelseal.types import Array, OutputKind, TensorSpec

INT64_MAX = int(np.iinfo(np.int64).max)
FLOATS = [np.float16, np.float32, np.float64]


def _compare(expected: Array, actual: Array, policy: str) -> OutputComparison:
    return compare_output("out", expected, actual, parse_policy(policy))


def _steps(start: Array, count: int, toward: float) -> Array:
    value = start.copy()
    for _ in range(count):
        value = np.nextafter(value, np.asarray(toward, dtype=start.dtype))
    return value


def _as_json(comparison: OutputComparison) -> str:
    return json.dumps(comparison.model_dump(mode="json"), allow_nan=False)


# --- ULP distance -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("start", [1.0, -1.0, 0.0, 1e-3, -3.5, 1000.0])
@pytest.mark.parametrize("toward", [np.inf, -np.inf])
def test_k_nextafter_steps_are_k_ulp(dtype: npt.DTypeLike, start: float, toward: float) -> None:
    expected = np.full(5, start, dtype=dtype)
    actual = np.stack([_steps(expected[:1], k, toward)[0] for k in range(5)])

    assert ulp_distance(expected, actual).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("dtype", FLOATS)
def test_ulp_distance_across_zero_counts_both_zeros_as_one_point(dtype: npt.DTypeLike) -> None:
    smallest = np.array([-np.finfo(dtype).smallest_subnormal], dtype=dtype)
    # nextafter goes -tiny -> -0.0 -> +tiny, so two steps cross zero.
    crossed = _steps(smallest, 2, np.inf)

    assert crossed[0] == np.finfo(dtype).smallest_subnormal
    assert ulp_distance(smallest, crossed).tolist() == [2]
    negative_zero, zero = np.array([-0.0], dtype=dtype), np.array([0.0], dtype=dtype)
    assert ulp_distance(negative_zero, zero).tolist() == [0]


@pytest.mark.parametrize(
    ("dtype", "mantissa_bits"), [(np.float16, 10), (np.float32, 23), (np.float64, 52)]
)
def test_one_binade_is_two_to_the_mantissa_bits(dtype: npt.DTypeLike, mantissa_bits: int) -> None:
    one, two, minus_one = (np.array([v], dtype=dtype) for v in (1.0, 2.0, -1.0))

    assert ulp_distance(one, two).tolist() == [2**mantissa_bits]
    # From -1 to 1: one binade per exponent down to the subnormals, on each side of zero.
    exponent_bias = (np.finfo(dtype).maxexp) - 1
    assert ulp_distance(minus_one, one).tolist() == [2 * exponent_bias * 2**mantissa_bits]


def test_ulp_distance_handles_nan_infinity_and_saturates_at_int64() -> None:
    big = np.finfo(np.float64).max
    expected = np.array([np.nan, np.nan, 1.0, np.inf, -np.inf, big], dtype=np.float64)
    actual = np.array([np.nan, 1.0, np.nan, np.inf, -np.inf, -big], dtype=np.float64)

    assert ulp_distance(expected, actual).tolist() == [0, INT64_MAX, INT64_MAX, 0, 0, INT64_MAX]


def test_ulp_distance_refuses_mixed_or_non_float_dtypes() -> None:
    with pytest.raises(ValueError, match="float16/32/64"):
        ulp_distance(np.zeros(2, np.float32), np.zeros(2, np.float64))
    with pytest.raises(ValueError, match="float16/32/64"):
        ulp_distance(np.zeros(2, np.int32), np.zeros(2, np.int32))


@pytest.mark.parametrize("dtype", FLOATS)
def test_the_ulp_check_passes_at_n_steps_and_fails_one_beyond(dtype: npt.DTypeLike) -> None:
    expected = np.array([[0.25, -7.0], [3.0, 1.0]], dtype=dtype)
    three = expected.copy()
    three[1, 0] = _steps(expected[1, :1], 3, np.inf)[0]
    four = three.copy()
    four[0, 1] = _steps(expected[0, 1:], 4, -np.inf)[0]

    passing = _compare(expected, three, "ulp:3")
    failing = _compare(expected, four, "ulp:3")

    assert passing.passed
    assert passing.max_ulp_diff == 3
    assert not failing.passed
    assert failing.max_ulp_diff == 4
    assert failing.rows_out_of_tolerance == 1
    assert failing.checks[0].detail.startswith("1 of 2 rows beyond 3 ULP")


def test_max_ulp_diff_leaves_out_elements_below_the_floor_but_the_check_does_not() -> None:
    expected = np.array([1000.0, 1e-6], dtype=np.float32)
    actual = np.array([_steps(expected[:1], 2, np.inf)[0], 0.0], dtype=np.float32)

    comparison = _compare(expected, actual, "ulp:2")

    assert comparison.ulp_floor == pytest.approx(1.0)  # 1e-3 of the largest |value|
    assert comparison.max_ulp_diff == 2
    assert not comparison.passed  # 1e-6 -> 0 is millions of ULPs


# --- exact and allclose -------------------------------------------------------------------------


def test_equal_labels_pass_exact_and_one_changed_label_fails_its_row() -> None:
    expected = np.array([3, 1, 4, 1, 5], dtype=np.int64)
    changed = expected.copy()
    changed[2] = 9

    same = _compare(expected, expected.copy(), "exact")
    different = _compare(expected, changed, "exact")

    assert same.passed
    assert same.bitwise_equal
    assert same.max_abs_diff == 0.0
    assert same.max_ulp_diff is None
    assert not different.passed
    assert different.rows_out_of_tolerance == 1
    assert different.max_abs_diff == 5.0


def test_exact_is_bitwise_for_floats_but_nan_matches_nan() -> None:
    expected = np.array([np.nan, 0.0, np.inf, 1.5], dtype=np.float32)
    with_nan = expected.copy()
    signed_zero = expected.copy()
    signed_zero[1] = -0.0

    assert _compare(expected, with_nan, "exact").passed
    flipped = _compare(expected, signed_zero, "exact+allclose:0,0")
    assert [check.passed for check in flipped.checks] == [False, True]
    assert not flipped.bitwise_equal


def test_nan_against_a_number_fails_every_elementwise_check() -> None:
    expected = np.array([[1.0, np.nan], [2.0, 3.0]], dtype=np.float32)
    actual = np.array([[1.0, 0.5], [2.0, 3.0]], dtype=np.float32)

    comparison = _compare(expected, actual, "allclose:1,1+ulp:1000")

    assert [check.passed for check in comparison.checks] == [False, False]
    assert comparison.max_ulp_diff == INT64_MAX
    assert comparison.max_abs_diff == 0.0  # over elements finite in both
    assert comparison.rows_out_of_tolerance == 1
    _as_json(comparison)


@pytest.mark.parametrize(
    ("expected_value", "actual_value", "close"),
    [
        (np.inf, np.inf, True),
        (-np.inf, -np.inf, True),
        (np.inf, -np.inf, False),
        (np.inf, 1e30, False),
        (1e30, np.inf, False),
    ],
)
def test_infinities_are_close_only_to_the_same_infinity(
    expected_value: float, actual_value: float, close: bool
) -> None:
    expected = np.array([expected_value], dtype=np.float64)
    actual = np.array([actual_value], dtype=np.float64)

    comparison = _compare(expected, actual, "allclose:1,1")

    assert comparison.passed is close
    assert bool(np.isclose(actual, expected, rtol=1, atol=1)[0]) is close
    _as_json(comparison)


@pytest.mark.parametrize(("index", "away"), [(0, np.inf), (1, -np.inf), (2, np.inf)])
def test_allclose_passes_at_the_boundary_and_fails_one_ulp_beyond(index: int, away: float) -> None:
    # rtol=0.5, atol=0.25: the allowed |diff| is 0.25 + 0.5 * |expected| = 0.75, 1.25, 0.25.
    # Every value here is exact in binary, and each actual's ULP is at least its diff's ULP,
    # so one step away from the boundary is a strictly larger diff.
    expected = np.array([1.0, -2.0, 0.0], dtype=np.float64)
    at_boundary = np.array([1.75, -3.25, 0.25], dtype=np.float64)
    beyond = at_boundary.copy()
    beyond[index] = np.nextafter(at_boundary[index], away)

    assert _compare(expected, at_boundary, "allclose:0.5,0.25").passed
    assert not _compare(expected, beyond, "allclose:0.5,0.25").passed
    assert not np.isclose(beyond, expected, rtol=0.5, atol=0.25).all()


def test_allclose_rows_agree_with_numpy_isclose() -> None:
    rng = np.random.default_rng(3)
    expected = rng.normal(size=(200, 8))
    actual = expected + rng.normal(scale=1e-3, size=expected.shape) * (rng.random((200, 1)) < 0.3)
    actual[5, 2] = np.nan
    expected[6, 3] = actual[6, 3] = np.nan

    comparison = _compare(expected, actual, "allclose:1e-3,1e-4")

    numpy_close = np.isclose(actual, expected, rtol=1e-3, atol=1e-4, equal_nan=True)
    rows_beyond = int((~numpy_close).any(axis=1).sum())
    assert 0 < rows_beyond < 200
    assert comparison.rows_out_of_tolerance == rows_beyond
    assert comparison.checks[0].detail.startswith(f"{rows_beyond} of 200 rows beyond")


def test_float16_differences_are_measured_without_overflow() -> None:
    expected = np.array([60000.0], dtype=np.float16)
    actual = np.array([-60000.0], dtype=np.float16)

    comparison = _compare(expected, actual, "allclose:1e-2,1e-2")

    assert comparison.max_abs_diff == 120000.0
    assert not comparison.passed


# --- top-k --------------------------------------------------------------------------------------


def _two_rows() -> tuple[Array, Array]:
    expected = np.array([[0.9, 0.8, 0.7, 0.1, 0.0], [0.9, 0.8, 0.7, 0.1, 0.0]])
    # Row 0: item 1 drops out of the top 3 for item 3; ranks are 0, 3, 2.
    # Row 1: the top 3 are the same items in reverse order; ranks are 2, 1, 0.
    actual = np.array([[0.9, 0.1, 0.7, 0.8, 0.0], [0.7, 0.8, 0.9, 0.1, 0.0]])
    return expected, actual


def test_topk_overlap_counts_shared_items_per_row() -> None:
    expected, actual = _two_rows()

    strict = _compare(expected, actual, "topk:3")
    loose = _compare(expected, actual, "topk:3,0.6")

    assert not strict.passed
    assert strict.topk_k == 3
    assert strict.topk_overlap_min == pytest.approx(2 / 3)
    assert strict.topk_overlap_mean == pytest.approx((2 / 3 + 1) / 2)
    assert strict.rows_out_of_tolerance == 1
    assert loose.passed


def test_ordered_topk_counts_only_items_at_the_same_rank() -> None:
    expected, actual = _two_rows()

    ordered = _compare(expected, actual, "topk:3,0.3,ordered")
    stricter = _compare(expected, actual, "topk:3,0.5,ordered")

    assert ordered.passed
    assert ordered.topk_overlap_min == pytest.approx(1 / 3)
    assert ordered.topk_overlap_mean == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert not stricter.passed
    assert stricter.rows_out_of_tolerance == 1


def test_k_beyond_the_columns_is_clamped() -> None:
    expected, actual = _two_rows()

    unordered = _compare(expected, actual, "topk:10")
    ordered = _compare(expected, actual, "topk:10,ordered")

    assert unordered.passed  # all five items in both: full overlap
    assert unordered.topk_k == 5
    assert "clamped from 10 to 5" in unordered.checks[0].detail
    # Ranks 0,3,2,1,4 (row 0) and 2,1,0,3,4 (row 1) against 0,1,2,3,4: three of five agree.
    assert ordered.topk_overlap_min == pytest.approx(3 / 5)
    assert not ordered.passed


def test_ties_give_a_valid_overlap() -> None:
    expected = np.ones((3, 6), dtype=np.float32)
    actual = np.array([[1, 1, 1, 1, 1, 1], [2, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]], np.float32)

    same = _compare(expected, expected.copy(), "topk:3")
    tied = _compare(expected, actual, "topk:3,0")

    assert same.passed
    assert same.topk_overlap_min == 1.0
    # Ties rank by column: the expected top 3 is columns 0-2 in every row, and so is the
    # actual one in rows 0 and 1; row 2 ranks columns 3-5 first.
    assert tied.topk_overlap_min == 0.0
    assert tied.topk_overlap_mean == pytest.approx(2 / 3)


def test_loose_allclose_passes_where_topk_catches_reordered_near_ties() -> None:
    row = np.concatenate(
        [np.arange(17.0, 9.0, -1.0), [5.00, 4.99, 4.98, 4.97], np.linspace(1.0, 0.0, 18)]
    )
    expected = np.tile(row, (4, 1))
    actual = expected.copy()
    # Items ranked 9 and 10 slip below those ranked 11 and 12: two of the top 10 change.
    actual[:, 8:10] -= 0.05
    actual[:, 10:12] += 0.05

    loose = _compare(expected, actual, "allclose:1e-1,1e-1")
    ranked = _compare(expected, actual, "allclose:1e-1,1e-1+topk:10,0.9")

    assert loose.passed
    assert [check.passed for check in ranked.checks] == [True, False]
    assert ranked.topk_overlap_min is not None
    assert ranked.topk_overlap_min < 0.9
    assert ranked.topk_overlap_min == pytest.approx(0.8)
    assert ranked.rows_out_of_tolerance == 4


def test_topk_on_a_1d_output_fails_with_a_reason() -> None:
    labels = np.array([0.0, 1.0, 2.0])

    comparison = _compare(labels, labels.copy(), "topk:2")

    assert not comparison.passed
    assert "2-D" in comparison.checks[0].detail
    assert comparison.rows_out_of_tolerance == 3


# --- argmax -------------------------------------------------------------------------------------


def test_argmax_agreement_on_2d_scores() -> None:
    expected = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], dtype=np.float32)
    actual = expected.copy()
    actual[3] = [0.4, 0.6]

    at_threshold = _compare(expected, actual, "argmax:0.75")
    above_threshold = _compare(expected, actual, "argmax:0.76")

    assert at_threshold.passed
    assert at_threshold.argmax_agreement == 0.75
    assert at_threshold.rows_out_of_tolerance == 1  # the disagreeing row is still reported
    assert not above_threshold.passed


def test_argmax_on_1d_labels_compares_the_labels() -> None:
    expected = np.array(["cat", "dog", "cat", "bird", "dog"])
    actual = np.array(["cat", "dog", "dog", "bird", "dog"])

    comparison = _compare(expected, actual, "argmax:0.8")

    assert comparison.passed
    assert comparison.argmax_agreement == 0.8
    assert comparison.max_abs_diff is None


def test_argmax_agreement_is_reported_for_2d_floats_even_without_an_argmax_check() -> None:
    expected = np.array([[0.1, 0.9], [0.8, 0.2]], dtype=np.float32)
    actual = np.array([[0.1, 0.9], [0.2, 0.8]], dtype=np.float32)

    scores = _compare(expected, actual, "allclose:1,1")
    vector = _compare(expected[:, 0], actual[:, 0], "allclose:1,1")

    assert scores.argmax_agreement == 0.5
    assert scores.rows_out_of_tolerance == 0  # informative only: not a check of the policy
    assert vector.argmax_agreement is None


# --- shapes and dtypes --------------------------------------------------------------------------


def test_a_shape_mismatch_is_a_failed_comparison_not_an_exception() -> None:
    expected = np.zeros((4, 3), dtype=np.float32)
    actual = np.zeros((4, 2), dtype=np.float32)

    comparison = _compare(expected, actual, "allclose:1e-4,1e-4+topk:2")

    assert not comparison.passed
    assert comparison.rows_out_of_tolerance == 4
    assert len(comparison.checks) == 2
    for check in comparison.checks:
        assert not check.passed
        assert "(4, 2)" in check.detail
        assert "(4, 3)" in check.detail
    _as_json(comparison)


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        (np.zeros(3, np.float32), np.array(["a", "b", "c"])),
        (np.zeros(3, np.float32), np.zeros(3, np.complex64)),
        (np.array([1, 2, 3]), np.array([1.0, 2.0, 3.0])),
        (np.array(["a", "b"]), np.array([b"a", b"b"])),
    ],
)
def test_incomparable_dtypes_fail_naming_both(expected: Array, actual: Array) -> None:
    comparison = _compare(expected, actual, "exact")

    assert not comparison.passed
    assert str(expected.dtype) in comparison.checks[0].detail
    assert str(actual.dtype) in comparison.checks[0].detail


def test_integers_that_do_not_fit_the_golden_dtype_fail() -> None:
    comparison = _compare(np.array([44], np.uint8), np.array([300], np.int64), "exact")

    assert not comparison.passed  # 300 would wrap to 44 if simply cast
    assert "do not fit" in comparison.checks[0].detail


def test_compatible_dtypes_are_compared_in_the_golden_dtype() -> None:
    golden = np.array([0.1, 0.2], dtype=np.float32)
    wider = golden.astype(np.float64) + 1e-12  # rounds back to the same float32

    assert _compare(golden, wider, "exact").bitwise_equal
    assert _compare(np.array([1, 2], np.int32), np.array([1, 2], np.int64), "exact").passed


def test_longer_strings_are_not_truncated_into_a_match() -> None:
    comparison = _compare(np.array(["cat"]), np.array(["catdog"]), "exact")

    assert not comparison.passed


def test_strings_decoded_as_python_objects_compare_with_a_string_golden() -> None:
    # What a JSON client gets for a BYTES output: an object array of str.
    golden = np.array([["setosa", "virginica"], ["versicolor", "setosa"]])
    decoded = np.array(golden.tolist(), dtype=object)
    assert _compare(golden, decoded, "exact").bitwise_equal
    decoded[1, 0] = "versicolour"
    changed = _compare(golden, decoded, "exact")
    assert not changed.passed and changed.rows_out_of_tolerance == 1
    as_bytes = np.array([b"cat", b"dog"], dtype=object)
    assert _compare(np.array([b"cat", b"dog"]), as_bytes, "exact").passed


@pytest.mark.parametrize(
    ("golden", "elements"),
    [
        (np.array(["1", "2"]), [1, 2]),
        (np.array(["a", "b"]), ["a", None]),
        (np.array(["a", "b"]), [b"a", b"b"]),
        (np.array([b"a", b"b"]), ["a", "b"]),
    ],
)
def test_objects_that_are_not_the_golden_text_kind_fail_naming_their_type(
    golden: Array, elements: list[object]
) -> None:
    comparison = _compare(golden, np.array(elements, dtype=object), "exact")

    assert not comparison.passed
    odd = next(e for e in elements if not isinstance(e, str if golden.dtype.kind == "U" else bytes))
    assert type(odd).__name__ in comparison.checks[0].detail
    assert str(golden.dtype) in comparison.checks[0].detail


def test_scalars_and_empty_outputs_compare_without_error() -> None:
    scalar = _compare(np.array(1.5, np.float32), np.array(1.5, np.float32), "exact")
    empty = _compare(
        np.zeros((0, 5), np.float32), np.zeros((0, 5), np.float32), "allclose:0,0+topk:3+argmax"
    )

    assert scalar.passed
    assert scalar.rows == 1
    assert empty.passed
    assert empty.rows == 0
    assert empty.topk_overlap_min is None
    assert empty.argmax_agreement is None
    _as_json(empty)


def test_complex_outputs_support_allclose_but_not_ulp() -> None:
    expected = np.array([1 + 1j, 2 - 1j], dtype=np.complex64)
    actual = expected + np.complex64(1e-6j)

    comparison = _compare(expected, actual, "allclose:1e-4,1e-4+ulp:4")

    assert [check.passed for check in comparison.checks] == [True, False]
    assert "float16/32/64" in comparison.checks[1].detail


# --- the design goal of the defaults ------------------------------------------------------------

Float32Array = npt.NDArray[np.float32]
Matmul = Callable[[Float32Array, Float32Array], Float32Array]


def _blas(left: Float32Array, right: Float32Array) -> Float32Array:
    return left @ right


def _chunked(left: Float32Array, right: Float32Array) -> Float32Array:
    """The same float32 product, summed over the inner axis in chunks of 16."""
    out = np.zeros((left.shape[0], right.shape[1]), dtype=np.float32)
    for start in range(0, left.shape[1], 16):
        out += left[:, start : start + 16] @ right[start : start + 16]
    return out


def _row_by_row(left: Float32Array, right: Float32Array) -> Float32Array:
    """The same float32 product, one row at a time with numpy's pairwise summation."""
    rows = [np.add.reduce(row[:, None] * right, axis=0, dtype=np.float32) for row in left]
    return np.stack(rows)


class _Mlp:
    """A float32 two-layer MLP whose logits are of order 1."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        self.inputs = self.rng.normal(size=(256, 64)).astype(np.float32)
        self.hidden = (self.rng.normal(size=(64, 128)) / 8).astype(np.float32)
        self.output = (self.rng.normal(size=(128, 20)) / np.sqrt(128)).astype(np.float32)

    def logits(self, matmul: Matmul, output: Float32Array | None = None) -> Float32Array:
        output = self.output if output is None else output
        return matmul(np.maximum(matmul(self.inputs, self.hidden), np.float32(0)), output)

    def perturbed(self, weights: Float32Array, relative: float) -> Float32Array:
        noise = self.rng.normal(size=weights.shape).astype(np.float32)
        return weights * (np.float32(1) + np.float32(relative) * noise)


def _scores_policy(golden: Array) -> str:
    spec = TensorSpec(name="logits", dtype="float32", shape=(-1, 20), kind=OutputKind.SCORES)
    return str(default_policy(spec, golden))


@pytest.mark.parametrize("other_order", [_chunked, _row_by_row])
def test_default_scores_policy_passes_a_different_summation_order(other_order: Matmul) -> None:
    mlp = _Mlp()
    golden = mlp.logits(_blas)
    reordered = mlp.logits(other_order)

    comparison = _compare(golden, reordered, _scores_policy(golden))

    if comparison.bitwise_equal:
        pytest.skip("this machine's BLAS happens to sum in the other order too: nothing to show")
    assert comparison.max_abs_diff is not None
    assert 0 < comparison.max_abs_diff < 1e-4
    assert comparison.passed
    assert comparison.rows_out_of_tolerance == 0


def test_default_scores_policy_passes_blas_sized_noise_of_3e_5() -> None:
    mlp = _Mlp()
    golden = mlp.logits(_blas)
    noise = mlp.rng.uniform(-3e-5, 3e-5, size=golden.shape).astype(np.float32)

    comparison = _compare(golden, golden + noise, _scores_policy(golden))

    assert comparison.passed


def test_default_scores_policy_fails_weights_perturbed_by_one_percent() -> None:
    mlp = _Mlp()
    golden = mlp.logits(_blas)
    broken = mlp.logits(_blas, output=mlp.perturbed(mlp.output, 1e-2))

    comparison = _compare(golden, broken, _scores_policy(golden))

    assert not comparison.passed
    assert not comparison.checks[0].passed
    assert comparison.rows_out_of_tolerance > 128
