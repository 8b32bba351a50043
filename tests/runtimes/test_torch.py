"""The torch runtime on real TorchScript modules and torch.export programs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch

from modelseal import DeviceError, Seal, UsageError, open_seal, pack
from modelseal.golden import load_golden
from modelseal.runtimes import get_runtime
from modelseal.runtimes.torch import NumericSettings, TorchRuntime
from modelseal.seal.keys import KeyPair, generate_key_pair
from modelseal.seal.signatures import sign_seal
from modelseal.seal.trust import TrustPolicy
from modelseal.types import Array, NamedArrays, OutputKind
from modelseal.verify import Verdict, verify
from tests.cli_process import run_modelseal as modelseal
from tests.fixtures.torch_models import (
    Ranker,
    TinyMLP,
    TwoHeads,
    exported,
    golden_features,
    save_scripted,
    scripted,
)

FEATURES = golden_features()
NO_CUDA = "no CUDA device here: torch.cuda.is_available() is False"
# Both torch formats unpickle on load, so a torch seal loads only once vouched for: these
# tests sign their seals and trust the key, as a team serving torch models would.


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate_key_pair(tmp_path_factory.mktemp("keys") / "torch-ci")


@pytest.fixture(scope="module")
def trusted(signer: KeyPair) -> TrustPolicy:
    return TrustPolicy.from_options([signer.public_key])


def as_float32(array: Array) -> npt.NDArray[np.float32]:
    return np.asarray(array, dtype=np.float32)


@pytest.fixture(scope="module")
def seals(tmp_path_factory: pytest.TempPathFactory, signer: KeyPair) -> dict[str, Seal]:
    """The same MLP sealed once as TorchScript and once as an exported program (64 rows),
    each signed by ``signer``."""
    folder = tmp_path_factory.mktemp("torch-seals")
    sealed = {
        "torchscript": pack(
            scripted(TinyMLP()), runtime="torch", name="mlp", version="1", golden=FEATURES,
            output=folder / "scripted.seal",
        ),
        "export": pack(
            exported(TinyMLP(), FEATURES), runtime="torch", name="mlp", version="2",
            golden=FEATURES, output=folder / "exported.seal",
        ),
    }  # fmt: skip
    for seal in sealed.values():
        sign_seal(seal.root, signer.private_key)
    return sealed


@pytest.fixture
def restore_torch_settings() -> Iterator[None]:
    """Loading a torch seal sets process-wide torch state; put this process's back after."""
    before = NumericSettings.current()
    yield
    before.apply()


