"""The in-process ceiling: onnxruntime alone (one intra-op thread), rows per second at batch
sizes 1 to 128 and the p99 of a batch of one. Run pinned, as its own process:
``python -m benchmarks.serving.ceiling MODEL.onnx`` prints JSON."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import onnxruntime

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
SECONDS_PER_SIZE = 1.5


def measure(model: str) -> dict[str, object]:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    width = session.get_inputs()[0].shape[1]
    rows_per_s: dict[int, float] = {}
    batch1: list[float] = []
    for size in BATCH_SIZES:
        features = np.random.default_rng(size).standard_normal((size, width)).astype(np.float32)
        for _ in range(3):
            session.run(None, {name: features})
        durations = []
        ends = time.perf_counter() + SECONDS_PER_SIZE
        while time.perf_counter() < ends:
            started = time.perf_counter()
            session.run(None, {name: features})
            durations.append(time.perf_counter() - started)
        # The median batch: a busy machine's preemptions say nothing about the runtime.
        rows_per_s[size] = size / float(np.median(durations))
        if size == 1:
            batch1 = durations
    return {
        "rows_per_s": rows_per_s,
        "batch1_p50_ms": 1000 * float(np.percentile(batch1, 50)),
        "batch1_p99_ms": 1000 * float(np.percentile(batch1, 99)),
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
