"""Seal -> verification report: integrity, environment diff, load, golden replay, verdict.

Each step is a function of its own so the server's start-up runs exactly these steps, one
at a time, with its own logging in between; ``verify`` runs them all for the CLI and CI.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from enum import Enum
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from modelseal.environment.diff import DiffRow, diff_environments
from modelseal.environment.fingerprint import capture_environment
from modelseal.environment.lock import parse_lock
from modelseal.environment.record import EnvironmentRecord
from modelseal.environment.risk import Risk
from modelseal.errors import RuntimeLoadError, SealError, SealFormatError
from modelseal.golden.compare import OutputComparison, compare_output
from modelseal.golden.store import Golden, load_golden
from modelseal.golden.tolerance import TolerancePolicy, parse_policy, parse_tolerance_options
from modelseal.runtimes.base import Loaded
from modelseal.runtimes.registry import get_runtime
from modelseal.seal.artifact import Seal, open_seal
from modelseal.types import NamedArrays

REPORT_SCHEMA_VERSION = 1


class Verdict(str, Enum):
    CONSISTENT = "consistent"
    DRIFT = "drift"
    LOAD_FAILED = "load-failed"
    RUN_FAILED = "run-failed"


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
    timings: dict[str, float] = Field(description="seconds spent in each step")

    @property
    def consistent(self) -> bool:
        return self.verdict is Verdict.CONSISTENT

    def passes(self, *, strict_env: bool) -> bool:
        """True when the golden replay held (and, with ``strict_env``, no critical drift)."""
        if not self.consistent:
            return False
        return not (strict_env and self.environment_risk is Risk.CRITICAL)


def verify(
    source: str | Path | Seal,
    *,
    tolerance: Sequence[str] = (),
    batch_sizes: Sequence[int] | None = None,
    device: str = "cpu",
) -> VerifyReport:
    """Verify a seal here: integrity, environment, load, replay of the golden inputs.

    Raises ``IntegrityError``/``SealFormatError`` for a seal that cannot be trusted; a model
    that cannot load or run here is a verdict (``load-failed``/``run-failed``), not an error.
    ``batch_sizes``: replay sizes; by default one row at a time and all rows at once.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    seal = source if isinstance(source, Seal) else open_seal(source)
    golden = load_golden(seal.golden_path)
    policies = seal_policies(seal, tolerance)
    timings["open"] = time.perf_counter() - started

    started = time.perf_counter()
    loaded, failure, load_warnings = load_model(seal, device)
    timings["load"] = time.perf_counter() - started

    started = time.perf_counter()
    rows = environment_rows(seal, capture_environment())
    timings["environment"] = time.perf_counter() - started

    replays: list[OutputReplay] = []
    if loaded is not None:
        started = time.perf_counter()
        sizes = batch_sizes or (1, golden.rows)
        replays, failure = replay_or_failure(loaded, golden, policies, sizes)
        timings["replay"] = time.perf_counter() - started
    return build_report(
        seal, golden, rows, replays, loaded, failure, load_warnings, device, timings
    )


def seal_policies(seal: Seal, overrides: Sequence[str] = ()) -> dict[str, TolerancePolicy]:
    """The seal's tolerance policy per output, with ``OUTPUT=POLICY`` / ``POLICY`` overrides."""
    policies = {name: parse_policy(text) for name, text in seal.manifest.tolerance.items()}
    policies.update(parse_tolerance_options(list(overrides), seal.signature.output_names))
    return policies


