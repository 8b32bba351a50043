"""The serving benchmark's results as Markdown tables and a matplotlib plot."""

from __future__ import annotations

import statistics
from pathlib import Path

from benchmarks.serving.load import Load
from benchmarks.serving.sections import CONCURRENCY, PAIRED, Throughput

NAIVE = "naive (per-request ONNX)"
NOOP = "no-op Starlette"


def throughput_table(result: Throughput, noop: dict[int, Load]) -> list[str]:
    naive = result.loads.get(NAIVE)
    ceiling = result.ceiling_rps(noop[64].rps)
    lines = [
        f"### {result.model}: requests/s (p50 / p99 ms, errors), ratio to naive, to the ceiling",
        "",
        f"Ceiling at c=64: 1 / (1/{noop[64].rps:,.0f} + 1/{result.best_rows_per_s:,.0f}) = "
        f"**{ceiling:,.0f} req/s** (no-op rate; in-process rows/s at the best batch size).",
        "",
        "| server | " + " | ".join(f"c={c}" for c in CONCURRENCY) + " | c=64 / naive | "
        "c=64 / ceiling | µs CPU/req at c=64 | RSS MiB | load avg, each round |",
        "|---" * (len(CONCURRENCY) + 6) + "|",
    ]
    for name, loads in [*result.loads.items(), (NOOP, noop)]:
        cells = [
            f"{load.rps:,.0f} ({load.p50_ms:.2f} / {load.p99_ms:.2f}"
            + (f", {load.errors} err)" if load.errors else ")")
            for load in (loads[c] for c in CONCURRENCY)
        ]
        to_naive = f"{loads[64].rps / naive[64].rps:.2f}" if naive else "-"
        to_ceiling = f"{loads[64].rps / ceiling:.2f}"
        rss = result.rss_mib.get(name)
        load_avg = result.load_avg.get(name)
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {to_naive} | {to_ceiling} | "
            f"{loads[64].cpu_us_per_request:.0f} | {f'{rss:.0f}' if rss else '-'} | "
            + (", ".join(f"{a:.1f} → {b:.1f}" for a, b in load_avg) if load_avg else "-")
            + " |"
        )
    sizes = ", ".join(f"{size}: {rate:,.0f}" for size, rate in result.ceiling_rows_per_s.items())
    lines += ["", f"In-process onnxruntime rows/s by batch size: {sizes}; batch-1 p99 "
              f"{result.batch1_p99_ms:.3f} ms.", ""]  # fmt: skip
    return lines


def plot(results: list[Throughput], noop: dict[int, Load], output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, len(results), figsize=(6 * len(results), 8), squeeze=False)
    for column, result in enumerate(results):
        for name, loads in [*result.loads.items(), (NOOP, noop)]:
            rates = [loads[c].rps for c in CONCURRENCY]
            p99s = [loads[c].p99_ms for c in CONCURRENCY]
            axes[0][column].plot(CONCURRENCY, rates, marker="o", label=name)
            axes[1][column].plot(CONCURRENCY, p99s, marker="o", label=name)
        axes[0][column].set_title(f"{result.model}: requests/s")
        axes[1][column].set_title(f"{result.model}: p99 latency (ms)")
        for row in (0, 1):
            axes[row][column].set_xscale("log", base=2)
            axes[row][column].set_xticks(CONCURRENCY, [str(c) for c in CONCURRENCY])
            axes[row][column].set_xlabel("concurrent connections")
        axes[1][column].set_yscale("log")
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(output, dpi=110)
    plt.close(figure)


