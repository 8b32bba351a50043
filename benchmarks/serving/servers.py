"""The servers the benchmark compares, each a command line, its readiness path and the
request it answers, for one model.

MLServer runs from its own virtual environment under ``.cache/`` (pinned, with
``uvloop<0.22``: its inference workers die with newer uvloop, MLServer #2286), with an ONNX
runtime written here (MLServer 1.7 ships none) and adaptive batching on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.serving.load import Request
from benchmarks.serving.models import INPUT, BenchModel

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
MLSERVER_VENV = ROOT / ".cache" / "bench-mlserver"
MLSERVER_PINS = ("mlserver==1.7.1", "uvloop<0.22", "onnxruntime==1.32.0", "numpy==2.4.6")
MLSERVER_RUNTIME = """
import numpy as np
import onnxruntime
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxModel(MLModel):
    async def load(self):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            self.settings.parameters.uri, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        features = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        (scores,) = self._session.run(None, {self._input: features})
        return InferenceResponse(
            model_name=self.name, outputs=[NumpyCodec.encode_output("scores", scores)])
"""


@dataclass(frozen=True)
class ServerKind:
    name: str
    command: list[str]
    port: int
    ready_path: str
    request: Request


def row(model: BenchModel) -> list[float]:
    values = np.random.default_rng(7).standard_normal(model.sizes[0]).astype(np.float32)
    return [float(value) for value in values]


def predict_request(model: BenchModel) -> Request:
    return Request("/predict", json.dumps({"features": row(model)}).encode())


def oip_json_request(model: BenchModel) -> Request:
    tensor = {"name": INPUT, "datatype": "FP32", "shape": [1, model.sizes[0]], "data": row(model)}
    return Request(f"/v2/models/{model.name}/infer", json.dumps({"inputs": [tensor]}).encode())


def oip_binary_request(model: BenchModel) -> Request:
    raw = np.asarray([row(model)], dtype="<f4").tobytes()
    header = json.dumps({
        "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [1, model.sizes[0]],
                    "parameters": {"binary_data_size": len(raw)}}],
        "outputs": [{"name": "scores", "parameters": {"binary_data": True}}],
    }).encode()  # fmt: skip
    headers = (
        ("Content-Type", "application/octet-stream"),
        ("Inference-Header-Content-Length", str(len(header))),
    )
    return Request(f"/v2/models/{model.name}/infer", header + raw, headers)


def modelseal(model: BenchModel, port: int, protocol: str, workers: int = 1) -> ServerKind:
    command = [sys.executable, "-m", "modelseal", "serve", str(model.seal), "--port", str(port),
               "--log-format", "json", "--workers", str(workers)]  # fmt: skip
    requests = {"/predict": predict_request, "OIP v2 JSON": oip_json_request,
                "OIP v2 binary": oip_binary_request}  # fmt: skip
    name = f"modelseal {protocol}" + (f", {workers} workers" if workers > 1 else "")
    return ServerKind(name, command, port, "/v2/health/ready", requests[protocol](model))


def naive(model: BenchModel, port: int) -> ServerKind:
    command = [sys.executable, str(ROOT / "benchmarks" / "naive_server.py"),
               str(model.onnx_file), str(port)]  # fmt: skip
    return ServerKind("naive (per-request ONNX)", command, port, "/health", predict_request(model))


def noop(model: BenchModel, port: int) -> ServerKind:
    command = [sys.executable, str(HERE / "noop_server.py"), str(port)]
    return ServerKind("no-op Starlette", command, port, "/v2/health/ready", predict_request(model))


def mlserver(model: BenchModel, port: int, work: Path) -> ServerKind:
    folder = work / f"mlserver-{model.name}"
    (folder / model.name).mkdir(parents=True, exist_ok=True)
    (folder / "onnx_runtime.py").write_text(MLSERVER_RUNTIME)
    settings = {"http_port": port, "grpc_port": port + 1, "metrics_port": port + 2,
                "debug": False}  # fmt: skip
    (folder / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": model.name, "implementation": "onnx_runtime.OnnxModel",
        "max_batch_size": 64, "max_batch_time": 0.002,
        "parameters": {"uri": str(model.onnx_file)},
    }  # fmt: skip
    (folder / model.name / "model-settings.json").write_text(json.dumps(model_settings))
    command = [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(folder)]
    return ServerKind("MLServer 1.7.1 (adaptive batching)", command, port, "/v2/health/ready",
                      oip_json_request(model))  # fmt: skip


def ensure_mlserver() -> bool:
    """MLServer's own venv, created on first use; False (and why) when it cannot be."""
    if (MLSERVER_VENV / "bin" / "mlserver").exists():
        return True
    print(f"creating MLServer's venv in {MLSERVER_VENV} ({', '.join(MLSERVER_PINS)})")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
        subprocess.run([str(MLSERVER_VENV / "bin" / "pip"), "install", "-q",
                        "--disable-pip-version-check", *MLSERVER_PINS], check=True)  # fmt: skip
    except subprocess.CalledProcessError as exc:
        print(f"MLServer left out: its venv could not be built ({exc})")
        return False
    return True


def demo_request() -> Request:
    """One row of the demo digits model (64 pixels)."""
    return Request("/predict", json.dumps({"features": [0.0] * 64}).encode())
