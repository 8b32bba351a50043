"""Comparing one actual output with its golden reference under a tolerance policy.

A comparison never raises on bad data: a shape or dtype that cannot be compared is a failed
comparison whose detail says why. The report is plain JSON (no NaN or infinity in it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from modelseal.golden.tolerance import (
    AllClose,
    Argmax,
    Check,
    Exact,
    TolerancePolicy,
    TopK,
    Ulp,
    golden_scale,
)
from modelseal.types import Array

BoolArray: TypeAlias = npt.NDArray[np.bool_]
IntArray: TypeAlias = npt.NDArray[np.int64]
FloatArray: TypeAlias = npt.NDArray[np.float64]

ULP_FLOOR_FRACTION = 1e-3
"""Elements with ``|expected|`` below this fraction of the output's scale are left out of
``max_ulp_diff``: near zero a tiny absolute change is an enormous number of ULPs."""

_INT64_MAX = int(np.iinfo(np.int64).max)
_ULP_INT_BY_SIZE: dict[int, np.dtype[np.signedinteger[Any]]] = {
    2: np.dtype(np.int16),
    4: np.dtype(np.int32),
    8: np.dtype(np.int64),
}
_REAL_KINDS = "biuf"
_ALL_TEXT = object()
# A count reaches a fractional threshold despite float rounding (9 of 10 rows vs 0.9).
_EPSILON = 1e-9


class CheckResult(BaseModel):
    """One check of a policy applied to one output."""

    model_config = ConfigDict(frozen=True)

    check: str = Field(description="canonical text of the check")
    passed: bool
    detail: str


class OutputComparison(BaseModel):
    """How one output compares with its golden reference."""

    model_config = ConfigDict(frozen=True)

    name: str
    policy: str = Field(description="canonical text of the policy applied")
    dtype: str = Field(description="the golden dtype, in which the comparison is made")
    rows: int
    bitwise_equal: bool
    max_abs_diff: float | None = Field(
        description="over elements finite in both; None for non-numeric outputs"
    )
    max_ulp_diff: int | None = Field(
        description="float16/32/64 only, over elements with |expected| >= ulp_floor; "
        "a NaN against a number counts as the largest int64"
    )
    ulp_floor: float | None = Field(
        description="elements with |expected| below this are left out of max_ulp_diff"
    )
    rows_out_of_tolerance: int
    topk_k: int | None = Field(description="K of the policy's first topk check, clamped")
    topk_overlap_min: float | None
    topk_overlap_mean: float | None
    argmax_agreement: float | None = Field(
        description="fraction of rows whose argmax (or 1-D label) agrees"
    )
    checks: list[CheckResult]
    passed: bool


def compare_output(
    name: str, expected: Array, actual: Array, policy: TolerancePolicy
) -> OutputComparison:
    """Compare ``actual`` with the golden ``expected``, in the golden's dtype."""
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        reason = f"shape {actual.shape} differs from the golden shape {expected.shape}"
        return _failed(name, expected, policy, reason)
    aligned = _align(expected, actual)
    if isinstance(aligned, str):
        return _failed(name, expected, policy, aligned)
    outcomes = [_evaluate(check, expected, aligned) for check in policy.checks]
    return _summarise(name, expected, aligned, policy, outcomes)


def ulp_distance(expected: Array, actual: Array) -> IntArray:
    """Elementwise distance in units in the last place, for float16/32/64 of one dtype.

    NaN against NaN is 0; NaN against a number, and distances beyond int64, are the
    largest int64.
    """
    if expected.dtype != actual.dtype or not _supports_ulp(expected.dtype):
        raise ValueError(
            f"ULP distance needs two float16/32/64 arrays of one dtype, "
            f"got {expected.dtype} and {actual.dtype}"
        )
    ordered_e, ordered_a = _ordered_bits(expected), _ordered_bits(actual)
    # Opposite signs add magnitudes, which can pass int64 for float64: saturate instead.
    overflow = ((ordered_e < 0) != (ordered_a < 0)) & (
        np.abs(ordered_e) > _INT64_MAX - np.abs(ordered_a)
    )
    distance = np.where(overflow, _INT64_MAX, np.abs(ordered_e - ordered_a))
    nan_e, nan_a = np.isnan(expected), np.isnan(actual)
    distance = np.where(nan_e & nan_a, 0, distance)
    return np.where(nan_e != nan_a, _INT64_MAX, distance).astype(np.int64)


