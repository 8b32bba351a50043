"""Serving benchmarks of `modelseal serve` against its peers, its floor and its ceiling, all
measured in the same run on FIELD-NOTES' two float32 MLPs as ONNX ("small" 128->256->256->1,
"heavy" 128->2048x3->1), one intra-op thread everywhere. Every server runs as its own
process pinned to CPU 0; wrk (Debian's package, installed when missing) runs on CPU 1.
Not part of the test suite.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_serving.py [SECTION ...]`` with
sections throughput, workers, startup, memory, profile (written to
benchmarks/results/serving-DATE.md with a PNG plot and py-spy flame graphs), and storm,
big-body (printed; see benchmarks/serving-overload.md). All but storm and big-body when none
is named. ``BENCH_SECONDS`` sets each load run's length (default 8).
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import modelseal
from benchmarks.serving import report, sections, servers
from benchmarks.serving.load import ensure_wrk
from benchmarks.serving.models import BenchModel, build_models
from benchmarks.serving.overload import cpu_model, run_overload

RESULTS = Path(__file__).parent / "results"
DEFAULT = ["throughput", "workers", "startup", "memory", "profile"]
SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))


def main(chosen: list[str]) -> None:
    ensure_wrk()
    chosen = chosen or DEFAULT
    day = datetime.date.today().isoformat()
    lines = [f"# Serving benchmark, {day}", "", *machine(), ""]
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        models = build_models(work / "models")
        if "throughput" in chosen:
            lines += throughput(models, work, RESULTS / f"serving-{day}.png")
        if "workers" in chosen:
            lines += workers(models["small"], work)
        if "startup" in chosen:
            lines += startup(models["heavy"].seal, work)
        if "memory" in chosen:
            lines += memory(work)
        if "profile" in chosen:
            lines += profile(models["small"], work)
        if {"storm", "big-body"} & set(chosen):
            script = work / "post.lua"
            script.write_text(servers.predict_request(models["small"]).lua())
            run_overload(models["small"].seal, script, chosen)
    if set(chosen) & set(DEFAULT):
        output = RESULTS / f"serving-{day}.md"
        output.write_text("\n".join(lines) + "\n")
        print(f"wrote {output}")


def machine() -> list[str]:
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in (
            "numpy",
            "onnxruntime",
            "uvicorn",
            "uvloop",
            "httptools",
            "starlette",
            "orjson",
            "scikit-learn",
            "skops",
        )
    )
    return [
        f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the start; Linux "
        f"{platform.release()}; Python {platform.python_version()}; modelseal "
        f"{modelseal.__version__}; {versions}. Each load run lasts {SECONDS} s; servers pinned "
        "to CPU 0, wrk (keep-alive, one thread) to CPU 1. This machine is shared and its "
        "speed changes from minute to minute: compare only figures of one run.",
    ]


def throughput(models: dict[str, BenchModel], work: Path, png: Path) -> list[str]:
    noop, _ = sections.measure_server(servers.noop(models["small"], 8790), work, SECONDS)
    has_mlserver = servers.ensure_mlserver()
    results = []
    lines = ["## Throughput and latency", ""]
    for index, model in enumerate(models.values()):
        result = sections.ceiling(model)
        port = 8800 + 20 * index
        kinds = [
            servers.modelseal(model, port + offset, protocol)
            for offset, protocol in enumerate(("/predict", "OIP v2 JSON", "OIP v2 binary"))
        ]
        kinds.append(servers.naive(model, port + 5))
        if has_mlserver:
            kinds.append(servers.mlserver(model, port + 10, work))
        for kind in kinds:
            print(f"{model.name}: {kind.name}", flush=True)
            result.loads[kind.name], result.rss_mib[kind.name] = sections.measure_server(
                kind, work, SECONDS
            )
        results.append(result)
        lines += report.throughput_table(result, noop)
        lines += report.targets(result, noop)
    report.plot(results, noop, png)
    return [*lines, f"![req/s and p99 against concurrency]({png.name})", ""]


def workers(model: BenchModel, work: Path) -> list[str]:
    lines = ["## Several workers (small model, /predict, c=64)", "",
             "| workers | CPUs | req/s | p99 ms | requests per server-CPU-second |",
             "|---|---|---|---|---|"]  # fmt: skip
    for count, (load, per_cpu_s) in sections.workers(model, 8900, work, SECONDS).items():
        cpus = "0" if count == 1 else "0,1 (wrk on 1 too)"
        lines.append(f"| {count} | {cpus} | {load.rps:,.0f} | {load.p99_ms:.2f} | "
                     f"{per_cpu_s:,.0f} |")  # fmt: skip
    return [*lines, ""]


def startup(heavy_seal: Path, work: Path) -> list[str]:
    demo = build_demo(work)
    lines = ["## Start-up: exec to ready, by step (seconds)", ""]
    runs: dict[str, dict[str, float]] = {}
    for name, seal in (("demo (scikit-learn)", demo), ("heavy (ONNX)", heavy_seal)):
        runs[f"{name}, warm"] = sections.startup(seal, 8950, work, cold=False)
        try:
            runs[f"{name}, cold"] = sections.startup(seal, 8951, work, cold=True)
        except OSError as exc:
            lines.append(f"Cold page cache not measured for {name}: {exc}.")
    steps = list(dict.fromkeys(step for run in runs.values() for step in run))
    lines += ["| run | " + " | ".join(steps) + " | verification (env + replay + warm-up) |",
              "|---" * (len(steps) + 2) + "|"]  # fmt: skip
    for name, run in runs.items():
        verification = sum(run.get(k, 0.0) for k in ("environment", "golden_replay", "warm_up"))
        cells = " | ".join(f"{run[step]:.3f}" if step in run else "-" for step in steps)
        lines.append(f"| {name} | {cells} | {verification:.3f} |")
    return [*lines, ""]


def memory(work: Path) -> list[str]:
    demo = build_demo(work)
    serve = [sys.executable, "-m", "modelseal", "serve", str(demo), "--port", "8960",
             "--log-format", "json"]  # fmt: skip
    naive = [sys.executable, str(Path(__file__).parent / "naive_sklearn_server.py"),
             str(demo / "model" / "model.skops"), "8961"]  # fmt: skip
    request = servers.demo_request()
    ours = sections.memory(servers.ServerKind("modelseal", serve, 8960, "/v2/health/ready",
                                              request), work)  # fmt: skip
    theirs = sections.memory(servers.ServerKind("naive", naive, 8961, "/health", request), work)
    return [
        "## Resident memory, demo scikit-learn seal (this environment has torch installed)", "",
        "| server | RSS MiB | ratio to naive |", "|---|---|---|",
        f"| modelseal serve | {ours:.0f} | {ours / theirs:.2f} |",
        f"| naive (Starlette + skops.io.load) | {theirs:.0f} | 1.00 |", "",
    ]  # fmt: skip


def profile(model: BenchModel, work: Path) -> list[str]:
    lines = ["## Profile of the request path (py-spy, small model, /predict)", ""]
    for connections, top in sections.profile(model, 8970, work, RESULTS, SECONDS).items():
        lines += [f"### c={connections}: own time by function "
                  f"([flame graph](serving-profile-c{connections}.svg))", "",
                  "| samples | function |", "|---|---|"]  # fmt: skip
        lines += [f"| {share:.1f}% | `{frame}` |" for share, frame in top]
        lines.append("")
    return lines


def build_demo(work: Path) -> Path:
    seal = work / "demo" / "digits-1.0.0.seal"
    if not seal.exists():
        from modelseal.demo import train_demo_model

        model = train_demo_model()
        modelseal.pack(model.estimator, runtime="sklearn", name="digits", version="1.0.0",
                       golden=model.golden_inputs, output=seal)  # fmt: skip
    return seal


if __name__ == "__main__":
    main(sys.argv[1:])
