"""Seal -> verification report: integrity, trust, environment diff, load, golden replay, verdict.

One ``Verification`` holds what each step found, filled by name: ``start`` (golden data and
tolerance policies), ``load``, ``diff_environment``, ``replay``; ``report()`` turns it into
the ``VerifyReport``. ``verify`` runs every step for the CLI and CI; the server's start-up
runs the same steps one at a time, each in a thread, with its own logging in between.

Before any of them, every entry point that loads a model calls ``admit`` on the opened seal:
its signatures against the operator's ``TrustPolicy``, then the pickle gate (a model whose
loading unpickles is loaded only from a seal someone trusted vouched for). The load step
applies the gate again, from the ``Trust`` that ``admit`` recorded on the seal.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from modelseal.environment.diff import DiffRow, diff_environments
from modelseal.environment.fingerprint import capture_environment
from modelseal.environment.lock import parse_lock
from modelseal.environment.record import EnvironmentRecord
from modelseal.environment.risk import Risk, seal_numerics
from modelseal.errors import (
    DriftError,
    RuntimeLoadError,
    SealError,
    SealFormatError,
    UnsignedPickleError,
    UsageError,
)
from modelseal.golden.compare import OutputComparison, compare_output
from modelseal.golden.store import Golden, load_golden
from modelseal.golden.tolerance import (
    Exact,
    TolerancePolicy,
    parse_policy,
    parse_tolerance_options,
)
from modelseal.runtimes.base import Loaded, Runtime
from modelseal.runtimes.registry import get_runtime
from modelseal.seal.artifact import Seal, open_seal
from modelseal.seal.trust import (
    ALLOW_UNSIGNED_PICKLE_VARIABLE,
    Trust,
    TrustPolicy,
    authenticate,
)
from modelseal.types import NamedArrays, TableSpec

log = logging.getLogger("modelseal.trust")
REPORT_SCHEMA_VERSION = 1
ROUNDING_ULPS = 1024
"""Differences up to this many ULPs are rounding (summation order), not a changed model."""


class Verdict(str, Enum):
    CONSISTENT = "consistent"
    DRIFT = "drift"
    LOAD_FAILED = "load-failed"
    RUN_FAILED = "run-failed"
    WRONG_SEAL = "wrong-seal"
    """Only from ``verify --url``: the server serves another seal, or not this model."""


class SealSummary(BaseModel):
    name: str
    version: str
    runtime: str
    digest: str
    source: str

    @classmethod
    def of(cls, seal: Seal) -> SealSummary:
        return cls(
            name=seal.name,
            version=seal.version,
            runtime=seal.runtime,
            digest=seal.digest,
            source=seal.source,
        )

    @property
    def title(self) -> str:
        return f"{self.name} {self.version}"


class FileIntegrity(BaseModel):
    path: str
    ok: bool
    sha256: str | None
    problem: str | None


class Failure(BaseModel):
    """Why the model could not be loaded or run here."""

    error_type: str
    message: str


class OutputReplay(BaseModel):
    """One output replayed at one batch size, compared with its golden reference."""

    model_config = ConfigDict(frozen=True)

    batch_size: int
    comparison: OutputComparison


class VerifyReport(BaseModel):
    """What ``modelseal verify`` found. ``--json`` prints exactly this (schema in docs/)."""

    schema_version: int = REPORT_SCHEMA_VERSION
    seal: SealSummary
    verdict: Verdict
    environment_risk: Risk | None = Field(
        description="the highest risk among the environment rows; null when nothing differs"
    )
    files: list[FileIntegrity]
    environment: list[DiffRow]
    golden: list[OutputReplay]
    golden_rows: int
    device: str
    failure: Failure | None = None
    load_warnings: list[str] = Field(default_factory=list)
    notes: list[str] = Field(
        default_factory=list,
        description="what a failure most likely means and what to do, where that is known",
    )
    timings: dict[str, float] = Field(description="seconds spent in each step")

    @property
    def consistent(self) -> bool:
        return self.verdict is Verdict.CONSISTENT

    def passes(self, *, strict_env: bool) -> bool:
        """True when the golden replay held (and, with ``strict_env``, no critical drift)."""
        if not self.consistent:
            return False
        return not (strict_env and self.environment_risk is Risk.CRITICAL)

    def check(self, *, strict_env: bool) -> None:
        """Raise ``DriftError`` carrying this report unless it ``passes``."""
        if self.passes(strict_env=strict_env):
            return
        raise DriftError(f"{self.seal.title}: {_verdict_summary(self)}", report=self)


@dataclass
class Verification:
    """One verification of one seal, filled step by step (see the module's docstring).

    Build it with ``start`` (or directly from an already loaded golden and policies), then
    run ``load``, ``diff_environment`` and, when the model loaded, ``replay``.
    """

    seal: Seal
    golden: Golden
    policies: dict[str, TolerancePolicy]
    device: str = "cpu"
    batch_sizes: Sequence[int] | None = None
    """Replay batch sizes; None: one row at a time and all golden rows at once."""
    loaded: Loaded | None = None
    failure: Failure | None = None
    load_warnings: list[str] = field(default_factory=list)
    environment: list[DiffRow] = field(default_factory=list)
    replays: list[OutputReplay] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    _steps_run: set[str] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        for size in self.batch_sizes or ():
            if size < 1:
                raise UsageError(
                    f"batch size {size}: a replay batch size is a whole number >= 1 "
                    f"(the golden data has {self.golden.rows} rows)"
                )

    @classmethod
    def start(
        cls,
        seal: Seal,
        *,
        tolerance: Sequence[str] = (),
        batch_sizes: Sequence[int] | None = None,
        device: str = "cpu",
    ) -> Verification:
        """Read the golden data and the tolerance policies (with ``--tolerance`` overrides)."""
        return cls(
            seal=seal,
            golden=load_golden(seal.golden_path),
            policies=seal_policies(seal, tolerance),
            device=device,
            batch_sizes=batch_sizes,
        )

    def load(self, *, half: bool = False) -> Loaded | None:
        """Load the sealed model on ``device``; a failure becomes ``failure``, not an error.

        Raises ``UnsignedPickleError`` instead of loading a model that unpickles from a seal
        nobody trusted vouched for (``check_pickle_gate``). ``half``: half precision on the
        GPU, for runtimes that take it (torch)."""
        started = time.perf_counter()
        self._steps_run.add("load")
        runtime = get_runtime(self.seal.runtime, **({"half": True} if half else {}))
        check_pickle_gate(runtime, self.seal)  # before a single byte is deserialised
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                self.loaded = runtime.load(self.seal.model_dir, self.device)
            except SealError as exc:
                if not isinstance(exc, RuntimeLoadError):
                    raise
                self.failure = _failure(exc)
            except Exception as exc:
                self.failure = _failure(exc)
        self.load_warnings = _warning_texts(caught)
        self.timings["load"] = time.perf_counter() - started
        return self.loaded

    def diff_environment(self, current: EnvironmentRecord | None = None) -> list[DiffRow]:
        """Rank the differences from the packing environment to ``current`` (default: here)."""
        started = time.perf_counter()
        here = capture_environment() if current is None else current
        self.environment = environment_rows(self.seal, here)
        self.timings["environment"] = time.perf_counter() - started
        return self.environment

    def replay(self) -> list[OutputReplay]:
        """Run the golden inputs through the loaded model at each batch size and compare.

        A model that raises on its golden inputs becomes ``failure`` (verdict run-failed)."""
        if self.loaded is None:
            raise ValueError("replay() needs a loaded model: run load() first")
        started = time.perf_counter()
        self._steps_run.add("replay")
        sizes = self.batch_sizes or (1, self.golden.rows)
        try:
            self.replays = replay_golden(self.loaded, self.golden, self.policies, sizes)
        except Exception as exc:
            self.replays, self.failure = [], _failure(exc)
        self.timings["replay"] = time.perf_counter() - started
        return self.replays

    def report(self) -> VerifyReport:
        """The report of the steps run; load, and replay once the model loaded, must have."""
        if "load" not in self._steps_run:
            raise ValueError("report() needs the load step: run load() first")
        if self.loaded is not None and "replay" not in self._steps_run:
            raise ValueError("report() needs the replay step once the model loaded")
        return VerifyReport(
            seal=SealSummary.of(self.seal),
            verdict=self._verdict(),
            environment_risk=highest_risk(self.environment),
            files=[
                FileIntegrity(
                    path=check.path, ok=check.ok, sha256=check.actual_sha256, problem=check.problem
                )
                for check in self.seal.file_checks
            ],
            environment=self.environment,
            golden=self.replays,
            golden_rows=self.golden.rows,
            device=self.loaded.device if self.loaded is not None else self.device,
            failure=self.failure,
            load_warnings=self.load_warnings,
            notes=explain_failures(self.replays, self.golden.rows),
            timings={step: round(seconds, 6) for step, seconds in self.timings.items()},
        )

    def _verdict(self) -> Verdict:
        if self.loaded is None:
            return Verdict.LOAD_FAILED
        if self.failure is not None:
            return Verdict.RUN_FAILED
        return verdict_of(self.replays)


def verify(
    source: str | Path | Seal,
    *,
    tolerance: Sequence[str] = (),
    batch_sizes: Sequence[int] | None = None,
    device: str = "cpu",
    trust: TrustPolicy | None = None,
) -> VerifyReport:
    """Verify a seal here: integrity, trust, environment, load, replay of the golden inputs.

    Raises ``IntegrityError``/``SealFormatError`` for a seal that cannot be trusted (among
    them ``UntrustedSealError`` and ``UnsignedPickleError``, see ``admit``) and
    ``UsageError`` for a bad tolerance or batch size; a model that cannot load or run here is
    a verdict (``load-failed``/``run-failed``), not an error. ``batch_sizes``: replay sizes;
    by default one row at a time and all rows at once. ``trust``: the policy to admit the
    seal under; without one, a seal already admitted keeps its ``Trust`` and any other is
    admitted under the default policy (no trusted keys, no unsigned pickles).
    """
    started = time.perf_counter()
    seal = source if isinstance(source, Seal) else open_seal(source)
    if trust is not None or seal.trust is None:
        admit(seal, trust or TrustPolicy())
    verification = Verification.start(
        seal, tolerance=tolerance, batch_sizes=batch_sizes, device=device
    )
    verification.timings["open"] = time.perf_counter() - started
    verification.load()
    verification.diff_environment()
    if verification.loaded is not None:
        verification.replay()
    return verification.report()


def admit(seal: Seal, policy: TrustPolicy) -> Trust:
    """The trust check every entry point that loads a model runs right after opening the seal
    (``verify``, the server's pre-flight), before anything is loaded.

    ``authenticate`` checks the signatures (``UntrustedSealError`` when trusted keys are
    configured and none signed the seal), then the pickle gate refuses a model whose loading
    unpickles unless the seal was vouched for (``UnsignedPickleError``). When the operator
    accepted an unsigned pickle, says so in a warning, on every start.
    """
    trust = authenticate(seal, policy)
    try:
        runtime = get_runtime(seal.runtime)
    except SealError:
        return trust  # the runtime cannot even be found here: the load step reports that
    accepted = check_pickle_gate(runtime, seal)
    if accepted is not None:
        log.warning(
            "loading %s unpickles (%s) and %s; loading it anyway because "
            "--allow-unsigned-pickle (%s) accepts the risk: whoever can write the seal can run "
            "code here",
            seal.source, accepted, trust.describe_vouching(), ALLOW_UNSIGNED_PICKLE_VARIABLE,
            extra={"seal_digest": seal.digest, "model": seal.name, "unsigned_pickle": True},
        )  # fmt: skip
    return trust


def check_pickle_gate(runtime: Runtime, seal: Seal) -> str | None:
    """Refuse a model whose loading unpickles from a seal nobody trusted vouched for.

    Reads ``seal.trust`` (recorded by ``admit``; none counts as nobody). Returns None when
    loading unpickles nothing or the seal was vouched for; the reason, when the operator
    accepted the risk (``--allow-unsigned-pickle``); raises ``UnsignedPickleError`` otherwise.
    """
    reason = pickle_on_load(runtime, seal.model_dir)
    trust = seal.trust or Trust()
    if reason is None or trust.vouched:
        return None
    if trust.unsigned_pickle_allowed:
        return reason
    raise UnsignedPickleError(
        f"{seal.source}: loading seal {seal.name} {seal.version} would unpickle ({reason}), "
        f"which runs whatever code those bytes name, and nobody trusted vouched for this seal: "
        f"{trust.describe_vouching()}. Refusing it before anything is deserialised. Sign it "
        "(`modelseal keygen -o KEY`, `modelseal sign SEAL --key KEY.pem`) and trust the key "
        "(--trusted-key KEY.pub.pem), pin its digest (--expect-digest "
        f"sha256:{seal.digest}), re-seal it in a format that loads without pickle (skops for "
        "scikit-learn, ONNX), or accept the risk explicitly with --allow-unsigned-pickle "
        f"({ALLOW_UNSIGNED_PICKLE_VARIABLE}=1)"
    )


def seal_pickle_on_load(seal: Seal) -> str | None:
    """Why loading the seal's model unpickles, or None (for ``inspect``); a runtime not
    installed here cannot say, so the answer then says that."""
    try:
        runtime = get_runtime(seal.runtime)
    except SealError as exc:
        return f"unknown here: the {seal.runtime} runtime cannot be loaded ({exc})"
    return pickle_on_load(runtime, seal.model_dir)


def pickle_on_load(runtime: Runtime, model_dir: Path) -> str | None:
    """Why loading ``model_dir`` with ``runtime`` unpickles, or None; a third-party runtime
    that does not say (no ``pickle_on_load``) is taken to unpickle."""
    declared = getattr(runtime, "pickle_on_load", None)
    if declared is None:
        return (
            f"runtime {runtime.name!r} does not declare whether loading its models unpickles "
            "(it has no pickle_on_load method), so it is taken to"
        )
    reason: str | None = declared(model_dir)
    return reason


def seal_policies(seal: Seal, overrides: Sequence[str] = ()) -> dict[str, TolerancePolicy]:
    """The seal's tolerance policy per output, with ``OUTPUT=POLICY`` / ``POLICY`` overrides."""
    policies = {name: parse_policy(text) for name, text in seal.manifest.tolerance.items()}
    policies.update(parse_tolerance_options(list(overrides), seal.signature.output_names))
    return policies


def environment_rows(seal: Seal, current: EnvironmentRecord) -> list[DiffRow]:
    lock = parse_lock(seal.lock_lines())
    numerics = seal_numerics(seal.signature.table)
    return diff_environments(seal.environment(), current, lock, numerics)


def replay_golden(
    loaded: Loaded,
    golden: Golden,
    policies: dict[str, TolerancePolicy],
    batch_sizes: Sequence[int],
) -> list[OutputReplay]:
    """Run the golden inputs through ``loaded`` in each batch size and compare every output."""
    replays = []
    for batch_size in sorted(set(batch_sizes)):
        outputs = predict_in_batches(loaded, golden.inputs, batch_size)
        replays += compare_replay(golden, outputs, policies, batch_size)
    return replays


def compare_replay(
    golden: Golden, outputs: NamedArrays, policies: dict[str, TolerancePolicy], batch_size: int
) -> list[OutputReplay]:
    """Compare the outputs of one replay with the golden ones; a missing output fails."""
    return [
        OutputReplay(
            batch_size=batch_size,
            comparison=compare_output(
                name, expected, outputs.get(name, np.empty((0,))), policies[name]
            ),
        )
        for name, expected in golden.outputs.items()
    ]


def predict_in_batches(loaded: Loaded, inputs: NamedArrays, batch_size: int) -> NamedArrays:
    rows = len(next(iter(inputs.values())))
    chunks: dict[str, list[np.ndarray]] = {}
    for start in range(0, rows, batch_size):
        batch = {name: array[start : start + batch_size] for name, array in inputs.items()}
        for name, array in loaded.predict(batch).items():
            chunks.setdefault(name, []).append(np.asarray(array))
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def verdict_of(replays: list[OutputReplay]) -> Verdict:
    """Consistent when every comparison passed, else drift."""
    passed = all(replay.comparison.passed for replay in replays)
    return Verdict.CONSISTENT if passed else Verdict.DRIFT


def highest_risk(rows: list[DiffRow]) -> Risk | None:
    return min((row.risk for row in rows), key=lambda risk: risk.rank, default=None)


def explain_failures(replays: list[OutputReplay], golden_rows: int) -> list[str]:
    """Notes for ``exact`` failures that are rounding: bits that depend on the batch size
    or the environment, which ``exact`` cannot tolerate and ``ulp``/``allclose`` can."""
    notes = []
    by_output: dict[str, list[OutputReplay]] = {}
    for replay in replays:
        by_output.setdefault(replay.comparison.name, []).append(replay)
    for name, runs in by_output.items():
        failed = [run for run in runs if _rounding_breaks_exact(run.comparison)]
        if not failed:
            continue
        held = sorted(run.batch_size for run in runs if run.comparison.bitwise_equal)
        worst = max(failed, key=lambda run: run.comparison.max_ulp_diff or 0).comparison
        sizes = _sizes_text(sorted(run.batch_size for run in failed))
        size_of_golden = f" (the golden outputs were recorded with all {golden_rows} rows at once)"
        if held:
            cause = (
                f"bits differ between batch sizes {sizes} and {_sizes_text(held)}{size_of_golden}"
                f", by up to {worst.max_ulp_diff} ULP away from zero: BLAS kernels pick a "
                "different blocking for each batch size, so sums round differently and 'exact' "
                "can hold at one batch size only"
            )
        else:
            cause = (
                f"bits differ from the golden at batch sizes {sizes}, by up to "
                f"{worst.max_ulp_diff} ULP away from zero: a different BLAS build, thread count, "
                "CPU kernel or library version rounds sums differently, and 'exact' tolerates "
                "no rounding"
            )
        notes.append(
            f"{name}: {cause}. Compare with ulp:N or allclose:RTOL,ATOL instead (e.g. "
            f"--tolerance {name}=ulp:{_ulp_suggestion(worst.max_ulp_diff)}; allclose, the "
            "default for float outputs, also tolerates values near zero)"
        )
    return notes


def _rounding_breaks_exact(comparison: OutputComparison) -> bool:
    exact_failed = any(
        check.check == str(Exact()) and not check.passed for check in comparison.checks
    )
    ulps = comparison.max_ulp_diff
    return exact_failed and ulps is not None and 0 < ulps <= ROUNDING_ULPS


def _ulp_suggestion(worst: int | None) -> int:
    """A round bound with headroom above what was seen: 4x, up to the next power of two."""
    needed = max(4 * (worst or 1), 16)
    return 1 << (needed - 1).bit_length()


def _sizes_text(sizes: list[int]) -> str:
    return ", ".join(str(size) for size in sizes)


def _verdict_summary(report: VerifyReport) -> str:
    if report.verdict is Verdict.DRIFT:
        failed = sorted({r.comparison.name for r in report.golden if not r.comparison.passed})
        return f"drifted beyond tolerance on {', '.join(failed)}"
    if report.failure is not None:
        stage = "load" if report.verdict is Verdict.LOAD_FAILED else "run on its golden inputs"
        return f"cannot {stage} here ({report.failure.error_type}: {report.failure.message})"
    critical = [row.subject for row in report.environment if row.risk is Risk.CRITICAL]
    return f"critical environment drift (--strict-env): {', '.join(critical)}"


def _failure(exc: BaseException) -> Failure:
    cause = exc.__cause__ if isinstance(exc, RuntimeLoadError) and exc.__cause__ else exc
    return Failure(error_type=type(cause).__name__, message=str(exc))


def _warning_texts(caught: list[warnings.WarningMessage]) -> list[str]:
    return sorted({f"{w.category.__name__}: {w.message}" for w in caught})


class DiffReport(BaseModel):
    """What ``modelseal diff`` found. ``--json`` prints exactly this (schema in docs/)."""

    schema_version: int = REPORT_SCHEMA_VERSION
    packed: str = Field(description="where the first (reference) environment came from")
    current: str = Field(description="where the second environment came from")
    lock_from: str | None = Field(
        description="the seal whose lock decided which packages serving needs; null when "
        "neither side is a seal (then every numerical package counts as needed)"
    )
    highest_risk: Risk | None
    counts: dict[Risk, int]
    rows: list[DiffRow]

    def check(self, *, strict: bool) -> None:
        """With ``strict``, raise ``DriftError`` carrying this report on any critical row."""
        critical = [row.subject for row in self.rows if row.risk is Risk.CRITICAL]
        if strict and critical:
            raise DriftError(
                f"critical environment drift from {self.packed} to {self.current} (--strict): "
                f"{', '.join(critical)}",
                report=self,
            )


HERE = "-"


def diff_sources(packed: str, current: str) -> DiffReport:
    """Diff two environments, each a seal, an ``environment.json`` file or ``-`` (here)."""
    packed_record, packed_lock, packed_table = _environment_source(packed)
    current_record, current_lock, current_table = _environment_source(current)
    lock, lock_from = (packed_lock, packed) if packed_lock is not None else (current_lock, current)
    numerics = seal_numerics(packed_table or current_table)
    rows = diff_environments(packed_record, current_record, lock, numerics)
    return DiffReport(
        packed=packed,
        current=current,
        lock_from=lock_from if lock is not None else None,
        highest_risk=highest_risk(rows),
        counts={risk: sum(row.risk is risk for row in rows) for risk in Risk},
        rows=rows,
    )


def _environment_source(
    source: str,
) -> tuple[EnvironmentRecord, dict[str, str] | None, TableSpec | None]:
    """The environment, serving lock and input table (None: tensors) of a diff source."""
    if source == HERE:
        return capture_environment(), None, None
    path = Path(source)
    if path.is_file() and path.suffix == ".json":
        try:
            return EnvironmentRecord.model_validate_json(path.read_bytes()), None, None
        except ValueError as exc:
            raise SealFormatError(
                f"{path}: not an environment record written by modelseal env --json ({exc})"
            ) from exc
    seal = open_seal(path)
    return seal.environment(), parse_lock(seal.lock_lines()), seal.signature.table
