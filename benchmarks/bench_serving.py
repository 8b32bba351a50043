"""Serving benchmarks of `modelseal serve` against its peers, its floor and its ceiling, all
measured in the same run on FIELD-NOTES' two float32 MLPs as ONNX ("small" 128->256->256->1,
"heavy" 128->2048x3->1), one intra-op thread everywhere. Every server runs as its own
process pinned to CPU 0; wrk (Debian's package, installed when missing) runs on CPU 1.
Not part of the test suite.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_serving.py [--seconds N] [SECTION ...]``
with sections throughput, workers, startup, memory, profile (written to
benchmarks/results/serving-DATE.md with a PNG plot and py-spy flame graphs), and storm,
big-body (printed; see benchmarks/serving-overload.md). All but storm and big-body when none
is named. ``--seconds`` (or ``BENCH_SECONDS``) sets each load run's length (default 8);
``--seconds 1`` is a smoke test of a couple of minutes.
"""

from __future__ import annotations

import argparse
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
OVERLOAD = ["storm", "big-body"]
SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
ROUNDS = 2
PAIRED_ROUNDS = 5


def main(chosen: list[str]) -> None:
    ensure_wrk()
    chosen = chosen or DEFAULT
    day = datetime.date.today().isoformat()
    lines = [f"# Serving benchmark, {day}", "", *machine(), ""]
    loads = [("start", os.getloadavg())]
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        models = build_models(work / "models")
        if "throughput" in chosen:
            lines += throughput(models, work, RESULTS / f"serving-{day}.png")
            loads.append(("after throughput", os.getloadavg()))
        if "workers" in chosen:
            lines += workers(models["small"], work)
            loads.append(("after workers", os.getloadavg()))
        if "startup" in chosen:
            lines += startup(models["heavy"].seal, work)
            loads.append(("after startup", os.getloadavg()))
        if "memory" in chosen:
            lines += memory(work)
            loads.append(("after memory", os.getloadavg()))
        if "profile" in chosen:
            lines += profile(models["small"], work)
            loads.append(("after profile", os.getloadavg()))
        lines += load_averages(loads)
        if {"storm", "big-body"} & set(chosen):
            script = work / "post.lua"
            script.write_text(servers.predict_request(models["small"]).lua())
            run_overload(models["small"].seal, script, chosen)
    if set(chosen) & set(DEFAULT):
        output = RESULTS / f"serving-{day}.md"
        output.write_text("\n".join(lines) + "\n")
        print(f"wrote {output}")


def load_averages(loads: list[tuple[str, tuple[float, float, float]]]) -> list[str]:
    """The machine's load average as the run went: it is shared, so a figure measured while
    others ran is slower than this code is."""
    lines = ["## Load average during the run (1, 5, 15 min; 2 CPUs)", "",
             "| moment | load average |", "|---|---|"]  # fmt: skip
    lines += [f"| {moment} | {', '.join(f'{x:.2f}' for x in load)} |" for moment, load in loads]
    return [*lines, ""]


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
        f"{modelseal.__version__}; {versions}. Each load run lasts {SECONDS} s ({ROUNDS} rounds in "
        f"the throughput section); servers pinned "
        "to CPU 0, wrk (keep-alive, one thread) to CPU 1. This machine is shared and its "
        "speed changes from minute to minute: compare only figures of one run.",
    ]


