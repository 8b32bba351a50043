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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from modelseal._version import __version__
from modelseal.environment.fingerprint import capture_environment
from modelseal.environment.lock import dependency_closure, render_lock
from modelseal.errors import InputError, RuntimeLoadError, StorageError, UsageError
from modelseal.golden.store import Golden, save_golden
from modelseal.golden.tolerance import (
    TolerancePolicy,
    default_policy,
    parse_policy,
    parse_tolerance_options,
)
from modelseal.runtimes.base import Example, ExampleProvider, Loaded, Runtime
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
from modelseal.types import Array, NamedArrays, Signature

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
GoldenInputs: TypeAlias = "Array | Mapping[str, Any] | Sequence[Any] | str | os.PathLike[str]"
"""One array (or nested list) for a single-input model, arrays by input name, or a path."""
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
) -> Seal:
    """Seal ``model`` with ``golden`` inputs into ``output`` (a folder, or a .tar[.gz]).

    ``model``: what the runtime seals: an object (an estimator, a ScriptModule ...) or the
    path of a model file or folder (``str`` or ``os.PathLike``).
    ``name``, ``version``: letters, digits, ``.``, ``_`` and ``-``, starting with a letter
    or digit (both go into URL paths such as ``/v2/models/NAME/versions/VERSION``).
    ``golden``: one array (or nested list) for a single-input model, arrays by input name
    (a mapping), or the path of a .npy (one input) or .npz (by name) file; None takes the
    example the model carries, for runtimes whose format records one (``mlflow``).
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
            _build(model, adapter, built, name, version, golden, options)
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
    golden_source: GoldenInputs | None,
    tolerance: Sequence[str],
) -> None:
    model_dir = root / MODEL_DIR
    example = _golden_example(model, adapter, golden_source)
    signature = adapter.save(model, model_dir, example)
    inputs = conform_inputs(name_inputs(example, signature), signature)
    loaded = _load_back(adapter, model_dir)
    outputs = _record_outputs(loaded, inputs, signature)
    save_golden(root / GOLDEN_FILE, Golden(inputs=inputs, outputs=outputs))
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


def _golden_example(model: object, adapter: Runtime, source: GoldenInputs | None) -> Example:
    """The golden inputs given, else the example the model carries (``ExampleProvider``)."""
    if source is not None:
        return _read_example(source)
    if not isinstance(adapter, ExampleProvider):
        raise UsageError(
            f"runtime {adapter.name!r} needs golden inputs: give golden= (on the command line "
            "--golden X.npy for a single input, or X.npz naming each input)"
        )
    example = adapter.example_inputs(model)
    if example is None:
        raise UsageError(
            "no golden inputs were given and the model carries no input example; give "
            "--golden X.npy (or .npz), or save the model with an input example"
        )
    return example


def _read_example(source: GoldenInputs) -> Example:
    """Golden inputs as given: one array, or arrays by name (from a .npy / .npz file too)."""
    if isinstance(source, str | os.PathLike):
        return _read_golden_file(Path(source))
    if isinstance(source, Mapping):
        return {str(name): _golden_array(array, str(name)) for name, array in source.items()}
    return _golden_array(source, None)


def _golden_array(values: object, name: str | None) -> Array:
    what = f"golden input {name!r}" if name else "the golden inputs"
    try:
        array: Array = np.asarray(values)
    except ValueError as exc:
        raise InputError(f"{what} cannot be one array: {exc} (rows of unequal length?)") from exc
    if array.dtype.kind == "O":
        raise InputError(
            f"{what} holds Python objects ({type(values).__name__} of mixed types?); expected "
            "numbers, booleans or text in rows of equal length"
        )
    return array


def name_inputs(example: Example, signature: Signature) -> NamedArrays:
    """Golden inputs by input name: a lone array is the model's single input."""
    if isinstance(example, np.ndarray):
        return {_single_input_name(signature): example}
    return example


def conform_inputs(inputs: NamedArrays, signature: Signature) -> NamedArrays:
    """Check names, ranks and fixed dims against the signature and cast to its dtypes."""
    expected = set(signature.input_names)
    if set(inputs) != expected:
        raise InputError(
            f"golden inputs are named {sorted(inputs)}, the model takes {sorted(expected)}"
        )
    conformed: NamedArrays = {}
    rows = {len(array) for array in inputs.values() if array.ndim > 0}
    if len(rows) != 1:
        raise InputError(f"golden inputs must share one batch size on axis 0, got {rows}")
    for spec in signature.inputs:
        array = inputs[spec.name]
        if array.ndim != len(spec.shape) or any(
            want not in (-1, got) for want, got in zip(spec.shape, array.shape, strict=True)
        ):
            raise InputError(
                f"golden input {spec.name!r}: shape {list(array.shape)} does not match the "
                f"signature {list(spec.shape)} (-1 is any size)"
            )
        if not np.can_cast(array.dtype, spec.numpy_dtype, casting="same_kind"):
            raise InputError(
                f"golden input {spec.name!r}: dtype {array.dtype} cannot become {spec.dtype}"
            )
        conformed[spec.name] = np.ascontiguousarray(array, dtype=spec.numpy_dtype)
    return conformed


def _read_golden_file(path: Path) -> Example:
    if not path.is_file():
        raise UsageError(f"{path}: no such golden inputs file (expected .npy or .npz)")
    if path.suffix not in (".npy", ".npz"):
        raise UsageError(f"{path}: golden inputs must be a .npy (one input) or .npz (named) file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    except (ValueError, OSError) as exc:
        raise UsageError(
            f"{path}: cannot be read as {path.suffix} golden inputs ({exc}); expected an "
            "array saved by np.save (.npy) or arrays by input name saved by np.savez (.npz)"
        ) from exc


def _single_input_name(signature: Signature) -> str:
    if len(signature.inputs) != 1:
        raise UsageError(
            f"the golden inputs are one array but the model takes {signature.input_names}; "
            "give an .npz (or a mapping) naming each input"
        )
    return signature.inputs[0].name


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
