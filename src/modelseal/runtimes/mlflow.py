"""MLflow models of any flavor, run through ``mlflow.pyfunc``.

The model is a local MLflow model folder (one with an ``MLmodel`` file) or a ``runs:/...``
or ``models:/NAME/VERSION`` URI, fetched from the tracking server that ``MLFLOW_TRACKING_URI``
names. The whole folder is sealed as ``model/mlflow_model/`` and loaded back with
``mlflow.pyfunc.load_model``, so a model loads the way MLflow itself loads its flavor.

Inputs follow the MLmodel signature: tensors by name (a lone unnamed tensor is ``input``);
named columns are a tabular signature (``mlflow_table``): one 1-D input per column, and
the model gets a DataFrame with the golden data's exact dtypes; unnamed columns of one
numeric type are one 2-D ``input`` (rows x columns). A model without a signature takes
what its input example was: a DataFrame example makes it tabular too. (Seals made before
tables existed keep their ``columns`` layout, a DataFrame of numpy columns.) Outputs take
their names and dtypes from the signature (a lone unnamed output is ``prediction``) and
their shapes from a run of the example. A model saved with an ``input_example`` needs no
golden inputs: pack uses it.

The lock: MLflow's ``requirements.txt`` names whatever its inference saw imported (here, a
scikit-learn model's list held torch, pytest and rich). So the lock's roots are what the
model's object graph refers to, the flavor's serializer (skops), numpy, pandas and
mlflow-skinny (or mlflow); MLflow's list is kept in ``runtime.json`` for reference, and used
only for models whose object graph names nothing beyond MLflow (custom ``PythonModel`` code).
"""

from __future__ import annotations

import importlib
import os
import shutil
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlparse

import numpy as np
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from modelseal.errors import DeviceError, InputError, RuntimeLoadError, SourceError, UsageError
from modelseal.runtimes.mlflow_table import is_named_columns, schema_dtypes, schema_table
from modelseal.runtimes.modules import referenced_distributions
from modelseal.runtimes.options import RuntimeOptions, read_options, write_options
from modelseal.runtimes.shared import SINGLE_INPUT_NAME, LoadedModel, array_spec, model_path
from modelseal.tabular import table_inputs, table_of, to_frame
from modelseal.types import Array, Example, NamedArrays, Signature, Table, TableSpec, TensorSpec

MODEL_DIR = "mlflow_model"
MLMODEL_FILE = "MLmodel"
REQUIREMENTS_FILE = "requirements.txt"
SINGLE_OUTPUT_NAME = "prediction"
MLFLOW_DISTRIBUTIONS = ("mlflow-skinny", "mlflow")
"""Preferred first: mlflow-skinny is all ``mlflow.pyfunc`` needs to load a model."""
_MLFLOW_FAMILY = {"mlflow", "mlflow-skinny", "mlflow-tracing"}
_TRACKING_SCHEMES = ("runs", "models")
_SERIALIZERS = {"skops": "skops", "cloudpickle": "cloudpickle"}
"""A flavor's ``serialization_format`` -> the distribution that reads it back."""
_PYFUNC_FLAVOR = "python_function"

LayoutMode = Literal["array", "tensors", "matrix", "columns", "table"]


class LayoutOptions(RuntimeOptions):
    mode: LayoutMode
    columns: tuple[str, ...] | None = None


class MlflowOptions(RuntimeOptions):
    input_layout: LayoutOptions
    signature: Signature
    flavors: tuple[str, ...]
    mlflow_distribution: str
    distributions: tuple[str, ...]
    mlflow_requirements: tuple[str, ...]