def throughput(models: dict[str, BenchModel], work: Path, png: Path) -> list[str]:
    has_mlserver = servers.ensure_mlserver()
    noop_kind = servers.noop(models["small"], 8790)
    noop = sections.Throughput(report.NOOP, {}, 0.0)
    results = [sections.ceiling(model) for model in models.values()]
    # Rounds go over every server in turn, and each figure keeps its fastest round: a
    # neighbour on this shared machine only ever slows a run down.
    for round_number in range(1, ROUNDS + 1):
        print(f"round {round_number} of {ROUNDS}: {report.NOOP}", flush=True)
        sections.measure_into(noop, noop_kind, work, SECONDS)
        for index, (model, result) in enumerate(zip(models.values(), results, strict=True)):
            for kind in server_kinds(model, 8800 + 20 * index, work, has_mlserver):
                print(f"round {round_number} of {ROUNDS}: {model.name}: {kind.name}", flush=True)
                sections.measure_into(result, kind, work, SECONDS)
    lines = ["## Throughput and latency", "",
             f"Each server is measured in {ROUNDS} rounds, one server after another; every "
             "figure is from the server's round with the most requests/s at that concurrency "
             "(the machine is shared: a neighbour only slows a run down). The load-average "
             "column gives the 1-minute load before and after each round.", ""]  # fmt: skip
    for result in results:
        result.load_avg[report.NOOP] = noop.load_avg[report.NOOP]
        lines += report.throughput_table(result, noop.loads[report.NOOP])
        lines += report.targets(result, noop.loads[report.NOOP])
    noop_loads = noop.loads[report.NOOP]
    report.plot(results, noop_loads, png)
    lines += [f"![req/s and p99 against concurrency]({png.name})", ""]
    lines += ["## Paired c=64 rounds", "",
              "The tables above take each server's best round, and rounds of one server sit "
              "minutes apart from those of the others: on this shared machine the same server "
              "can differ by a fifth between them, which is larger than the margins the c=64 "
              "targets ask about. These rounds put the figures that a ratio compares seconds "
              "apart, and judge the c=64 targets on the median of the rounds' ratios.",
              ""]  # fmt: skip
    for index, (model, result) in enumerate(zip(models.values(), results, strict=True)):
        print(f"paired rounds: {model.name}", flush=True)
        seconds = max(1, SECONDS // 2)
        rounds = sections.paired(model, 8850 + 10 * index, work, seconds, PAIRED_ROUNDS)
        lines += report.paired_table(result, rounds)
    return lines


def server_kinds(
    model: BenchModel, port: int, work: Path, has_mlserver: bool
) -> list[servers.ServerKind]:
    kinds = [
        servers.modelseal(model, port + offset, protocol)
        for offset, protocol in enumerate(("/predict", "OIP v2 JSON", "OIP v2 binary"))
    ]
    kinds.append(servers.naive(model, port + 5))
    if has_mlserver:
        kinds.append(servers.mlserver(model, port + 10, work))
    return kinds


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
    ours, ours_torch = sections.memory(
        servers.ServerKind("modelseal", serve, 8960, "/v2/health/ready", request), work
    )
    theirs, theirs_torch = sections.memory(
        servers.ServerKind("naive", naive, 8961, "/health", request), work
    )
    return [
        "## Resident memory, demo scikit-learn seal (this environment has torch installed)", "",
        "| server | RSS MiB | ratio to naive | torch imported |", "|---|---|---|---|",
        f"| modelseal serve | {ours:.0f} | {ours / theirs:.2f} | {_yes(ours_torch)} |",
        f"| naive (Starlette + skops.io.load) | {theirs:.0f} | 1.00 | {_yes(theirs_torch)} |",
        "",
        "The naive server imports torch through `skops.io`'s scikit-learn array-API shim; "
        "the ONNX models' RSS against their naive server is in the throughput tables.", "",
    ]  # fmt: skip


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def profile(model: BenchModel, work: Path) -> list[str]:
    lines = ["## Profile of the request path (py-spy, small model, /predict)", ""]
    lines += [
        "py-spy samples the threads that are not idle (250 Hz, `--nonblocking`); time in C "
        "code (uvloop's loop and socket I/O, httptools, a queue wake-up, the GIL hand-over "
        "between the two threads, which share CPU 0) counts against the innermost Python "
        "frame: `Runner.run (asyncio/runners.py)` is uvloop's own loop, "
        "`PredictThread._serve` the predict thread taking its next job. modelseal serves "
        "with its defaults: a batch its model's recent batches say takes under "
        "`--inline-below-ms` (2) runs on the event loop (`_timed` under "
        "`AdaptiveBatcher._run`), a longer one in the predict thread; `_JoinedWrites.flush` "
        "is the one socket write of each response.", "",
    ]  # fmt: skip
    for connections, found in sections.profile(model, 8970, work, RESULTS, SECONDS).items():
        threads = ", ".join(f"{name} {share:.0f}%" for name, share in found.threads.items())
        packages = ", ".join(f"{name} {share:.0f}%" for share, name in found.packages
                             if share >= 1)  # fmt: skip
        lines += [f"### c={connections}: own time by function "
                  f"([flame graph](serving-profile-c{connections}.svg))", "",
                  f"By thread: {threads}. By package of the innermost Python frame: "
                  f"{packages}.", "",
                  "| samples | function |", "|---|---|"]  # fmt: skip
        lines += [f"| {share:.1f}% | `{frame}` |" for share, frame in found.top]
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


def arguments() -> list[str]:
    global SECONDS, ROUNDS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "sections", nargs="*", metavar="SECTION",
        help=f"any of {', '.join([*DEFAULT, *OVERLOAD])} (default: {', '.join(DEFAULT)})",
    )  # fmt: skip
    parser.add_argument(
        "--seconds", type=int, default=SECONDS,
        help=f"each load run's length (default {SECONDS}; 1 for a smoke test)",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS,
        help=f"rounds over the servers in the throughput section, each figure the fastest "
        f"round's (default {ROUNDS})",
    )  # fmt: skip
    parsed = parser.parse_args()
    unknown = set(parsed.sections) - {*DEFAULT, *OVERLOAD}
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}: see --help")
    SECONDS, ROUNDS = parsed.seconds, parsed.rounds
    return list(parsed.sections)


if __name__ == "__main__":
    main(arguments())
