"""Shared fixtures: real models sealed once per session, the Docker engine and the demo
serving image built in it, and a CLI runner."""

from __future__ import annotations

import itertools
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from modelseal import Seal, open_seal, pack
from modelseal.demo import DemoModel, train_demo_model
from modelseal.deploy import Weights, write_dockerfile
from modelseal.deploy.dockerfile import LOCK_FILE, SERVING_FILE
from modelseal.deploy.sizing import StartupMeasurement, measure_startup
from modelseal.runtimes.numpy_function import NumpyFunction
from modelseal.runtimes.sklearn import SklearnRuntime
from modelseal.seal.digests import describe_files
from modelseal.seal.manifest import MANIFEST_FILE, seal_manifest
from tests.deploy.images import (
    REPO,
    BuiltImage,
    build_image,
    cached_wheels,
    modelseal_wheel,
    wheelhouse,
)
from tests.docker_engine import (
    DockerEngine,
    EngineUnavailableError,
    ensure_base_image,
    start_engine,
    stop_engine,
)
from tests.envs.builder import build_environment, install_modelseal

LEGACY_REQUIREMENTS = Path(__file__).parent / "envs" / "legacy-numpy1.txt"
LEGACY_TABULAR_REQUIREMENTS = Path(__file__).parent / "envs" / "legacy-pandas2.txt"
MLSERVER_CLIENT_REQUIREMENTS = Path(__file__).parent / "envs" / "mlserver-client.txt"


@pytest.fixture(scope="session")
def modelseal_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wheels")


@pytest.fixture(scope="session")
def legacy_python(modelseal_wheels: Path) -> Path:
    """Python 3.11 with numpy 1.26, scikit-learn 1.3 and this modelseal (a real venv)."""
    python = build_environment(LEGACY_REQUIREMENTS)
    install_modelseal(python, modelseal_wheels)
    return python


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A private Docker engine for the whole run (skips where none can start)."""
    try:
        engine = start_engine()
    except EngineUnavailableError as exc:
        pytest.skip(f"no Docker engine: {exc}")
    try:
        yield engine
    finally:
        stop_engine(engine)


@pytest.fixture(scope="session")
def docker_base_image(docker_engine: DockerEngine) -> str:
    """Debian bookworm + Python 3.11 from debootstrap, imported into the engine (no registry)."""
    try:
        return ensure_base_image(docker_engine)
    except EngineUnavailableError as exc:
        pytest.skip(f"no base image: {exc}")


# --- the demo seal's serving image (the ship tests and the doctor's container tests) ----


@pytest.fixture(scope="session")
def demo_measurement(demo_seal_path: Path) -> StartupMeasurement:
    """The demo seal's start-up, measured once (a fresh interpreter running verify)."""
    return measure_startup(open_seal(demo_seal_path))


@pytest.fixture(scope="session")
def app_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """modelseal built from this checkout: the code layer of every test image."""
    return modelseal_wheel(REPO, tmp_path_factory.mktemp("app-wheel"))