@pytest.mark.parametrize(("model_format", "model_file"), [
    ("torchscript", "model.pt"), ("export", "model.pt2"),
])  # fmt: skip
def test_round_trip_verifies_in_a_fresh_process(
    seals: dict[str, Seal], signer: KeyPair, model_format: str, model_file: str
) -> None:
    seal = seals[model_format]
    assert (seal.model_dir / model_file).is_file()
    assert json.loads((seal.model_dir / "runtime.json").read_text())["format"] == model_format

    result = modelseal("verify", "--json", str(seal.root), "--trusted-key", str(signer.public_key))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "consistent"
    assert {replay["batch_size"] for replay in report["golden"]} == {1, 64}

    golden = load_golden(seal.golden_path)
    loaded = get_runtime("torch").load(seal.model_dir, "cpu")
    batch = {"input": golden.inputs["input"][8:40]}
    np.testing.assert_array_equal(loaded.predict(batch)["output"], golden.outputs["output"][8:40])
    with torch.no_grad():
        eager = TinyMLP()(torch.from_numpy(FEATURES)).numpy()
    np.testing.assert_allclose(as_float32(golden.outputs["output"]), eager, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model_format", ["torchscript", "export"])
def test_every_batch_size_from_1_to_64_replays_consistent(
    seals: dict[str, Seal], trusted: TrustPolicy, model_format: str
) -> None:
    report = verify(seals[model_format], batch_sizes=list(range(1, 65)), trust=trusted)
    assert report.verdict is Verdict.CONSISTENT
    assert sorted(replay.batch_size for replay in report.golden) == list(range(1, 65))
    assert all(replay.comparison.passed for replay in report.golden)


def test_the_signature_is_inferred_from_the_golden_example(seals: dict[str, Seal]) -> None:
    (features,) = seals["export"].signature.inputs
    (output,) = seals["export"].signature.outputs
    assert (features.name, features.dtype, features.shape) == ("input", "float32", (-1, 16))
    assert (output.name, output.dtype, output.shape) == ("output", "float32", (-1, 4))


def test_named_inputs_go_in_order_and_dict_outputs_keep_their_keys(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    example: NamedArrays = {
        "query": rng.standard_normal((6, 16)).astype(np.float32),
        "items": rng.integers(0, 10, (6, 5)),
    }
    runtime = TorchRuntime()
    signature = runtime.save(scripted(Ranker()), tmp_path / "m", example)
    assert [(s.name, s.dtype, s.shape) for s in signature.inputs] == [
        ("query", "float32", (-1, 16)),
        ("items", "int64", (-1, 5)),
    ]
    assert {s.name: (s.dtype, s.shape, s.kind) for s in signature.outputs} == {
        "scores": ("float32", (-1, 5), OutputKind.SCORES),
        "best_label": ("int64", (-1,), OutputKind.LABEL),
    }
    loaded = runtime.load(tmp_path / "m", "cpu")
    # Given out of order: the runtime passes them positionally in signature order.
    outputs = loaded.predict({"items": example["items"], "query": example["query"]})
    with torch.no_grad():
        expected = Ranker()(torch.from_numpy(example["query"]), torch.from_numpy(example["items"]))
    np.testing.assert_allclose(as_float32(outputs["scores"]), expected["scores"].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(outputs["best_label"], expected["best_label"].numpy())


def test_tuple_outputs_are_numbered(tmp_path: Path) -> None:
    program = torch.export.export(
        TwoHeads(),
        (torch.from_numpy(FEATURES),),
        dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
    )
    signature = TorchRuntime().save(program, tmp_path / "m", FEATURES)
    assert [(s.name, s.shape) for s in signature.outputs] == [
        ("output_0", (-1, 3)),
        ("output_1", (-1, 3)),
    ]
    outputs = TorchRuntime().load(tmp_path / "m", "cpu").predict({"input": FEATURES[:3]})
    np.testing.assert_allclose(as_float32(outputs["output_1"]).sum(axis=1), np.ones(3), rtol=1e-6)


def test_pack_from_saved_files(tmp_path: Path) -> None:
    unsigned_ok = TrustPolicy(allow_unsigned_pickle=True)
    script_file = tmp_path / "mlp.pt"
    save_scripted(TinyMLP(), str(script_file))
    program_file = tmp_path / "mlp.pt2"
    torch.export.save(exported(TinyMLP(), FEATURES), str(program_file))
    for source, sealed_name in ((script_file, "model.pt"), (program_file, "model.pt2")):
        seal = pack(
            source, runtime="torch", name="mlp", version="1", golden=FEATURES[:16],
            output=tmp_path / f"{source.suffix[1:]}.seal",
        )  # fmt: skip
        assert (seal.model_dir / sealed_name).read_bytes() == source.read_bytes()
        assert verify(seal, trust=unsigned_ok).verdict is Verdict.CONSISTENT


@pytest.mark.parametrize(
    ("file_name", "fact"),
    [
        ("mlp.onnx", "the torch runtime expected a TorchScript archive saved by torch.jit.save "
         "(.pt) or a program saved by torch.export.save (.pt2), not a .onnx file (.onnx files "
         "are read by --runtime onnx)"),
        ("mlp.pt2", "mlp.pt2: not a zip archive, so not a TorchScript archive"),
    ],
)  # fmt: skip
def test_a_file_that_is_no_torch_model_is_refused_naming_it(
    tmp_path: Path, file_name: str, fact: str
) -> None:
    source = tmp_path / file_name
    source.write_bytes(b"\x08\x07 not a model")
    with pytest.raises(UsageError, match=re.escape(fact)):
        pack(source, runtime="torch", name="mlp", version="1", golden=FEATURES,
             output=tmp_path / "m.seal")  # fmt: skip
    assert not (tmp_path / "m.seal").exists()


def test_weights_saved_with_torch_save_are_refused_with_the_fix(tmp_path: Path) -> None:
    source = tmp_path / "weights.pt"
    torch.save(TinyMLP().state_dict(), str(source))
    with pytest.raises(UsageError) as raised:
        pack(source, runtime="torch", name="mlp", version="1", golden=FEATURES,
             output=tmp_path / "m.seal")  # fmt: skip
    message = str(raised.value)
    assert message.startswith(f"{source}: torch {torch.__version__} cannot load the model")
    assert "not weights or a module pickled by torch.save" in message
    assert ".modelseal-pack-" not in message


def test_an_export_with_a_fixed_batch_is_refused(tmp_path: Path) -> None:
    program = torch.export.export(TinyMLP().eval(), (torch.from_numpy(FEATURES),))
    with pytest.raises(UsageError, match=r"fixed batch size of 64 .* dynamic_shapes"):
        TorchRuntime().save(program, tmp_path / "m", FEATURES)


def test_an_example_the_model_cannot_take_is_described(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"fails on the golden example \(input float32\[4, 3\]"):
        TorchRuntime().save(scripted(TinyMLP()), tmp_path / "m", FEATURES[:4, :3])


def test_a_plain_module_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"torch\.jit\.script.*torch\.export\.export"):
        TorchRuntime().save(TinyMLP(), tmp_path / "m", FEATURES)


def test_numeric_settings_are_sealed_and_restored_at_load(
    tmp_path: Path, restore_torch_settings: None
) -> None:
    sealed = NumericSettings(
        tf32_matmul=True,
        tf32_cudnn=False,
        cudnn_deterministic=True,
        cudnn_benchmark=True,
        deterministic_algorithms=True,
        deterministic_warn_only=True,
        num_threads=1,
    )
    sealed.apply()
    TorchRuntime().save(scripted(TinyMLP()), tmp_path / "m", FEATURES)
    recorded = json.loads((tmp_path / "m" / "runtime.json").read_text())["numerics"]
    assert recorded == {
        "tf32_matmul": True,
        "tf32_cudnn": False,
        "cudnn_deterministic": True,
        "cudnn_benchmark": True,
        "deterministic_algorithms": True,
        "deterministic_warn_only": True,
        "num_threads": 1,
    }
    elsewhere = NumericSettings(
        tf32_matmul=False,
        tf32_cudnn=True,
        cudnn_deterministic=False,
        cudnn_benchmark=False,
        deterministic_algorithms=False,
        deterministic_warn_only=False,
        num_threads=2,
    )
    elsewhere.apply()
    assert NumericSettings.current() == elsewhere
    TorchRuntime().load(tmp_path / "m", "cpu")
    assert NumericSettings.current() == sealed
    assert torch.get_num_threads() == 1
    assert torch.are_deterministic_algorithms_enabled()


def test_load_reports_its_timings(seals: dict[str, Seal]) -> None:
    loaded = TorchRuntime().load(seals["torchscript"].model_dir, "cpu")
    assert set(loaded.load_timings) == {"import", "read", "to_device"}
    assert all(seconds >= 0 for seconds in loaded.load_timings.values())
    assert loaded.device == "cpu"


def test_the_lock_holds_torch_and_numpy_but_not_scikit_learn(seals: dict[str, Seal]) -> None:
    pins = dict(line.split("==") for line in seals["torchscript"].lock_lines())
    assert pins["torch"] == metadata.version("torch")
    assert pins["numpy"] == metadata.version("numpy")
    for other in ("scikit-learn", "onnxruntime", "mlflow", "pytest", "ruff"):
        assert other not in pins


def test_the_environment_records_torch_cuda_and_cudnn(seals: dict[str, Seal]) -> None:
    recorded = json.loads((seals["torchscript"].root / "environment.json").read_text())["torch"]
    assert recorded["version"] == metadata.version("torch")
    assert {"cuda", "cudnn"} <= set(recorded)
    assert recorded["cuda"] == torch.version.cuda
    assert recorded["cudnn"] == cudnn_as_torch_reports_it()
    assert recorded["cuda_available"] == torch.cuda.is_available()
    assert recorded["num_threads"] == torch.get_num_threads()


def cudnn_as_torch_reports_it() -> str | None:
    """torch's cuDNN version; a CPU build has none (then an installed nvidia-cudnn wheel's)."""
    cudnn: Any = torch.backends.cudnn  # untyped
    if cudnn.is_available():
        return str(cudnn.version())
    for dist in metadata.distributions():
        if dist.metadata["Name"].lower().replace("_", "-").startswith("nvidia-cudnn"):
            return dist.version
    return None


# --- devices -------------------------------------------------------------------------------


def test_cuda_on_a_cpu_only_torch_build_blames_the_build_not_the_container(
    seals: dict[str, Seal],
) -> None:
    if torch.version.cuda is not None:
        pytest.skip(f"this torch is a CUDA {torch.version.cuda} build, not a CPU-only one")
    with pytest.raises(DeviceError) as raised:
        TorchRuntime().load(seals["torchscript"].model_dir, "cuda")
    message = str(raised.value)
    assert f"the installed torch {torch.__version__} is a CPU-only build" in message
    assert "install a CUDA build of the same torch version" in message
    assert "Container Toolkit" not in message and "--gpus" not in message


def test_cuda_without_a_usable_gpu_says_what_to_check(seals: dict[str, Seal]) -> None:
    if torch.version.cuda is None:
        pytest.skip("a CPU-only torch build: it fails on the build before any GPU check")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible here; this checks the message where there is none")
    with pytest.raises(DeviceError) as raised:
        TorchRuntime().load(seals["torchscript"].model_dir, "cuda")
    message = str(raised.value)
    for fact in ("NVIDIA Container Toolkit", "--gpus", "CUDA_VISIBLE_DEVICES", "driver"):
        assert fact in message
    assert f"built for CUDA {torch.version.cuda}" in message


def test_half_precision_on_the_cpu_is_refused(seals: dict[str, Seal]) -> None:
    with pytest.raises(DeviceError, match="half precision is for CUDA devices only"):
        TorchRuntime(half=True).load(seals["torchscript"].model_dir, "cpu")


def test_an_unknown_device_is_refused(seals: dict[str, Seal]) -> None:
    with pytest.raises(DeviceError, match="'cpu', 'cuda' or 'cuda:N'"):
        TorchRuntime().load(seals["torchscript"].model_dir, "mps")


@pytest.mark.gpu
@pytest.mark.parametrize("model_format", ["torchscript", "export"])
def test_a_cpu_seal_replays_on_cuda(
    seals: dict[str, Seal], trusted: TrustPolicy, model_format: str
) -> None:
    if not torch.cuda.is_available():
        pytest.skip(NO_CUDA)
    report = verify(seals[model_format], device="cuda", batch_sizes=[1, 7, 64], trust=trusted)
    assert report.device == "cuda:0"
    assert report.verdict is Verdict.CONSISTENT, report.golden


@pytest.mark.gpu
def test_half_precision_on_cuda_is_close_and_returns_sealed_dtypes(seals: dict[str, Seal]) -> None:
    if not torch.cuda.is_available():
        pytest.skip(NO_CUDA)
    seal = seals["torchscript"]
    golden = load_golden(seal.golden_path)
    loaded = TorchRuntime(half=True).load(seal.model_dir, "cuda:0")
    outputs = loaded.predict(golden.inputs)
    assert outputs["output"].dtype == np.float32
    np.testing.assert_allclose(
        as_float32(outputs["output"]), as_float32(golden.outputs["output"]), rtol=2e-2, atol=2e-2
    )
    assert set(loaded.load_timings) == {"import", "read", "to_device"}


@pytest.mark.gpu
def test_a_cuda_index_beyond_the_visible_devices_is_refused(seals: dict[str, Seal]) -> None:
    if not torch.cuda.is_available():
        pytest.skip(NO_CUDA)
    index = torch.cuda.device_count()
    with pytest.raises(DeviceError, match="CUDA_VISIBLE_DEVICES"):
        TorchRuntime().load(seals["torchscript"].model_dir, f"cuda:{index}")


def test_open_seal_reads_a_torch_seal_back(seals: dict[str, Seal]) -> None:
    reopened = open_seal(seals["export"].root)
    assert reopened.runtime == "torch"
    assert reopened.digest == seals["export"].digest