@dataclass(frozen=True)
class _TopKStats:
    k: int
    overlaps: FloatArray


@dataclass(frozen=True)
class _Outcome:
    result: CheckResult
    failing_rows: BoolArray
    topk: _TopKStats | None = None
    agreement: float | None = None


def _evaluate(check: Check, expected: Array, actual: Array) -> _Outcome:
    if isinstance(check, Exact):
        return _check_exact(check, expected, actual)
    if isinstance(check, Ulp):
        return _check_ulp(check, expected, actual)
    if isinstance(check, AllClose):
        return _check_allclose(check, expected, actual)
    if isinstance(check, TopK):
        return _check_topk(check, expected, actual)
    return _check_argmax(check, expected, actual)


def _summarise(
    name: str,
    expected: Array,
    actual: Array,
    policy: TolerancePolicy,
    outcomes: list[_Outcome],
) -> OutputComparison:
    failing = np.zeros(_row_count(expected), dtype=np.bool_)
    for outcome in outcomes:
        failing |= outcome.failing_rows
    topk = next((outcome.topk for outcome in outcomes if outcome.topk is not None), None)
    overlap_min, overlap_mean = _overlap_stats(topk)
    floor = _ulp_floor(expected)
    return OutputComparison(
        name=name,
        policy=str(policy),
        dtype=str(expected.dtype),
        rows=_row_count(expected),
        bitwise_equal=bool(np.all(_same(expected, actual))),
        max_abs_diff=_max_abs_diff(expected, actual),
        max_ulp_diff=None if floor is None else _max_ulp_diff(expected, actual, floor),
        ulp_floor=floor,
        rows_out_of_tolerance=int(failing.sum()),
        topk_k=None if topk is None else topk.k,
        topk_overlap_min=overlap_min,
        topk_overlap_mean=overlap_mean,
        argmax_agreement=_argmax_agreement(outcomes, expected, actual),
        checks=[outcome.result for outcome in outcomes],
        passed=all(outcome.result.passed for outcome in outcomes),
    )


def _failed(name: str, expected: Array, policy: TolerancePolicy, reason: str) -> OutputComparison:
    rows = _row_count(expected)
    return OutputComparison(
        name=name,
        policy=str(policy),
        dtype=str(expected.dtype),
        rows=rows,
        bitwise_equal=False,
        max_abs_diff=None,
        max_ulp_diff=None,
        ulp_floor=None,
        rows_out_of_tolerance=rows,
        topk_k=None,
        topk_overlap_min=None,
        topk_overlap_mean=None,
        argmax_agreement=None,
        checks=[
            CheckResult(check=str(check), passed=False, detail=reason) for check in policy.checks
        ],
        passed=False,
    )


# --- aligning dtypes --------------------------------------------------------------------------


def _align(expected: Array, actual: Array) -> Array | str:
    """``actual`` in the golden's dtype, or why the two cannot be compared."""
    want, got = expected.dtype, actual.dtype
    if want.kind in "fc" and (got.kind in _REAL_KINDS or got.kind == want.kind):
        with np.errstate(all="ignore"):
            return actual.astype(want)
    if want.kind in "biu" and got.kind in "biu":
        return _align_integers(expected, actual)
    if want.kind in "US" and got.kind == want.kind:
        # Casting to the golden's width would truncate longer strings into false matches.
        return actual
    if want.kind in "US" and got.kind == "O":
        return _texts(want, actual)
    if got == want:
        return actual
    return f"actual dtype {got} cannot be compared with the golden dtype {want}"


def _texts(want: np.dtype[Any], actual: Array) -> Array | str:
    """An object array of ``str`` (or ``bytes``) as the golden's string kind, at the width of
    its longest element: what a JSON client decodes from BYTES, or pandas gives as labels."""
    element = str if want.kind == "U" else bytes
    odd = next((item for item in actual.flat if not isinstance(item, element)), _ALL_TEXT)
    if odd is not _ALL_TEXT:
        return (
            f"actual object array holds {type(odd).__name__} elements, which cannot be "
            f"compared with the golden dtype {want} (expected {element.__name__})"
        )
    kind = np.str_ if want.kind == "U" else np.bytes_
    return np.array(actual.tolist(), dtype=kind).reshape(actual.shape)