class MlflowRuntime:
    """A model in MLflow's format (any flavor), loaded with ``mlflow.pyfunc``."""

    name: ClassVar[str] = "mlflow"
    supports_cuda: ClassVar[bool] = False

    def example_inputs(self, model: object) -> Example | None:
        """The model's own ``input_example`` as golden inputs, or None when it has none."""
        source = _model_source(model)
        mlmodel = _read_mlmodel(source)
        try:
            raw = mlmodel.load_input_example(source)
        except Exception as exc:
            raise SourceError(
                f"{source}: the MLflow input example cannot be read: {type(exc).__name__}: {exc}"
            ) from exc
        if raw is None:
            return None
        layout = _input_layout(mlmodel, raw_example=raw)
        return layout.example(raw)

    def trained_columns(self, model: object) -> dict[str, str | None] | None:
        """The columns of the model's named column-based signature, with MLflow's dtypes."""
        signature = _read_mlmodel(_model_source(model)).signature
        if signature is None or signature.inputs is None or not is_named_columns(signature.inputs):
            return None
        return schema_dtypes(signature.inputs)

    def save(self, model: object, dest: Path, example: Example) -> Signature:
        source = _model_source(model)
        dest.mkdir(parents=True, exist_ok=True)
        model_dir = dest / MODEL_DIR
        _fetch(source, model_dir)
        mlmodel = _read_mlmodel(str(model_dir))
        pyfunc = _load_pyfunc(model_dir)
        layout = _input_layout(mlmodel, example=example)
        inputs = layout.golden_inputs(example)
        result = _predict(pyfunc, layout, inputs)
        names, dtypes = _signature_outputs(mlmodel)
        outputs = _named_outputs(result, names)
        signature = Signature(
            inputs=layout.specs,
            outputs=tuple(
                array_spec(name, array, output=True, dtype=dtypes.get(name))
                for name, array in outputs.items()
            ),
            table=layout.table,
        )
        mlflow_requirements = _read_requirements(model_dir / REQUIREMENTS_FILE)
        options = MlflowOptions(
            input_layout=LayoutOptions(
                mode=layout.mode, columns=None if layout.columns is None else tuple(layout.columns)
            ),
            signature=signature,
            flavors=tuple(sorted(mlmodel.flavors)),
            mlflow_distribution=_installed_mlflow(),
            distributions=tuple(_serving_distributions(pyfunc, mlmodel, mlflow_requirements)),
            mlflow_requirements=tuple(mlflow_requirements),
        )
        write_options(dest, options)
        return signature

    def load(self, path: Path, device: str) -> LoadedMlflow:
        if device != "cpu":
            raise DeviceError(
                f"the mlflow runtime runs pyfunc models on the CPU only; asked for {device!r} "
                "(seal a GPU model with the torch or onnx runtime instead)"
            )
        options = read_options(path, MlflowOptions)
        started = time.perf_counter()
        import mlflow.pyfunc  # noqa: F401  (timed on its own: importing mlflow takes seconds)

        imported = time.perf_counter()
        pyfunc = _load_pyfunc(path / MODEL_DIR)
        timings = {"import": imported - started, "read": time.perf_counter() - imported}
        columns = options.input_layout.columns
        layout = InputLayout(
            mode=options.input_layout.mode,
            specs=options.signature.inputs,
            columns=None if columns is None else list(columns),
            table=options.signature.table,
        )
        return LoadedMlflow(
            pyfunc=pyfunc, layout=layout, signature=options.signature, load_timings=timings
        )

    def pickle_on_load(self, path: Path) -> str | None:
        """Conservative: only flavors known to load without pickle or model code (ONNX, and
        scikit-learn saved as skops) answer None, read from the MLmodel file as MLflow will."""
        return _pickle_on_load(path / MODEL_DIR, f"{path.name}/{MODEL_DIR}/{MLMODEL_FILE}")

    def requirements(self, path: Path) -> list[str]:
        options = read_options(path, MlflowOptions)
        roots = {options.mlflow_distribution, "numpy", "pandas", *options.distributions}
        if options.signature.table is not None:
            roots.add("pyarrow")  # reads the golden parquet (pandas builds the DataFrame)
        return sorted(roots)


@dataclass(kw_only=True)
class LoadedMlflow(LoadedModel):
    pyfunc: Any
    layout: InputLayout

    def predict(self, inputs: NamedArrays) -> NamedArrays:
        result = _predict(self.pyfunc, self.layout, inputs)
        outputs = _named_outputs(result, self.signature.output_names)
        return {spec.name: _as_dtype(outputs[spec.name], spec) for spec in self.signature.outputs}