@pytest.fixture(scope="session")
def demo_wheelhouse(
    demo_seal_path: Path,
    demo_measurement: StartupMeasurement,
    app_wheel: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The host's wheels for the demo seal's lock and serving requirements, plus modelseal."""
    staging = tmp_path_factory.mktemp("demo-requirements")
    write_dockerfile(open_seal(demo_seal_path), staging, measurement=demo_measurement)
    wheels = cached_wheels(staging / LOCK_FILE, staging / SERVING_FILE)
    return wheelhouse(tmp_path_factory.mktemp("demo-wheelhouse"), app_wheel, wheels)


@pytest.fixture(scope="session")
def demo_image(
    docker_engine: DockerEngine,
    docker_base_image: str,
    demo_seal_path: Path,
    demo_measurement: StartupMeasurement,
    demo_wheelhouse: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> BuiltImage:
    """The demo seal's serving image (weights baked), built once with no network."""
    plan, context = write_dockerfile(
        open_seal(demo_seal_path),
        tmp_path_factory.mktemp("demo-context"),
        weights=Weights.BAKED,
        base_image=docker_base_image,
        wheelhouse=demo_wheelhouse,
        measurement=demo_measurement,
    )
    tag = "modelseal-test/digits:baked"
    return BuiltImage(tag, plan, context, build_image(docker_engine, context.root, tag))


@pytest.fixture(scope="session")
def mlserver_python() -> Path:
    """A Python with MLServer 1.7.1 (its codecs, as its clients use them), in a real venv."""
    return build_environment(MLSERVER_CLIENT_REQUIREMENTS)


@pytest.fixture(scope="session")
def legacy_tabular_python(modelseal_wheels: Path) -> Path:
    """The legacy environment with pandas 2.2 and pyarrow 17 too (a real venv)."""
    python = build_environment(LEGACY_TABULAR_REQUIREMENTS)
    install_modelseal(python, modelseal_wheels)
    return python


@pytest.fixture(scope="session")
def demo_model() -> DemoModel:
    return train_demo_model()


@pytest.fixture(scope="session")
def demo_seal_path(tmp_path_factory: pytest.TempPathFactory, demo_model: DemoModel) -> Path:
    """The demo digits model sealed once; copy it (``seal_copy``) before changing it."""
    seal = pack(
        demo_model.estimator,
        runtime="sklearn",
        name="digits",
        version="1.0.0",
        golden=demo_model.golden_inputs,
        output=tmp_path_factory.mktemp("seals") / "digits-1.0.0.seal",
    )
    return seal.root


@pytest.fixture
def seal_copy(demo_seal_path: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / demo_seal_path.name
    shutil.copytree(demo_seal_path, copy)
    yield copy


@pytest.fixture
def demo_seal(demo_seal_path: Path) -> Seal:
    from modelseal import open_seal

    return open_seal(demo_seal_path)


def mlp_weights(seed: int, sizes: tuple[int, ...] = (16, 32, 8)) -> list[np.ndarray]:
    """Float32 weights of a small MLP, reproducible from the seed."""
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        for a, b in itertools.pairwise(sizes)
    ]


def onnx_mlp(weights: list[np.ndarray], input_name: str = "features") -> bytes:
    """A real ONNX graph: MatMul + Relu layers, the last without Relu, output 'scores'."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers = [], []
    current = input_name
    for index, weight in enumerate(weights):
        name = f"w{index}"
        initializers.append(numpy_helper.from_array(weight, name))
        product = "scores" if index == len(weights) - 1 else f"h{index}"
        nodes.append(helper.make_node("MatMul", [current, name], [product]))
        current = product
        if index < len(weights) - 1:
            nodes.append(helper.make_node("Relu", [product], [f"r{index}"]))
            current = f"r{index}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [
            helper.make_tensor_value_info(
                input_name, TensorProto.FLOAT, ["batch", weights[0].shape[0]]
            )
        ],
        [
            helper.make_tensor_value_info(
                "scores", TensorProto.FLOAT, ["batch", weights[-1].shape[1]]
            )
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def mlp_forward(weights: list[np.ndarray], features: np.ndarray) -> np.ndarray:
    """The same MLP in numpy, as an independent reference."""
    current = features
    for index, weight in enumerate(weights):
        current = current @ weight
        if index < len(weights) - 1:
            current = np.maximum(current, 0)
    return current


RANKER = Path(__file__).parent / "fixtures" / "ranker_function.py"


def reseal_with_other_weights(seal_dir: Path, weights: dict[str, np.ndarray], out: Path) -> Path:
    """A seal whose golden outputs came from other weights than the ones it ships.

    The real-world bug this mimics: the weights file was swapped after the golden outputs
    were recorded. Every digest is restamped, so only the replay can catch it.
    """
    shutil.copytree(seal_dir, out)
    np.savez(out / "model" / "weights.npz", **cast(dict[str, Any], weights))
    manifest = open_seal(seal_dir).manifest
    body = manifest.model_dump(mode="json", exclude={"digest", "files"})
    restamped = seal_manifest(**body, files=describe_files(out))
    (out / MANIFEST_FILE).write_text(restamped.to_json())
    return out


@pytest.fixture(scope="session")
def drifted_ranker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Golden scores from slightly perturbed item weights, close-spaced scores per row."""
    folder = tmp_path_factory.mktemp("ranker")
    rng = np.random.default_rng(11)
    items = (rng.standard_normal((16, 200)) * 1e-3).astype(np.float32)
    perturbed = (items * (1 + 0.05 * rng.standard_normal(items.shape))).astype(np.float32)
    queries = rng.standard_normal((64, 16)).astype(np.float32)
    sealed = pack(
        NumpyFunction(source=RANKER, weights={"items": perturbed}),
        runtime="numpy", name="ranker", version="1", golden=queries,
        output=folder / "perturbed.seal",
    )  # fmt: skip
    return reseal_with_other_weights(sealed.root, {"items": items}, folder / "drifted.seal")


class VanishingClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Pickled by reference to a module that will not exist where it is loaded."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> VanishingClassifier:
        self.classes_ = np.unique(y)
        self.n_features_in_ = x.shape[1]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[np.zeros(len(x), dtype=int)])


def seal_of_a_vanished_module(folder: Path) -> Seal:
    """A joblib seal of a class from a module that exists only while packing."""
    module_dir = folder / "gone"
    module_dir.mkdir()
    (module_dir / "vanishing_models.py").write_text(
        "from tests.conftest import VanishingClassifier as Base\nclass Vanishing(Base):\n    pass\n"
    )
    sys.path.insert(0, str(module_dir))
    try:
        from vanishing_models import Vanishing  # type: ignore[import-not-found]

        return pack(
            Vanishing().fit(np.zeros((4, 3)), np.array([0, 1, 0, 1])),
            runtime=SklearnRuntime(serialization="joblib"),
            name="gone", version="1", golden=np.zeros((2, 3)), output=folder / "gone.seal",
        )  # fmt: skip
    finally:
        sys.path.remove(str(module_dir))
        sys.modules.pop("vanishing_models", None)