def _align_integers(expected: Array, actual: Array) -> Array | str:
    cast = actual.astype(expected.dtype)
    if np.array_equal(cast, actual):
        return cast
    return f"actual {actual.dtype} values do not fit the golden dtype {expected.dtype}"


# --- the checks -------------------------------------------------------------------------------


def _check_exact(check: Exact, expected: Array, actual: Array) -> _Outcome:
    differ = ~_same(expected, actual)
    failing_rows = _rows_with_any(differ)
    if not failing_rows.any():
        return _outcome(check, True, f"all {differ.size} elements bitwise equal", failing_rows)
    detail = (
        f"{_elements_text(differ)} in {_rows_text(failing_rows)} differ"
        f"{_max_diff_text(expected, actual, differ)}"
    )
    return _outcome(check, False, detail, failing_rows)


def _check_ulp(check: Ulp, expected: Array, actual: Array) -> _Outcome:
    if not _supports_ulp(expected.dtype):
        reason = f"ulp applies to float16/32/64 outputs; the golden is {expected.dtype}"
        return _not_applicable(check, expected, reason)
    distance = ulp_distance(expected, actual)
    worst = int(distance.max()) if distance.size else 0
    worst_text = "unbounded (a NaN against a number)" if worst == _INT64_MAX else str(worst)
    beyond = distance > check.max_ulp
    failing_rows = _rows_with_any(beyond)
    if not failing_rows.any():
        detail = f"all {distance.size} elements within {check.max_ulp} ULP (max {worst_text})"
        return _outcome(check, True, detail, failing_rows)
    detail = (
        f"{_rows_text(failing_rows)} beyond {check.max_ulp} ULP "
        f"({_elements_text(beyond)}, worst {worst_text})"
    )
    return _outcome(check, False, detail, failing_rows)


def _check_allclose(check: AllClose, expected: Array, actual: Array) -> _Outcome:
    if expected.dtype.kind not in "biufc":
        reason = f"allclose applies to numeric outputs; the golden is {expected.dtype}"
        return _not_applicable(check, expected, reason)
    beyond = ~_within(expected, actual, check.rtol, check.atol)
    failing_rows = _rows_with_any(beyond)
    bounds = f"rtol={check.rtol:g}, atol={check.atol:g}"
    if not failing_rows.any():
        detail = f"all {beyond.size} elements within {bounds}{_max_diff_text(expected, actual)}"
        return _outcome(check, True, detail, failing_rows)
    detail = (
        f"{_rows_text(failing_rows)} beyond {bounds} ({_elements_text(beyond)}"
        f"{_max_diff_text(expected, actual, beyond, parenthesised=False)})"
    )
    return _outcome(check, False, detail, failing_rows)


def _check_topk(check: TopK, expected: Array, actual: Array) -> _Outcome:
    counted = _topk_counts(check, expected, actual)
    if isinstance(counted, str):
        return _not_applicable(check, expected, counted)
    counts, k = counted
    failing_rows = counts < check.min_overlap * k - _EPSILON
    overlaps = counts / k
    stats = _TopKStats(k=k, overlaps=overlaps)
    label = f"{'ordered ' if check.ordered else ''}top-{k} overlap {check.min_overlap:g}"
    clamped = f"; K clamped from {check.k} to {k} columns" if k < check.k else ""
    summary = _overlap_summary(overlaps) + clamped
    if not failing_rows.any():
        detail = f"{label} reached in all {len(counts)} rows{summary}"
        return _outcome(check, True, detail, failing_rows, topk=stats)
    detail = f"{_rows_text(failing_rows)} below {label}{summary}"
    return _outcome(check, False, detail, failing_rows, topk=stats)


