"""scikit-learn estimators, saved with skops (default when installed) or joblib.

joblib files are pickles: loading one runs whatever code the bytes name. Digests only prove
that the files did not change since the manifest was written, so verification loads a joblib
model only from a seal someone trusted vouched for (``pickle_on_load`` says it is one); skops
loads without running code and refuses types it does not trust unless the seal names them.

An estimator fitted on a DataFrame (it has ``feature_names_in_``; a pipeline whose
``ColumnTransformer`` selects columns by name needs one) gets a tabular signature: its
columns, in the order it was trained on, with the dtypes and nulls of the golden DataFrame;
it always receives a DataFrame rebuilt with them, never a bare array. Any other estimator
takes one 2-D float input.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from modelseal.errors import DeviceError, InputError, RuntimeLoadError, UsageError
from modelseal.runtimes.modules import import_refusing, referenced_distributions
from modelseal.runtimes.options import RuntimeOptions, read_options, write_options
from modelseal.runtimes.shared import (
    SINGLE_INPUT_NAME,
    LoadedModel,
    check_model_file,
    model_path,
)
from modelseal.tabular.frames import to_frame
from modelseal.tabular.record import ordered_as_trained, table_of_arrays
from modelseal.types import (
    Example,
    NamedArrays,
    OutputKind,
    Signature,
    Table,
    TableSpec,
    TensorSpec,
)

Serialization = Literal["skops", "joblib"]
INPUT_NAME = SINGLE_INPUT_NAME
MODEL_FILES: dict[str, str] = {"skops": "model.skops", "joblib": "model.joblib"}
SKOPS_SUFFIXES = (".skops",)
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
TRUSTED_LIBRARIES = frozenset({"sklearn", "numpy", "scipy"})
VALUE_TYPES = frozenset(
    f"builtins.{name}" for name in ("object", "str", "bytes", "int", "float", "bool", "complex")
)
"""Python's value types, which skops does not trust either: a ColumnTransformer names one
when it picks text columns with ``make_column_selector(dtype_include=object)``."""
# scikit-learn's array-API adapters for other array libraries: importing skops.io imports
# every scikit-learn package, and these import their library (torch: 2 s, 300 MiB). Loading
# an estimator never needs them; one that holds torch objects imports torch itself.
ARRAY_API_ADAPTERS = tuple(
    f"sklearn.externals.array_api_compat.{library}" for library in ("torch", "cupy", "dask")
)


class SklearnOptions(RuntimeOptions):
    serialization: Serialization
    trusted_types: tuple[str, ...] = ()
    distributions: tuple[str, ...] = ()
    signature: Signature


class SklearnRuntime:
    """A fitted scikit-learn estimator (or pipeline): one 2-D float input, or the columns
    of the DataFrame it was fitted on."""

    name: ClassVar[str] = "sklearn"
    supports_cuda: ClassVar[bool] = False

    def __init__(
        self,
        serialization: Serialization | None = None,
        trusted_types: list[str] | None = None,
    ) -> None:
        self.serialization: Serialization = serialization or _default_serialization()
        self.trusted_types = sorted(trusted_types or [])

    def trained_columns(self, model: object) -> dict[str, str | None] | None:
        """The columns the estimator was fitted on (scikit-learn records no dtypes)."""
        names = feature_names(self._estimator(model))
        return None if names is None else dict.fromkeys(names)

    def save(self, model: object, dest: Path, example: Example) -> Signature:
        estimator = self._estimator(model)
        signature = estimator_signature(estimator, example)
        dest.mkdir(parents=True, exist_ok=True)
        model_file = dest / MODEL_FILES[self.serialization]
        trusted = self.trusted_types
        if self.serialization == "skops":
            import skops.io

            skops.io.dump(estimator, model_file)
            trusted = sorted(
                {*trusted, *_library_types(skops.io.get_untrusted_types(file=model_file))}
            )
        else:
            import joblib

            joblib.dump(estimator, model_file)
        options = SklearnOptions(
            serialization=self.serialization,
            trusted_types=tuple(trusted),
            distributions=tuple(referenced_distributions(estimator)),
            signature=signature,
        )
        write_options(dest, options)
        return signature

    def _estimator(self, model: object) -> Any:
        source = model_path(model)
        return model if source is None else _read_model_file(source, self.trusted_types)

    def load(self, path: Path, device: str) -> LoadedEstimator:
        if device != "cpu":
            raise DeviceError(f"scikit-learn runs on the CPU only; asked for device {device!r}")
        options = read_options(path, SklearnOptions)
        started = time.perf_counter()
        import_refusing(
            "skops.io" if options.serialization == "skops" else "joblib", ARRAY_API_ADAPTERS
        )
        imported = time.perf_counter()
        estimator = _load_estimator(path / MODEL_FILES[options.serialization], options)
        timings = {"import": imported - started, "read": time.perf_counter() - imported}
        return LoadedEstimator(
            estimator=estimator, signature=options.signature, load_timings=timings
        )

    def pickle_on_load(self, path: Path) -> str | None:
        options = read_options(path, SklearnOptions)
        if options.serialization == "skops":
            return None
        return (
            f"{path.name}/{MODEL_FILES['joblib']} is a joblib pickle: the seal's runtime.json "
            "says serialization 'joblib'"
        )

    def requirements(self, path: Path) -> list[str]:
        options = read_options(path, SklearnOptions)
        roots = {"scikit-learn", "numpy", *options.distributions}
        roots.add("skops" if options.serialization == "skops" else "joblib")
        if options.signature.table is not None:
            # pandas builds the DataFrame the model receives; pyarrow reads the golden parquet.
            roots |= {"pandas", "pyarrow"}
        return sorted(roots)


@dataclass(kw_only=True)
class LoadedEstimator(LoadedModel):
    estimator: Any
    _methods: list[tuple[TensorSpec, str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._methods = [(spec, _METHOD_OF_OUTPUT[spec.name]) for spec in self.signature.outputs]

    def predict(self, inputs: NamedArrays) -> NamedArrays:
        table = self.signature.table
        features = inputs[INPUT_NAME] if table is None else to_frame(inputs, table)
        outputs: NamedArrays = {}
        for spec, method in self._methods:
            result = np.asarray(getattr(self.estimator, method)(features))
            outputs[spec.name] = result.astype(spec.dtype, copy=False)
        return outputs


_METHOD_OF_OUTPUT = {
    "label": "predict",
    "prediction": "predict",
    "probabilities": "predict_proba",
    "scores": "decision_function",
}


def estimator_signature(estimator: Any, example: Example | None = None) -> Signature:
    """The signature of a fitted estimator, outputs by available method: the table of the
    golden DataFrame (``example``) for one fitted on a DataFrame, else one float64 input."""
    outputs = tuple(_output_specs(estimator))
    names = feature_names(estimator)
    if names is not None:
        return Signature.tabular(_trained_table(estimator, names, example), outputs)
    if isinstance(example, Table):
        raise InputError(
            f"the golden inputs are a DataFrame, but {type(estimator).__name__} was fitted on "
            "an array (it has no feature_names_in_), so it takes arrays: give the golden "
            "inputs as an array, or fit the model on the DataFrame"
        )
    n_features = getattr(estimator, "n_features_in_", None)
    if not isinstance(n_features, int | np.integer):
        raise UsageError(
            f"{type(estimator).__name__} has no n_features_in_: expected a fitted "
            "scikit-learn estimator (fit it before sealing)"
        )
    inputs = (TensorSpec(name=INPUT_NAME, dtype="float64", shape=(-1, int(n_features))),)
    return Signature(inputs=inputs, outputs=outputs)


def feature_names(estimator: Any) -> list[str] | None:
    """The columns a fitted estimator was fitted on (scikit-learn records them only when
    every column name was text), or None for one fitted on an array."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return None
    return [str(name) for name in names]