def targets(result: Throughput, noop: dict[int, Load]) -> list[str]:
    """The issue's targets for this model, each with the figures it is judged on."""
    ours = result.loads["modelseal /predict"]
    oip = result.loads["modelseal OIP v2 JSON"]
    binary = result.loads["modelseal OIP v2 binary"]
    naive = result.loads[NAIVE]
    ceiling = result.ceiling_rps(noop[64].rps)
    wanted = {"small": 0.6, "heavy": 0.85}.get(result.model, 0.6)
    c1_limit = noop[1].p99_ms + result.batch1_p99_ms + 0.2
    checks = [
        (f"c=64 at least {wanted} of the ceiling", ours[64].rps / ceiling >= wanted,
         f"{ours[64].rps / ceiling:.2f}"),
        ("c=64 OIP v2 JSON within 10% of /predict", oip[64].rps >= 0.9 * ours[64].rps,
         f"{oip[64].rps / ours[64].rps:.2f}"),
        ("c=64 p99 at most 3x p50 (/predict)", ours[64].p99_ms <= 3 * ours[64].p50_ms,
         f"{ours[64].p99_ms / ours[64].p50_ms:.1f}x"),
        ("c=1 p99 at most no-op p99 + in-process batch-1 p99 + 0.2 ms",
         ours[1].p99_ms <= c1_limit, f"{ours[1].p99_ms:.2f} ms vs {c1_limit:.2f} ms"),
        ("RSS at most 1.3x naive", result.rss_mib["modelseal /predict"]
         <= 1.3 * result.rss_mib[NAIVE],
         f"{result.rss_mib['modelseal /predict'] / result.rss_mib[NAIVE]:.2f}"),
    ]  # fmt: skip
    if result.model == "heavy":
        ratio = binary[64].rps / ours[64].rps
        checks.append(
            ("c=64 OIP v2 binary at least as fast as /predict", ratio >= 1, f"{ratio:.2f}")
        )
    lines = [f"Targets, {result.model} (modelseal vs naive at c=64: "
             f"x{ours[64].rps / naive[64].rps:.1f}):", "",
             "| target | met | figure |", "|---|---|---|"]  # fmt: skip
    lines += [
        f"| {name} | {'yes' if met else '**no**'} | {figure} |" for name, met, figure in checks
    ]
    return [*lines, ""]


def paired_table(result: Throughput, rounds: list[dict[str, Load]]) -> list[str]:
    """Each paired round's c=64 figures and ratios, their medians, and the c=64 targets
    judged on those medians."""
    columns = ("/predict / ceiling", "OIP JSON / /predict", "binary / /predict", "p99 / p50")
    per_round = [
        {
            columns[0]: loads["/predict"].rps / result.ceiling_rps(loads["no-op"].rps),
            columns[1]: loads["OIP v2 JSON"].rps / loads["/predict"].rps,
            columns[2]: loads["OIP v2 binary"].rps / loads["/predict"].rps,
            columns[3]: loads["/predict"].p99_ms / loads["/predict"].p50_ms,
        }
        for loads in rounds
    ]
    lines = [
        f"### {result.model}: paired c=64 rounds",
        "",
        f"{len(rounds)} rounds; in each, the no-op server and modelseal (/predict, OIP v2 JSON, "
        "OIP v2 binary) are driven one after another, seconds apart, both servers up the whole "
        "time. Ceiling per round from that round's no-op rate and the in-process "
        f"{result.best_rows_per_s:,.0f} rows/s.",
        "",
        "| round | "
        + " | ".join(f"{name} req/s" for name in PAIRED)
        + " | "
        + " | ".join(columns)
        + " |",
        "|---" * (1 + len(PAIRED) + len(columns)) + "|",
    ]
    for index, (loads, ratios) in enumerate(zip(rounds, per_round, strict=True), start=1):
        lines.append(
            f"| {index} | "
            + " | ".join(f"{loads[name].rps:,.0f}" for name in PAIRED)
            + " | "
            + " | ".join(f"{ratios[column]:.2f}" for column in columns)
            + " |"
        )
    median = {column: statistics.median(r[column] for r in per_round) for column in columns}
    lines.append(
        "| **median** | "
        + " | ".join(
            f"{statistics.median(loads[name].rps for loads in rounds):,.0f}" for name in PAIRED
        )
        + " | "
        + " | ".join(f"**{median[column]:.2f}**" for column in columns)
        + " |"
    )
    wanted = {"small": 0.6, "heavy": 0.85}.get(result.model, 0.6)
    checks = [
        (f"c=64 at least {wanted} of the ceiling", median[columns[0]] >= wanted,
         f"{median[columns[0]]:.2f}"),
        ("c=64 OIP v2 JSON within 10% of /predict", median[columns[1]] >= 0.9,
         f"{median[columns[1]]:.2f}"),
        ("c=64 p99 at most 3x p50 (/predict)", median[columns[3]] <= 3,
         f"{median[columns[3]]:.1f}x"),
    ]  # fmt: skip
    if result.model == "heavy":
        checks.append(("c=64 OIP v2 binary at least as fast as /predict",
                       median[columns[2]] >= 1, f"{median[columns[2]]:.2f}"))  # fmt: skip
    lines += ["", f"Targets at c=64, {result.model}, on the paired medians:", "",
              "| target | met | figure |", "|---|---|---|"]  # fmt: skip
    lines += [
        f"| {name} | {'yes' if met else '**no**'} | {figure} |" for name, met, figure in checks
    ]
    return [*lines, ""]