def _check_argmax(check: Argmax, expected: Array, actual: Array) -> _Outcome:
    agreeing = _argmax_agreeing(expected, actual)
    if isinstance(agreeing, str):
        return _not_applicable(check, expected, agreeing)
    rows = len(agreeing)
    agreed = int(agreeing.sum())
    agreement = agreed / rows if rows else None
    passed = agreed >= check.min_agreement * rows - _EPSILON
    what = "labels" if expected.ndim == 1 else "argmax"
    share = f" ({agreement:.4g})" if agreement is not None else ""
    relation = ">=" if passed else "<"
    detail = f"{what} agree in {agreed} of {rows} rows{share} {relation} {check.min_agreement:g}"
    return _outcome(check, passed, detail, ~agreeing, agreement=agreement)


def _outcome(
    check: Check,
    passed: bool,
    detail: str,
    failing_rows: BoolArray,
    topk: _TopKStats | None = None,
    agreement: float | None = None,
) -> _Outcome:
    result = CheckResult(check=str(check), passed=passed, detail=detail)
    return _Outcome(result=result, failing_rows=failing_rows, topk=topk, agreement=agreement)


def _not_applicable(check: Check, expected: Array, reason: str) -> _Outcome:
    every_row = np.ones(_row_count(expected), dtype=np.bool_)
    return _outcome(check, False, reason, every_row)


# --- elementwise measures ---------------------------------------------------------------------


def _same(expected: Array, actual: Array) -> BoolArray:
    """Bitwise equality per element, except that NaN equals NaN at the same position."""
    if expected.dtype.kind == "c":
        return _same(expected.real, actual.real) & _same(expected.imag, actual.imag)
    if expected.dtype.kind == "f":
        both_nan = np.isnan(expected) & np.isnan(actual)
        same_sign = np.signbit(expected) == np.signbit(actual)
        same: BoolArray = both_nan | ((expected == actual) & same_sign)
        return same
    return np.broadcast_to(np.asarray(expected == actual, dtype=np.bool_), expected.shape)


def _within(expected: Array, actual: Array, rtol: float, atol: float) -> BoolArray:
    """numpy.isclose with equal_nan, computed at float64 precision or better."""
    work_e, work_a = _widened(expected), _widened(actual)
    finite = np.isfinite(work_e) & np.isfinite(work_a)
    with np.errstate(all="ignore"):
        close = np.abs(work_a - work_e) <= atol + rtol * np.abs(work_e)
    both_nan = np.isnan(work_e) & np.isnan(work_a)
    within: BoolArray = (finite & close) | (work_e == work_a) | both_nan
    return within


def _max_abs_diff(expected: Array, actual: Array) -> float | None:
    if expected.dtype.kind not in "biufc":
        return None
    work_e, work_a = _widened(expected), _widened(actual)
    finite = np.isfinite(work_e) & np.isfinite(work_a)
    if not finite.any():
        return None
    with np.errstate(all="ignore"):
        largest = float(np.max(np.abs(work_a[finite] - work_e[finite])))
    return largest if math.isfinite(largest) else None


def _max_diff_text(
    expected: Array, actual: Array, where: BoolArray | None = None, parenthesised: bool = True
) -> str:
    if where is not None:
        expected, actual = expected[where], actual[where]
    largest = _max_abs_diff(expected, actual)
    if largest is None:
        return ""
    return f" (max |diff| {largest:.3g})" if parenthesised else f", max |diff| {largest:.3g}"


def _widened(values: Array) -> npt.NDArray[np.inexact[Any]]:
    return values.astype(np.promote_types(values.dtype, np.float64))


def _supports_ulp(dtype: np.dtype[np.generic]) -> bool:
    return dtype.kind == "f" and dtype.itemsize in _ULP_INT_BY_SIZE


def _ordered_bits(values: Array) -> IntArray:
    """The float's bits as an int64 whose order is the order of the floats."""
    native = values.astype(values.dtype.newbyteorder("="), copy=False)
    bits = native.view(_ULP_INT_BY_SIZE[values.dtype.itemsize]).astype(np.int64)
    # Floats are sign-magnitude: reflect negatives so that -0.0 maps to 0 like +0.0.
    sign_bit = int(np.iinfo(_ULP_INT_BY_SIZE[values.dtype.itemsize]).min)
    return np.where(bits < 0, sign_bit - bits, bits)


def _ulp_floor(expected: Array) -> float | None:
    if not _supports_ulp(expected.dtype):
        return None
    return ULP_FLOOR_FRACTION * golden_scale(expected)


