"""The small protocol every framework adapter implements."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

from modelseal.types import Example, NamedArrays, Signature

__all__ = ["ColumnsProvider", "Example", "ExampleProvider", "Loaded", "Runtime"]


@runtime_checkable
class Loaded(Protocol):
    """A model loaded on a device, ready to predict batches."""

    signature: Signature
    device: str
    load_timings: dict[str, float]
    """Seconds spent in each load step (for example ``import``, ``read``, ``to_device``)."""

    def predict(self, inputs: NamedArrays) -> NamedArrays:
        """Run one batch (axis 0) of inputs, named as in the signature, to named outputs."""
        ...


class Runtime(Protocol):
    """One framework adapter: it saves a model into a seal and loads it back.

    ``save`` writes everything the model needs under ``dest`` (a folder that becomes the
    seal's ``model/``), including any options that change numerics, so that ``load`` can
    apply them again; everything under ``dest`` is digest-checked before ``load`` sees it.
    ``example`` is the golden input (one array, arrays by name, or a ``Table`` of columns
    from a DataFrame): formats that do not record a signature (a numpy function,
    TorchScript) infer theirs by running it; a runtime that takes DataFrames returns a
    tabular signature (``Signature.tabular``) for a ``Table``.
    ``supports_cuda``: whether ``load`` takes ``cuda``/``cuda:N`` devices; the server picks
    the device from it before anything loads.
    ``pickle_on_load``: whether ``load`` would deserialise pickle data (which runs whatever
    code the bytes name), read from the files alone; verification refuses such a model unless
    someone trusted vouched for the seal (see ``modelseal.seal.trust``).
    """

    name: ClassVar[str]
    supports_cuda: ClassVar[bool]

    def save(self, model: object, dest: Path, example: Example) -> Signature: ...

    def load(self, path: Path, device: str) -> Loaded: ...

    def requirements(self, path: Path) -> list[str]:
        """Distribution names serving needs to load what ``save`` wrote (roots of the lock)."""
        ...

    def pickle_on_load(self, path: Path) -> str | None:
        """Why loading the model saved under ``path`` deserialises pickle data (naming the
        file and the format), or None when it does not. Must not load anything itself."""
        ...


@runtime_checkable
class CudaBuildReporter(Protocol):
    """Optional beside ``Runtime``: a runtime that takes CUDA devices, whose installed library
    may still be a build that cannot use any GPU (torch ``+cpu``, onnxruntime without its
    CUDA provider), so the server blames the build rather than the machine."""

    def cuda_build_problem(self) -> str | None:
        """Why this installation cannot run on any GPU (naming the build and the fix), or
        None when it can, given a GPU. Imports the library; loads nothing."""
        ...


@runtime_checkable
class ExampleProvider(Protocol):
    """Optional beside ``Runtime``: a runtime whose model format can carry its own example
    inputs (an MLflow ``input_example``), so ``pack`` needs no golden inputs for it."""

    def example_inputs(self, model: object) -> Example | None:
        """The example ``model`` carries (one array, or arrays by name), or None if none."""
        ...


@runtime_checkable
class ColumnsProvider(Protocol):
    """Optional beside ``Runtime``: a runtime whose models record the columns they were
    trained on (scikit-learn's ``feature_names_in_``, an MLflow column signature), so that
    golden inputs from a CSV file can be read with the right names and dtypes."""

    def trained_columns(self, model: object) -> dict[str, str | None] | None:
        """The columns ``model`` takes, in order, each with the pandas dtype its format
        records (None where it records none); None for a model not trained on columns."""
        ...
