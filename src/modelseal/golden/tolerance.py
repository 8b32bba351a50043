"""Tolerance policies: how close an output must come to its golden to count as reproduced.

A policy is one or more checks joined with ``+``, all of which must pass (see ``GRAMMAR``).
Its canonical text, ``str(policy)``, is what ``seal.json`` stores and ``--tolerance`` accepts,
and ``parse_policy(str(policy)) == policy``.

Why the defaults (``default_policy``) are what they are:

- Labels and non-float outputs are ``exact``: a different label is a different answer.
- Float outputs get ``allclose`` with rtol of roughly a thousand machine epsilons of their
  dtype (float16 1e-2, float32 1e-4, float64 1e-6). Benign changes (BLAS thread count, a
  library upgrade) only reorder sums, which moves float32 logits of order 1 by about 3e-5;
  real breakage (other weights, other preprocessing, a changed op) moves them by 1e-3 or more.
- ``atol = rtol * scale``, scale being the largest finite ``|golden|``: values near zero come
  from cancellation and carry the absolute error of the large terms they cancel, so a purely
  relative bound would fail them on benign changes.
- 2-D scores with at least four columns also get ``topk:K,MIN_OVERLAP``: a tight allclose
  can still let near-tied items swap, which changes what a ranking model returns. ``K`` is
  the top of the ranking, ten items or half the columns when there are fewer than twenty
  (``topk:5,0.8`` for ten classes): a K close to the row's width would only ask that the
  lowest-scoring items stay lowest (``topk:9`` of ten classes says nothing about the top).
  ``MIN_OVERLAP`` is ``(K-1)/K`` rounded down to two decimals: per row, one near-tied item
  may cross the top-K boundary, two may not. With three columns or fewer, K would be 1 and
  no swap could be tolerated, so those outputs keep allclose alone (the report still shows
  their argmax agreement).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

from modelseal.errors import UsageError
from modelseal.types import Array, OutputKind, TensorSpec

GRAMMAR = """\
tolerance policy: one or more checks joined with '+', all of which must pass
  exact                           bitwise equal (NaN equals NaN at the same position)
  ulp:N                           every element within N units in the last place (floats)
  allclose:RTOL,ATOL              |actual - expected| <= ATOL + RTOL * |expected|
  topk:K[,MIN_OVERLAP][,ordered]  per row, the K highest items overlap >= MIN_OVERLAP (default 1)
  argmax[:MIN_AGREEMENT]          per-row argmax (or 1-D labels) agree on >= MIN_AGREEMENT rows