@dataclass(frozen=True)
class InputLayout:
    """How modelseal's named inputs become what the pyfunc model takes.

    ``array``: one ndarray (input ``input``); ``tensors``: a dict of ndarrays by name;
    ``matrix``: a DataFrame built from the 2-D ``input`` with ``columns``; ``columns``: a
    DataFrame with one 1-D input per column; ``table``: the DataFrame of ``table``.
    """

    mode: LayoutMode
    specs: tuple[TensorSpec, ...]
    columns: list[str] | None = None
    table: TableSpec | None = None

    @classmethod
    def of_table(cls, table: TableSpec) -> InputLayout:
        return cls("table", table.input_specs(), table=table)

    def model_input(self, inputs: NamedArrays) -> Any:
        if self.table is not None:
            return to_frame(inputs, self.table)
        if self.mode == "array":
            return inputs[SINGLE_INPUT_NAME]
        if self.mode == "tensors":
            return {spec.name: inputs[spec.name] for spec in self.specs}
        pd = _pandas()
        if self.mode == "matrix":
            return pd.DataFrame(inputs[SINGLE_INPUT_NAME], columns=self.columns)
        return pd.DataFrame({spec.name: inputs[spec.name] for spec in self.specs})

    def golden_inputs(self, example: Example) -> NamedArrays:
        """The golden example as this layout's inputs, checked and typed."""
        if self.table is not None:
            return table_inputs(example, self.table)
        if isinstance(example, Table):
            raise InputError(
                "the golden inputs are a DataFrame, but the MLflow signature names tensors "
                f"{[spec.name for spec in self.specs]}; give them as arrays"
            )
        return self.conform(self.named(example))

    def named(self, example: Array | NamedArrays) -> NamedArrays:
        if isinstance(example, np.ndarray):
            if len(self.specs) != 1:
                raise UsageError(
                    f"the golden inputs are one array but the model takes "
                    f"{[spec.name for spec in self.specs]}; give them by name (.npz)"
                )
            return {self.specs[0].name: example}
        return dict(example)

    def conform(self, inputs: NamedArrays) -> NamedArrays:
        return {spec.name: _as_dtype(np.asarray(inputs[spec.name]), spec) for spec in self.specs}

    def example(self, raw: Any) -> Example:
        """An MLflow input example (DataFrame, ndarray, dict, list) as golden inputs."""
        pd = _pandas()
        if isinstance(raw, pd.DataFrame):
            if self.table is not None:
                return table_of(raw, where="the MLflow input example")
            if self.mode == "columns":
                by_name = {str(column): raw[column] for column in raw.columns}
                return {spec.name: _column_array(by_name[spec.name]) for spec in self.specs}
            return _column_array(raw[self.columns] if self.columns else raw)
        if isinstance(raw, dict):
            arrays = {str(name): _column_array(value) for name, value in raw.items()}
            if self.mode == "matrix" and self.columns:
                return np.column_stack([arrays[column] for column in self.columns])
            return arrays
        if isinstance(raw, np.ndarray | list):
            return _column_array(raw)
        raise UsageError(
            f"the MLflow input example is a {type(raw).__name__}; modelseal takes DataFrame, "
            "ndarray or dict examples as golden inputs (give --golden instead)"
        )


def _model_source(model: object) -> str:
    """A local model folder, or a URI for MLflow to resolve."""
    path = model_path(model)
    if path is None:
        raise UsageError(
            f"cannot seal a {type(model).__name__} with the mlflow runtime: expected an MLflow "
            "model folder or a runs:/... or models:/NAME/VERSION URI"
        )
    text = model if isinstance(model, str) else str(path)
    if Path(text).is_dir():
        if not (Path(text) / MLMODEL_FILE).is_file():
            raise UsageError(f"{text}: not an MLflow model folder (it has no {MLMODEL_FILE} file)")
        return text
    scheme = urlparse(text).scheme
    if len(scheme) <= 1:
        raise UsageError(
            f"{text}: no such MLflow model folder (or a URI such as runs:/RUN/PATH or "
            "models:/NAME/VERSION)"
        )
    if scheme in _TRACKING_SCHEMES and not os.environ.get("MLFLOW_TRACKING_URI"):
        raise UsageError(
            f"{text}: a {scheme}:/ URI needs a tracking server; set MLFLOW_TRACKING_URI "
            "(for example http://mlflow:5000)"
        )
    return text