def _trained_table(estimator: Any, names: list[str], example: Example | None) -> TableSpec:
    where = "the golden DataFrame" if isinstance(example, Table) else "the golden inputs"
    if example is None:
        raise UsageError(
            f"{type(estimator).__name__} was fitted on a DataFrame with columns {names}: give "
            "golden inputs as a DataFrame with those columns"
        )
    table = example if isinstance(example, Table) else table_of_arrays(example, names, where)
    return ordered_as_trained(table.spec, names, where)


def _output_specs(estimator: Any) -> list[TensorSpec]:
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        n_outputs = getattr(estimator, "n_outputs_", 1)
        shape = (-1,) if n_outputs == 1 else (-1, int(n_outputs))
        return [
            TensorSpec(name="prediction", dtype="float64", shape=shape, kind=OutputKind.REGRESSION)
        ]
    classes = np.asarray(classes)
    label_dtype = classes.dtype.name if classes.dtype.kind in "biuf" else f"<U{_max_len(classes)}"
    specs = [TensorSpec(name="label", dtype=label_dtype, shape=(-1,), kind=OutputKind.LABEL)]
    n_classes = len(classes)
    if hasattr(estimator, "predict_proba"):
        specs.append(
            TensorSpec(
                name="probabilities",
                dtype="float64",
                shape=(-1, n_classes),
                kind=OutputKind.PROBABILITIES,
            )
        )
    if hasattr(estimator, "decision_function"):
        shape = (-1,) if n_classes == 2 else (-1, n_classes)
        specs.append(
            TensorSpec(name="scores", dtype="float64", shape=shape, kind=OutputKind.SCORES)
        )
    return specs