def load_model(
    seal: Seal, device: str, *, half: bool = False
) -> tuple[Loaded | None, Failure | None, list[str]]:
    """Load the sealed model; a failure (and any warnings, e.g. version skew) is returned.

    ``half``: half precision on the GPU, for runtimes that take it (torch)."""
    runtime = get_runtime(seal.runtime, **({"half": True} if half else {}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loaded = runtime.load(seal.model_dir, device)
        except SealError as exc:
            if not isinstance(exc, RuntimeLoadError):
                raise
            return None, _failure(exc), _warning_texts(caught)
        except Exception as exc:
            return None, _failure(exc), _warning_texts(caught)
    return loaded, None, _warning_texts(caught)


def environment_rows(seal: Seal, current: EnvironmentRecord) -> list[DiffRow]:
    return diff_environments(seal.environment(), current, parse_lock(seal.lock_lines()))


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
        for name, expected in golden.outputs.items():
            actual = outputs.get(name)
            comparison = compare_output(
                name,
                expected,
                actual if actual is not None else np.empty((0,)),
                policies[name],
            )
            replays.append(OutputReplay(batch_size=batch_size, comparison=comparison))
    return replays


def replay_or_failure(
    loaded: Loaded,
    golden: Golden,
    policies: dict[str, TolerancePolicy],
    batch_sizes: Sequence[int],
) -> tuple[list[OutputReplay], Failure | None]:
    """``replay_golden``, with a model that raises on its golden inputs as a ``Failure``."""
    try:
        return replay_golden(loaded, golden, policies, batch_sizes), None
    except Exception as exc:
        return [], _failure(exc)


def predict_in_batches(loaded: Loaded, inputs: NamedArrays, batch_size: int) -> NamedArrays:
    rows = len(next(iter(inputs.values())))
    chunks: dict[str, list[np.ndarray]] = {}
    for start in range(0, rows, batch_size):
        batch = {name: array[start : start + batch_size] for name, array in inputs.items()}
        for name, array in loaded.predict(batch).items():
            chunks.setdefault(name, []).append(np.asarray(array))
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def build_report(
    seal: Seal,
    golden: Golden,
    rows: list[DiffRow],
    replays: list[OutputReplay],
    loaded: Loaded | None,
    failure: Failure | None,
    load_warnings: list[str],
    device: str,
    timings: dict[str, float],
) -> VerifyReport:
    return VerifyReport(
        seal=SealSummary.of(seal),
        verdict=_verdict(loaded, failure, replays),
        environment_risk=min((row.risk for row in rows), key=lambda r: r.rank, default=None),
        files=[
            FileIntegrity(
                path=check.path, ok=check.ok, sha256=check.actual_sha256, problem=check.problem
            )
            for check in seal.file_checks
        ],
        environment=rows,
        golden=replays,
        golden_rows=golden.rows,
        device=loaded.device if loaded is not None else device,
        failure=failure,
        load_warnings=load_warnings,
        timings={step: round(seconds, 6) for step, seconds in timings.items()},
    )


def _verdict(
    loaded: Loaded | None, failure: Failure | None, replays: list[OutputReplay]
) -> Verdict:
    if loaded is None:
        return Verdict.LOAD_FAILED
    if failure is not None:
        return Verdict.RUN_FAILED
    if all(replay.comparison.passed for replay in replays):
        return Verdict.CONSISTENT
    return Verdict.DRIFT


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


HERE = "-"


def diff_sources(packed: str, current: str) -> DiffReport:
    """Diff two environments, each a seal, an ``environment.json`` file or ``-`` (here)."""
    packed_record, packed_lock = _environment_source(packed)
    current_record, current_lock = _environment_source(current)
    lock, lock_from = (packed_lock, packed) if packed_lock is not None else (current_lock, current)
    rows = diff_environments(packed_record, current_record, lock)
    return DiffReport(
        packed=packed,
        current=current,
        lock_from=lock_from if lock is not None else None,
        highest_risk=min((row.risk for row in rows), key=lambda r: r.rank, default=None),
        counts={risk: sum(row.risk is risk for row in rows) for risk in Risk},
        rows=rows,
    )


def _environment_source(source: str) -> tuple[EnvironmentRecord, dict[str, str] | None]:
    if source == HERE:
        return capture_environment(), None
    path = Path(source)
    if path.is_file() and path.suffix == ".json":
        try:
            return EnvironmentRecord.model_validate_json(path.read_bytes()), None
        except ValueError as exc:
            raise SealFormatError(
                f"{path}: not an environment record written by modelseal env --json ({exc})"
            ) from exc
    seal = open_seal(path)
    return seal.environment(), parse_lock(seal.lock_lines())