def _fetch(source: str, model_dir: Path) -> None:
    if Path(source).is_dir():
        shutil.copytree(source, model_dir)
        return
    import mlflow.artifacts

    staging = model_dir.with_name(f".{model_dir.name}.download")
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(staging))
        )
    except Exception as exc:
        raise SourceError(
            f"{source}: MLflow cannot download the model from "
            f"{os.environ.get('MLFLOW_TRACKING_URI', 'the default tracking store')}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not (local / MLMODEL_FILE).is_file():
        raise UsageError(f"{source}: not an MLflow model (no {MLMODEL_FILE} file in it)")
    local.rename(model_dir)
    shutil.rmtree(staging, ignore_errors=True)


def _read_mlmodel(source: str) -> Any:
    from mlflow.models import Model

    try:
        return Model.load(source)
    except Exception as exc:
        raise SourceError(
            f"{source}: its {MLMODEL_FILE} cannot be read: {type(exc).__name__}: {exc}"
        ) from exc


def _pickle_on_load(model_dir: Path, shown: str) -> str | None:
    try:
        yaml = importlib.import_module("yaml")
        mlmodel = yaml.safe_load((model_dir / MLMODEL_FILE).read_text(encoding="utf-8"))
        flavors = mlmodel["flavors"]
        loader = str(flavors[_PYFUNC_FLAVOR]["loader_module"])
    except Exception as exc:
        return (
            f"{shown} cannot be read to tell how mlflow.pyfunc loads the model "
            f"({type(exc).__name__}: {exc}), so it is treated as loading pickle"
        )
    pyfunc = flavors[_PYFUNC_FLAVOR]
    if pyfunc.get("code") or pyfunc.get("model_code_path"):
        return f"{shown}: the model brings Python code of its own, which loading imports"
    if loader == "mlflow.onnx":
        return None
    if loader == "mlflow.sklearn":
        serialization = (flavors.get("sklearn") or {}).get("serialization_format", "pickle")
        if serialization == "skops":
            return None
        return f"{shown}: a scikit-learn model serialised with {serialization}"
    return (
        f"{shown}: loader_module {loader} loads through pickle, cloudpickle or the model's "
        "own code (only ONNX models and scikit-learn models saved as skops are known not to)"
    )


def _load_pyfunc(model_dir: Path) -> Any:
    import mlflow.pyfunc

    try:
        return mlflow.pyfunc.load_model(str(model_dir))
    except Exception as exc:
        raise RuntimeLoadError(
            f"{model_dir.name}: mlflow.pyfunc cannot load the model here: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _predict(pyfunc: Any, layout: InputLayout, inputs: NamedArrays) -> Any:
    try:
        return pyfunc.predict(layout.model_input(inputs))
    except Exception as exc:
        raise RuntimeLoadError(
            f"the MLflow model failed to predict: {type(exc).__name__}: {exc}"
        ) from exc


def _input_layout(
    mlmodel: Any, *, example: Example | None = None, raw_example: Any = None
) -> InputLayout:
    """The input layout from the MLmodel signature, else from the example's form."""
    signature = mlmodel.signature
    if signature is not None and signature.inputs is not None:
        if is_named_columns(signature.inputs):
            given = None if raw_example is not None else example
            return InputLayout.of_table(schema_table(signature.inputs, given))
        return _layout_from_schema(signature.inputs)
    if raw_example is not None:
        example = _example_arrays(raw_example)
    if example is None:
        raise UsageError("the MLflow model has neither a signature nor an input example")
    if isinstance(example, Table):
        return InputLayout.of_table(example.spec)
    if isinstance(example, np.ndarray):
        return InputLayout("array", (array_spec(SINGLE_INPUT_NAME, example, output=False),))
    specs = tuple(array_spec(name, array, output=False) for name, array in example.items())
    saved_as = (mlmodel.saved_input_example_info or {}).get("type")
    return InputLayout("columns" if saved_as == "dataframe" else "tensors", specs)


def _example_arrays(raw: Any) -> Example:
    """An input example as arrays, for a model without a signature to say how to read it."""
    pd = _pandas()
    if isinstance(raw, pd.DataFrame):
        return table_of(raw, where="the MLflow input example")
    if isinstance(raw, dict):
        return {str(name): _column_array(value) for name, value in raw.items()}
    return _column_array(raw)


def _layout_from_schema(schema: Any) -> InputLayout:
    from mlflow.types import DataType

    if schema.is_tensor_spec():
        specs = list(schema.inputs)
        if len(specs) == 1 and specs[0].name is None:
            return InputLayout("array", (_tensor_spec(SINGLE_INPUT_NAME, specs[0]),))
        return InputLayout("tensors", tuple(_tensor_spec(spec.name, spec) for spec in specs))
    columns = list(schema.inputs)
    for column in columns:
        if not isinstance(column.type, DataType) or column.type.to_numpy().kind not in "biufU":
            raise UsageError(
                f"MLflow input column {column.name!r} has type {column.type}; modelseal serves "
                "numeric, boolean and string columns"
            )
    types = {column.type for column in columns}
    names = [str(column.name) for column in columns] if schema.has_input_names() else None
    if len(types) == 1 and columns[0].type.to_numpy().kind in "biuf":
        dtype = columns[0].type.to_numpy().name
        spec = TensorSpec(name=SINGLE_INPUT_NAME, dtype=dtype, shape=(-1, len(columns)))
        return InputLayout("matrix", (spec,), names)
    if names is None:
        raise UsageError("MLflow input columns of mixed types need names in the signature")
    return InputLayout(
        "columns",
        tuple(
            TensorSpec(name=name, dtype=column.type.to_numpy().name, shape=(-1,))
            for name, column in zip(names, columns, strict=True)
        ),
    )


def _tensor_spec(name: str, spec: Any) -> TensorSpec:
    shape = tuple(int(dim) for dim in spec.shape)
    return TensorSpec(name=name, dtype=np.dtype(spec.type).name, shape=(-1, *shape[1:]))


def _signature_outputs(mlmodel: Any) -> tuple[list[str] | None, dict[str, str]]:
    """Output names and (where the signature says) dtypes; None when there is no schema."""
    signature = mlmodel.signature
    if signature is None or signature.outputs is None:
        return None, {}
    specs = list(signature.outputs.inputs)
    if len(specs) == 1 and specs[0].name is None:
        names = [SINGLE_OUTPUT_NAME]
    else:
        names = [
            str(spec.name) if spec.name is not None else f"{SINGLE_OUTPUT_NAME}_{index}"
            for index, spec in enumerate(specs)
        ]
    dtypes: dict[str, str] = {}
    for name, spec in zip(names, specs, strict=True):
        dtype = _schema_dtype(spec)
        if dtype is not None:
            dtypes[name] = dtype
    return names, dtypes


def _schema_dtype(spec: Any) -> str | None:
    from mlflow.types import DataType

    if isinstance(spec.type, DataType):
        dtype = spec.type.to_numpy()
    elif isinstance(spec.type, np.dtype):
        dtype = spec.type
    else:
        return None
    return dtype.name if dtype.kind in "biufU" else None


def _named_outputs(result: Any, names: list[str] | None) -> NamedArrays:
    """The pyfunc's result (ndarray, Series, DataFrame, dict, list) as arrays by name."""
    pd = _pandas()
    if isinstance(result, pd.DataFrame):
        if names is None:
            return {str(column): _column_array(result[column]) for column in result.columns}
        if set(names) <= {str(column) for column in result.columns}:
            return {name: _column_array(result[name]) for name in names}
        if len(names) == 1:
            array = _column_array(result)
            return {names[0]: array[:, 0] if array.shape[1] == 1 else array}
        return {name: _column_array(result[col]) for name, col in zip(names, result, strict=True)}
    if isinstance(result, dict):
        if names is None:
            return {str(key): _column_array(value) for key, value in result.items()}
        return {name: _column_array(result[name]) for name in names}
    array = _column_array(result)
    if names is None or len(names) == 1:
        return {(names or [SINGLE_OUTPUT_NAME])[0]: array}
    if array.ndim == 2 and array.shape[1] == len(names):
        return {name: array[:, index] for index, name in enumerate(names)}
    raise RuntimeLoadError(
        f"the MLflow model returned one array of shape {list(array.shape)}, its signature "
        f"names {len(names)} outputs {names}"
    )


def _column_array(values: Any) -> Array:
    """An ndarray without Python objects: strings become numpy unicode arrays."""
    array: Array = np.asarray(values)
    if array.dtype.kind == "O":
        return array.astype(str)
    return array


def _as_dtype(array: Array, spec: TensorSpec) -> Array:
    array = _column_array(array)
    if spec.numpy_dtype.kind == "U":
        return array.astype(str, copy=False)
    return array.astype(spec.numpy_dtype, copy=False)


def _read_requirements(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if text and not text.startswith("-"):
            lines.append(text)
    return lines


def _serving_distributions(pyfunc: Any, mlmodel: Any, mlflow_requirements: list[str]) -> list[str]:
    """Lock roots beyond numpy, pandas and mlflow: what the model needs, not what was around."""
    referenced = _referenced_by_model(pyfunc) - _MLFLOW_FAMILY
    if not referenced:
        referenced = {_requirement_name(text) for text in mlflow_requirements} - {""}
        referenced -= _MLFLOW_FAMILY
    for flavor in mlmodel.flavors.values():
        serializer = _SERIALIZERS.get(str(flavor.get("serialization_format")))
        if serializer is not None:
            referenced.add(serializer)
    return sorted(name for name in referenced if _installed(name))


def _referenced_by_model(pyfunc: Any) -> set[str]:
    try:
        raw = pyfunc.get_raw_model()
        return {canonicalize_name(name) for name in referenced_distributions(raw)}
    except Exception:
        # Flavors without a raw model, or raw models that cannot be pickled (a TensorFlow
        # graph): MLflow's requirements list is then the best record there is.
        return set()


def _requirement_name(text: str) -> str:
    try:
        return canonicalize_name(Requirement(text).name)
    except InvalidRequirement:
        return ""


def _pandas() -> Any:
    # Imported on use, like every framework here; pandas ships no type information.
    return importlib.import_module("pandas")


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def _installed_mlflow() -> str:
    for name in MLFLOW_DISTRIBUTIONS:
        if _installed(name):
            return name
    raise UsageError("the mlflow runtime needs mlflow (or mlflow-skinny) installed")
