"""Model + golden inputs -> seal.

The runtime saves the model, the saved copy is loaded back and run on the golden inputs
(so the golden outputs are what the sealed bytes produce, not the in-memory object), the
environment is fingerprinted after that load (so live framework state is in it), and the
manifest stamps every file's digest. The seal is built beside its destination, which this
process holds exclusively meanwhile, and moved into place in one rename: a failed, killed
or concurrent pack never leaves anything half-written there.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from modelseal._version import __version__
from modelseal.environment.fingerprint import capture_environment
from modelseal.environment.lock import dependency_closure, render_lock
from modelseal.errors import RuntimeLoadError, StorageError, UsageError
from modelseal.golden.inputs import GoldenInputs, golden_inputs, read_golden_inputs
from modelseal.golden.store import Golden, save_golden
from modelseal.golden.tolerance import (
    TolerancePolicy,
    default_policy,
    parse_policy,
    parse_tolerance_options,
)
from modelseal.runtimes.base import ColumnsProvider, ExampleProvider, Loaded, Runtime
from modelseal.runtimes.registry import get_runtime
from modelseal.seal.archive import create_seal_archive
from modelseal.seal.artifact import Seal, open_seal
from modelseal.seal.destination import claim_destination, publish
from modelseal.seal.digests import describe_files
from modelseal.seal.manifest import (
    ENVIRONMENT_FILE,
    GOLDEN_FILE,
    LOCK_FILE,
    MANIFEST_FILE,
    MODEL_DIR,
    check_identity,
    seal_manifest,
)
from modelseal.types import Example, NamedArrays, Signature

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_FULL_DISK = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG)
_NO_PERMISSION = (errno.EACCES, errno.EPERM)


def pack(
    model: object,
    *,
    runtime: str | Runtime,
    name: str,
    version: str,
    golden: GoldenInputs | None = None,
    output: str | os.PathLike[str] | None = None,
    tolerance: str | Sequence[str] = (),
    golden_dtypes: Mapping[str, str] | None = None,
) -> Seal:
    """Seal ``model`` with ``golden`` inputs into ``output`` (a folder, or a .tar[.gz]).

    ``model``: what the runtime seals: an object (an estimator, a ScriptModule ...) or the
    path of a model file or folder (``str`` or ``os.PathLike``).
    ``name``, ``version``: letters, digits, ``.``, ``_`` and ``-``, starting with a letter
    or digit (both go into URL paths such as ``/v2/models/NAME/versions/VERSION``).
    ``golden``: one array (or nested list) for a single-input model, arrays by input name
    (a mapping), a pandas DataFrame for a model trained on one (its columns, dtypes and
    nulls become the seal's tabular signature), or the path of a .npy (one input), .npz
    (by name), .parquet or .csv (a DataFrame) file; None takes the example the model
    carries, for runtimes whose format records one (``mlflow``).
    ``golden_dtypes``: pandas dtypes by column for a .csv ``golden``, which records none
    (needed for every column whose dtype the model format does not record).
    ``output``: the seal folder, or a .tar / .tar.gz / .tgz archive; by default
    ``NAME-VERSION.seal`` here. It must not exist; one pack at a time may write it.
    ``tolerance``: ``"POLICY"`` for every output or ``"OUTPUT=POLICY"``, one string or a
    list of them, as on the command line (for example ``"allclose:1e-4,1e-6"`` or
    ``["exact", "scores=topk:10,0.9"]``); outputs not named get defaults chosen from their
    dtype and kind.

    Returns the seal, opened from ``output``; for an archive, that is an extracted copy the
    caller should close (``with pack(...) as seal:``). Raises ``DestinationBusyError`` when
    another pack is writing ``output``, ``StorageError`` when it cannot be written (a full
    disk, no permission).
    """
    check_identity(name, version)
    options = _tolerance_options(tolerance)
    adapter = get_runtime(runtime) if isinstance(runtime, str) else runtime
    destination = Path(output) if output is not None else Path(f"{name}-{version}.seal")
    try:
        with claim_destination(destination) as work:
            built = work / _folder_name(destination)
            source = GoldenSource(golden, dict(golden_dtypes or {}))
            _build(model, adapter, built, name, version, source, options)
            if destination.name.endswith(ARCHIVE_SUFFIXES):
                # Named like the destination, so the archive is compressed as its name says.
                built = create_seal_archive(built, work / destination.name)
            publish(built, destination)
    except OSError as exc:
        raise StorageError(_storage_message(exc, destination)) from exc
    return open_seal(destination)


def _build(
    model: object,
    adapter: Runtime,
    root: Path,
    name: str,
    version: str,
    golden_source: GoldenSource,
    tolerance: Sequence[str],
) -> None:
    model_dir = root / MODEL_DIR
    example = _golden_example(model, adapter, golden_source)
    signature = adapter.save(model, model_dir, example)
    inputs = golden_inputs(example, signature)
    loaded = _load_back(adapter, model_dir)
    outputs = _record_outputs(loaded, inputs, signature)
    golden = Golden(inputs=inputs, outputs=outputs)
    save_golden(root / GOLDEN_FILE, golden, signature.table)
    environment = capture_environment()
    (root / ENVIRONMENT_FILE).write_text(environment.model_dump_json(indent=2) + "\n")
    closure = dependency_closure(adapter.requirements(model_dir))
    header = (
        f"Serving requirements of {name} {version} (runtime {adapter.name}), pinned at the "
        f"versions it was sealed with\non Python {environment.python.version} "
        f"{environment.platform.system} {environment.platform.machine} by modelseal {__version__}"
    )
    (root / LOCK_FILE).write_text(render_lock(closure, header))
    policies = _policies(signature, outputs, tolerance)
    manifest = seal_manifest(
        name=name,
        version=version,
        runtime=adapter.name,
        signature=signature.model_dump(mode="json"),
        files=describe_files(root),
        tolerance={output: str(policy) for output, policy in policies.items()},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        modelseal_version=__version__,
    )
    (root / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")


@dataclass(frozen=True)
class GoldenSource:
    """The golden inputs as the caller gave them, and the dtypes of a CSV's columns."""

    inputs: GoldenInputs | None
    dtypes: dict[str, str]


def _golden_example(model: object, adapter: Runtime, source: GoldenSource) -> Example:
    """The golden inputs given, else the example the model carries (``ExampleProvider``)."""
    if source.inputs is not None:
        return read_golden_inputs(
            source.inputs, source.dtypes, lambda: _trained_columns(model, adapter)
        )
    if not isinstance(adapter, ExampleProvider):
        raise UsageError(
            f"runtime {adapter.name!r} needs golden inputs: give golden= (on the command line "
            "--golden X.npy for a single input, X.npz naming each input, or X.parquet / X.csv "
            "for a model trained on a DataFrame)"
        )
    example = adapter.example_inputs(model)
    if example is None:
        raise UsageError(
            "no golden inputs were given and the model carries no input example; give "
            "--golden X.npy (or .npz), or save the model with an input example"
        )
    return example


def _trained_columns(model: object, adapter: Runtime) -> dict[str, str | None] | None:
    if not isinstance(adapter, ColumnsProvider):
        return None
    return adapter.trained_columns(model)


def _load_back(adapter: Runtime, model_dir: Path) -> Loaded:
    try:
        return adapter.load(model_dir, "cpu")
    except RuntimeLoadError as exc:
        raise RuntimeLoadError(
            f"the saved model does not load back, so it cannot be sealed: {exc}"
        ) from exc


def _record_outputs(loaded: Loaded, inputs: NamedArrays, signature: Signature) -> NamedArrays:
    outputs = loaded.predict(inputs)
    missing = set(signature.output_names) - set(outputs)
    if missing:
        raise RuntimeLoadError(f"the model did not return outputs {sorted(missing)}")
    return {name: np.asarray(outputs[name]) for name in signature.output_names}


def _tolerance_options(tolerance: str | Sequence[str]) -> list[str]:
    """The options as a list (one string is one option), each policy checked before the
    model is touched; which outputs they name is checked once the signature is known."""
    options = [tolerance] if isinstance(tolerance, str) else list(tolerance)
    for option in options:
        if not isinstance(option, str):
            raise UsageError(f"tolerance {option!r}: expected a string 'POLICY' or 'OUTPUT=POLICY'")
        _, sep, policy = option.partition("=")
        parse_policy(policy if sep else option)
    return options


def _storage_message(exc: OSError, destination: Path) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in _FULL_DISK:
        fix = "free space there (or raise the quota or file size limit), or choose another -o"
    elif exc.errno in _NO_PERMISSION:
        fix = "fix the permissions of that file or folder, or choose another -o"
    elif exc.errno == errno.EROFS:
        fix = "the file system is read-only; choose a writable folder with -o"
    else:
        fix = "check the folder is writable and has space, or choose another -o"
    return (
        f"packing {destination} failed: {exc.strerror or exc}{where}; {fix} "
        "(nothing was left behind)"
    )


def _policies(
    signature: Signature, outputs: NamedArrays, options: Sequence[str]
) -> dict[str, TolerancePolicy]:
    overrides = parse_tolerance_options(list(options), signature.output_names)
    return {
        spec.name: overrides.get(spec.name) or default_policy(spec, outputs[spec.name])
        for spec in signature.outputs
    }


def _folder_name(destination: Path) -> str:
    name = destination.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