example: allclose:1e-4,1e-5+topk:10,0.9"""

_RTOL_BY_FLOAT_BITS = {16: 1e-2, 32: 1e-4}
_RTOL_WIDE_FLOAT = 1e-6
_TOPK_MAX_K = 10
_TOPK_MIN_K = 2

# A '+' followed by a digit is an exponent sign (1e+05), not a separator between checks.
_CHECK_SEPARATOR = re.compile(r"\+(?!\d)")


@dataclass(frozen=True)
class Exact:
    """Bitwise equal; NaN equals NaN at the same position."""

    def __str__(self) -> str:
        return "exact"


@dataclass(frozen=True)
class Ulp:
    """Every element within ``max_ulp`` units in the last place (float outputs only)."""

    max_ulp: int

    def __post_init__(self) -> None:
        if self.max_ulp < 0:
            raise UsageError(f"N must be >= 0, got {self.max_ulp}")

    def __str__(self) -> str:
        return f"ulp:{self.max_ulp}"


@dataclass(frozen=True)
class AllClose:
    """``|actual - expected| <= atol + rtol * |expected|`` elementwise, NaN equal to NaN."""

    rtol: float
    atol: float

    def __post_init__(self) -> None:
        _require_non_negative("RTOL", self.rtol)
        _require_non_negative("ATOL", self.atol)

    def __str__(self) -> str:
        return f"allclose:{_format_number(self.rtol)},{_format_number(self.atol)}"


@dataclass(frozen=True)
class TopK:
    """Per row, the K highest-scoring items of actual and expected overlap enough."""

    k: int
    min_overlap: float = 1.0
    ordered: bool = False

    def __post_init__(self) -> None:
        if self.k < 1:
            raise UsageError(f"K must be >= 1, got {self.k}")
        _require_fraction("MIN_OVERLAP", self.min_overlap)

    def __str__(self) -> str:
        text = f"topk:{self.k}"
        if self.min_overlap != 1.0:
            text += f",{_format_number(self.min_overlap)}"
        if self.ordered:
            text += ",ordered"
        return text


@dataclass(frozen=True)
class Argmax:
    """Per-row argmax (2-D) or the labels themselves (1-D) agree on enough rows."""

    min_agreement: float = 1.0

    def __post_init__(self) -> None:
        _require_fraction("MIN_AGREEMENT", self.min_agreement)

    def __str__(self) -> str:
        if self.min_agreement == 1.0:
            return "argmax"
        return f"argmax:{_format_number(self.min_agreement)}"


Check: TypeAlias = Exact | Ulp | AllClose | TopK | Argmax


@dataclass(frozen=True)
class TolerancePolicy:
    """The checks an output must all pass; ``str()`` gives the canonical text."""

    checks: tuple[Check, ...]

    def __post_init__(self) -> None:
        if not self.checks:
            raise UsageError(f"a tolerance policy needs at least one check\n{GRAMMAR}")

    def __str__(self) -> str:
        return "+".join(str(check) for check in self.checks)


def parse_policy(text: str) -> TolerancePolicy:
    """Parse policy text (see ``GRAMMAR``); raise ``UsageError`` naming the bad token."""
    if not text.strip():
        raise UsageError(f"empty tolerance policy\n{GRAMMAR}")
    tokens = [token.strip() for token in _CHECK_SEPARATOR.split(text)]
    return TolerancePolicy(tuple(_parse_check(token, text) for token in tokens))


def default_policy(spec: TensorSpec, golden: Array) -> TolerancePolicy:
    """The policy an output gets when the user names none (reasoning in the module doc)."""
    if spec.kind == OutputKind.LABEL or golden.dtype.kind not in "fc":
        return TolerancePolicy((Exact(),))
    rtol = _default_rtol(golden.dtype)
    atol = float(f"{rtol * golden_scale(golden):.3g}")
    close = AllClose(rtol=rtol, atol=atol)
    if spec.kind == OutputKind.SCORES and golden.ndim == 2:
        k = min(_TOPK_MAX_K, golden.shape[1] // 2)
        if k >= _TOPK_MIN_K:
            return TolerancePolicy((close, TopK(k=k, min_overlap=_one_swap_overlap(k))))
    return TolerancePolicy((close,))


def parse_tolerance_options(
    options: list[str], output_names: list[str]
) -> dict[str, TolerancePolicy]:
    """Policies from CLI values, in order, later ones winning.

    ``POLICY`` applies to every output, ``OUTPUT=POLICY`` to one. Outputs no option names are
    left out of the result (they keep their default).
    """
    policies: dict[str, TolerancePolicy] = {}
    for option in options:
        name, sep, text = option.partition("=")
        if not sep:
            policy = parse_policy(option)
            policies |= dict.fromkeys(output_names, policy)
            continue
        output = name.strip()
        if output not in output_names:
            raise UsageError(
                f"--tolerance {option!r}: no output named {output!r}; "
                f"the model's outputs are: {', '.join(output_names)}"
            )
        policies[output] = parse_policy(text)
    return policies


def golden_scale(golden: Array) -> float:
    """The largest finite ``|value|`` of a numeric output, or 1.0 where that is 0 or absent."""
    finite = golden[np.isfinite(golden)]
    if finite.size == 0:
        return 1.0
    scale = float(np.max(np.abs(finite)))
    return scale if scale > 0 else 1.0


def _one_swap_overlap(k: int) -> float:
    """The overlap that K-1 shared items of K reach and K-2 do not, in two decimals."""
    return math.floor((k - 1) / k * 100) / 100


def _default_rtol(dtype: np.dtype[np.generic]) -> float:
    # A complex number is two floats of half its size.
    bits = dtype.itemsize * 8 // (2 if dtype.kind == "c" else 1)
    return _RTOL_BY_FLOAT_BITS.get(bits, _RTOL_WIDE_FLOAT)


def _parse_check(token: str, text: str) -> Check:
    name, sep, rest = token.partition(":")
    name = name.strip().lower()
    arguments = [argument.strip() for argument in rest.split(",")] if sep else []
    parser = _PARSERS.get(name)
    if parser is None:
        reason = "empty check (a stray '+'?)" if not token else f"unknown check {name!r}"
        raise _bad_token(token, text, reason)
    try:
        return parser(arguments)
    except (UsageError, ValueError) as exc:
        raise _bad_token(token, text, str(exc)) from None


def _bad_token(token: str, text: str, reason: str) -> UsageError:
    return UsageError(f"tolerance policy {text!r}: bad check {token!r}: {reason}\n{GRAMMAR}")


def _parse_exact(arguments: list[str]) -> Exact:
    _require_count("exact", arguments, 0, 0)
    return Exact()


def _parse_ulp(arguments: list[str]) -> Ulp:
    _require_count("ulp", arguments, 1, 1)
    return Ulp(_parse_int("N", arguments[0]))


def _parse_allclose(arguments: list[str]) -> AllClose:
    _require_count("allclose", arguments, 2, 2)
    return AllClose(_parse_float("RTOL", arguments[0]), _parse_float("ATOL", arguments[1]))


def _parse_topk(arguments: list[str]) -> TopK:
    _require_count("topk", arguments, 1, 3)
    k = _parse_int("K", arguments[0])
    rest = arguments[1:]
    ordered = bool(rest) and rest[-1].lower() == "ordered"
    if ordered:
        rest = rest[:-1]
    if len(rest) > 1:
        raise ValueError("expected topk:K[,MIN_OVERLAP][,ordered]")
    if not rest:
        return TopK(k=k, ordered=ordered)
    return TopK(k=k, min_overlap=_parse_float("MIN_OVERLAP", rest[0]), ordered=ordered)


def _parse_argmax(arguments: list[str]) -> Argmax:
    _require_count("argmax", arguments, 0, 1)
    if not arguments:
        return Argmax()
    return Argmax(_parse_float("MIN_AGREEMENT", arguments[0]))


_PARSERS: dict[str, Callable[[list[str]], Check]] = {
    "exact": _parse_exact,
    "ulp": _parse_ulp,
    "allclose": _parse_allclose,
    "topk": _parse_topk,
    "argmax": _parse_argmax,
}


def _require_count(name: str, arguments: list[str], least: int, most: int) -> None:
    if least <= len(arguments) <= most:
        return
    if most == 0:
        raise ValueError(f"{name} takes no arguments, got {len(arguments)}")
    wanted = str(least) if least == most else f"{least} to {most}"
    raise ValueError(f"{name} takes {wanted} argument(s), got {len(arguments)}")


def _parse_int(what: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{what} must be a whole number, got {text!r}") from None


def _parse_float(what: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {text!r}")
    # Adding 0.0 turns -0.0 into 0.0, so '-0' and '0' give the same canonical text.
    return value + 0.0


def _require_non_negative(what: str, value: float) -> None:
    if not value >= 0:
        raise UsageError(f"{what} must be >= 0, got {value}")


def _require_fraction(what: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise UsageError(f"{what} must be a fraction in [0, 1], got {value}")


def _format_number(value: float) -> str:
    # repr is the shortest text that reads back to the same float; the exponent's '+' is
    # dropped so the text never carries a '+' besides the separator between checks.
    return repr(float(value)).replace("e+", "e")