def _max_len(classes: np.ndarray[Any, Any]) -> int:
    return max(len(str(label)) for label in classes.tolist())


def _library_types(untrusted: list[str]) -> list[str]:
    """Types of the numerical libraries themselves (``sklearn.tree._tree.Tree``,
    ``numpy.dtype``) and Python's value types (``VALUE_TYPES``), which skops does not trust
    by default but which are no more code than the estimator being sealed. They are written
    into the sealed runtime.json, so what is trusted is digest-checked."""
    return [
        name
        for name in untrusted
        if name.split(".", 1)[0] in TRUSTED_LIBRARIES or name in VALUE_TYPES
    ]


def _default_serialization() -> Serialization:
    return "skops" if importlib.util.find_spec("skops") is not None else "joblib"


def _read_model_file(path: Path, trusted_types: list[str]) -> Any:
    expected = (
        f"a scikit-learn model saved by skops (.skops) or joblib ({', '.join(PICKLE_SUFFIXES)})"
    )
    check_model_file(path, SKOPS_SUFFIXES + PICKLE_SUFFIXES, expected, "sklearn")
    if path.suffix.lower() in SKOPS_SUFFIXES:
        if not zipfile.is_zipfile(path):
            raise UsageError(f"{path}: not a zip archive, so not a skops file; expected {expected}")
        import skops.io

        libraries = _library_types(skops.io.get_untrusted_types(file=path))
        return _load_skops(path, [*trusted_types, *libraries])
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:
        raise UsageError(
            f"{path}: cannot be read as a joblib or pickle file ({type(exc).__name__}: {exc}); "
            f"expected {expected}"
        ) from exc


def _load_estimator(model_file: Path, options: SklearnOptions) -> Any:
    try:
        if options.serialization == "skops":
            return _load_skops(model_file, list(options.trusted_types))
        import joblib

        return joblib.load(model_file)
    except RuntimeLoadError:
        raise
    except Exception as exc:
        raise RuntimeLoadError(
            f"{model_file.name}: scikit-learn model cannot be loaded here: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _load_skops(path: Path, trusted_types: list[str]) -> Any:
    import skops.io

    untrusted = [t for t in skops.io.get_untrusted_types(file=path) if t not in trusted_types]
    if untrusted:
        raise RuntimeLoadError(
            f"{path.name}: skops refuses to load types it does not trust: "
            f"{', '.join(untrusted)}; if you trust them, seal with "
            "SklearnRuntime(trusted_types=[...]) naming them"
        )
    return skops.io.load(path, trusted=trusted_types or None)
