"""Requests per second and p99 latency of `modelseal serve` against the naive pattern,
measured in the same run on the same model (FIELD-NOTES' "small" MLP, 128->256->256->1).

Run: ``.venv/bin/python benchmarks/bench_serving.py`` (needs ``wrk``; Debian package).
Each server is pinned to CPU 0 and wrk to CPU 1, with 64 keep-alive connections, and then
with 1 connection (latency of a lone client). Not part of the test suite.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from tests.conftest import mlp_weights, onnx_mlp

from modelseal import pack
from modelseal.runtimes.onnx import OnnxRuntime, SessionSettings

HERE = Path(__file__).parent
SIZES = (128, 256, 256, 1)
DURATION = "10s"
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{body}'
"""


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.post(url, json={"features": [0.0] * SIZES[0]}, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


def run_wrk(url: str, script: Path, connections: int) -> tuple[float, float]:
    result = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{DURATION}", "--latency",
         "-s", str(script), url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", result.stdout).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", result.stdout)
    assert p99 is not None, result.stdout
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return rate, float(p99.group(1)) * scale


def measure(command: list[str], url: str, script: Path) -> dict[str, tuple[float, float]]:
    server = subprocess.Popen(["taskset", "-c", "0", *command], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_ready(url)
        return {"64 connections": run_wrk(url, script, 64), "1 connection": run_wrk(url, script, 1)}
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        model = onnx_mlp(mlp_weights(0, SIZES))
        (work / "mlp.onnx").write_bytes(model)
        golden = np.random.default_rng(1).standard_normal((64, SIZES[0])).astype(np.float32)
        pack(
            model, runtime=OnnxRuntime(SessionSettings(intra_op_num_threads=1)), name="mlp",
            version="1", golden=golden, output=work / "mlp.seal",
        )  # fmt: skip
        script = work / "post.lua"
        script.write_text(LUA.format(body=f'{{"features": {[0.5] * SIZES[0]}}}'))
        python = sys.executable
        results = {
            "naive (stdlib JSON, per-request inference)": measure(
                [python, str(HERE / "naive_server.py"), str(work / "mlp.onnx"), "8791"],
                "http://127.0.0.1:8791/predict", script,
            ),
            "modelseal serve": measure(
                [python, "-m", "modelseal", "serve", str(work / "mlp.seal"), "--port", "8792",
                 "--log-format", "text"],
                "http://127.0.0.1:8792/predict", script,
            ),
        }  # fmt: skip
    baseline = results["naive (stdlib JSON, per-request inference)"]
    for name, by_load in results.items():
        for load, (rate, p99) in by_load.items():
            ratio = rate / baseline[load][0]
            print(f"{name:45} {load:15} {rate:9.0f} req/s  p99 {p99:8.2f} ms  x{ratio:.2f}")


if __name__ == "__main__":
    main()