def _max_ulp_diff(expected: Array, actual: Array, floor: float) -> int | None:
    measured = (np.abs(expected) >= floor) | np.isnan(expected)
    if not measured.any():
        return None
    return int(ulp_distance(expected, actual)[measured].max())


# --- rows: top-k and argmax -------------------------------------------------------------------


def _topk_counts(check: TopK, expected: Array, actual: Array) -> tuple[IntArray, int] | str:
    """Per row, how many of the K top items are shared (or sit at the same rank)."""
    if expected.ndim != 2:
        return f"topk needs a 2-D (rows × items) output, got shape {expected.shape}"
    if expected.dtype.kind not in _REAL_KINDS:
        return f"topk needs real-valued scores, the golden is {expected.dtype}"
    columns = expected.shape[1]
    if columns == 0:
        return "topk needs at least one column, the output has none"
    k = min(check.k, columns)
    top_e, top_a = _top_items(expected, k), _top_items(actual, k)
    if check.ordered:
        return (top_e == top_a).sum(axis=1).astype(np.int64), k
    return _shared_items(top_e, top_a, columns), k


def _top_items(scores: Array, k: int) -> IntArray:
    # A stable sort breaks ties by column, so equal rows give equal top-K sets.
    descending = np.argsort(-_widened(scores), axis=1, kind="stable")
    return descending[:, :k].astype(np.int64)


def _shared_items(top_e: IntArray, top_a: IntArray, columns: int) -> IntArray:
    in_e = np.zeros((len(top_e), columns), dtype=np.bool_)
    in_a = np.zeros((len(top_a), columns), dtype=np.bool_)
    np.put_along_axis(in_e, top_e, True, axis=1)
    np.put_along_axis(in_a, top_a, True, axis=1)
    shared: IntArray = (in_e & in_a).sum(axis=1).astype(np.int64)
    return shared


def _overlap_stats(topk: _TopKStats | None) -> tuple[float | None, float | None]:
    if topk is None or topk.overlaps.size == 0:
        return None, None
    return float(topk.overlaps.min()), float(topk.overlaps.mean())


def _overlap_summary(overlaps: FloatArray) -> str:
    if overlaps.size == 0:
        return ""
    return f" (min {overlaps.min():.3g}, mean {overlaps.mean():.3g})"


def _argmax_agreeing(expected: Array, actual: Array) -> BoolArray | str:
    if expected.ndim == 1:
        return _same(expected, actual)
    if expected.ndim != 2:
        return (
            "argmax needs a 1-D (labels) or 2-D (rows × classes) output, "
            f"got shape {expected.shape}"
        )
    if expected.dtype.kind not in _REAL_KINDS:
        return f"argmax needs real-valued scores, the golden is {expected.dtype}"
    if expected.shape[1] == 0:
        return "argmax needs at least one column, the output has none"
    agreeing: BoolArray = np.argmax(expected, axis=1) == np.argmax(actual, axis=1)
    return agreeing


def _argmax_agreement(outcomes: list[_Outcome], expected: Array, actual: Array) -> float | None:
    """The policy's argmax agreement, else an informative one for 2-D float scores."""
    for outcome in outcomes:
        if outcome.agreement is not None:
            return outcome.agreement
    informative = expected.dtype.kind == "f" and expected.ndim == 2 and expected.shape[1] >= 2
    if not informative or expected.shape[0] == 0:
        return None
    agreeing = _argmax_agreeing(expected, actual)
    return None if isinstance(agreeing, str) else float(agreeing.mean())


# --- helpers ----------------------------------------------------------------------------------


def _row_count(values: Array) -> int:
    return int(values.shape[0]) if values.ndim else 1


def _rows_with_any(mask: BoolArray) -> BoolArray:
    if mask.ndim == 0:
        return mask.reshape(1)
    flat = mask.reshape(mask.shape[0], math.prod(mask.shape[1:]))
    return np.asarray(flat.any(axis=1), dtype=np.bool_)


def _rows_text(failing_rows: BoolArray) -> str:
    return f"{int(failing_rows.sum())} of {len(failing_rows)} rows"


def _elements_text(mask: BoolArray) -> str:
    count = int(mask.sum())
    return f"{count} element{'' if count == 1 else 's'}"
