"""The ``modelseal`` command: parses, calls the API, prints. The only module that prints.

Exit codes: 0 success / consistent, 1 drift beyond tolerance or a model that cannot load or
run here, 2 a usage error or an unreadable, corrupt or unsafe seal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from modelseal.environment.fingerprint import capture_environment
from modelseal.errors import (
    DeviceError,
    DriftError,
    InputError,
    IntegrityError,
    RuntimeLoadError,
    SealError,
    SealFormatError,
    SourceError,
    UsageError,
)
from modelseal.pack import pack
from modelseal.reports import environment_rows_view, environment_view, seal_view, verify_view
from modelseal.runtimes.numpy_function import NumpyFunction
from modelseal.runtimes.registry import available_runtimes, get_runtime
from modelseal.seal.artifact import Seal, open_seal
from modelseal.verify import diff_sources, verify

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_UNUSABLE = 2
EXIT_CODES: dict[type[SealError], int] = {
    DriftError: EXIT_DRIFT,
    RuntimeLoadError: EXIT_DRIFT,
    DeviceError: EXIT_DRIFT,
    IntegrityError: EXIT_UNUSABLE,
    SealFormatError: EXIT_UNUSABLE,
    SourceError: EXIT_UNUSABLE,
    InputError: EXIT_UNUSABLE,
    UsageError: EXIT_UNUSABLE,
}

app = typer.Typer(
    name="modelseal",
    help="Seal a model with the environment it was validated in; verify and serve it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Pipes and CI logs get a wide page instead of rich's 80-column default.
stdout = Console(width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: runs the command and exits with its code."""
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    """Run one command line and return its exit code instead of exiting."""
    try:
        app(args=argv, prog_name="modelseal")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_UNUSABLE
    except SealError as exc:
        stderr.print(f"[bold red]error:[/] {exc}", highlight=False)
        return exit_code_for(exc)
    return EXIT_OK


def exit_code_for(error: SealError) -> int:
    for kind in type(error).__mro__:
        if kind in EXIT_CODES:
            return EXIT_CODES[kind]
    return EXIT_UNUSABLE


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


@app.command()
def env(
    as_json: JsonFlag = False,
    packages: Annotated[bool, typer.Option(help="List every installed package.")] = False,
) -> None:
    """Print this environment's fingerprint."""
    record = capture_environment()
    if as_json:
        print_json(record.model_dump(mode="json"))
        return
    stdout.print(environment_view(record, packages=packages))


@app.command(name="pack")
def pack_command(
    model: Annotated[Path, typer.Argument(help="Model file (or folder) to seal.")],
    runtime: Annotated[str, typer.Option("--runtime", "-r", help="Runtime that loads it.")],
    name: Annotated[str, typer.Option(help="Model name.")],
    version: Annotated[str, typer.Option(help="Model version.")],
    golden: Annotated[
        Path, typer.Option(help="Golden inputs: .npy (the single input) or .npz (by name).")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Seal folder or .tar[.gz] to write.")
    ] = None,
    tolerance: Annotated[
        list[str] | None,
        typer.Option(help="POLICY for every output or OUTPUT=POLICY; repeatable."),
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option(help="Weights .npz of a numpy function model (--runtime numpy)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Seal MODEL with its golden inputs, environment and serving lock."""
    if weights is not None and runtime != "numpy":
        raise UsageError(f"--weights is for --runtime numpy; runtime {runtime!r} takes none")
    seal = pack(
        NumpyFunction(source=model, weights=weights) if weights is not None else model,
        runtime=get_runtime(runtime),
        name=name,
        version=version,
        golden=golden,
        output=output,
        tolerance=tolerance or (),
    )
    if as_json:
        print_json(inspect_data(seal))
        return
    stdout.print(f"sealed {seal.name} {seal.version} -> {seal.source}")
    stdout.print(f"digest {seal.digest}")


@app.command()
def inspect(
    seal_path: Annotated[Path, typer.Argument(metavar="SEAL", help="Seal folder or archive.")],
    as_json: JsonFlag = False,
) -> None:
    """Show a seal's manifest, files, digests and environment summary (checks every file)."""
    seal = open_seal(seal_path)
    if as_json:
        print_json(inspect_data(seal))
        return
    stdout.print(seal_view(seal))
    stdout.print()
    stdout.print(verify_view(verify(seal), show_info=False))


def inspect_data(seal: Seal) -> dict[str, Any]:
    environment = seal.environment()
    return {
        "digest": seal.digest,
        "source": seal.source,
        "manifest": seal.manifest.model_dump(mode="json"),
        "files": [
            {
                "path": check.path,
                "sha256": check.actual_sha256,
                "size": seal.manifest.files[check.path].size,
                "ok": check.ok,
            }
            for check in seal.file_checks
        ],
        "environment": {
            "python": environment.python.version,
            "platform": f"{environment.platform.system} {environment.platform.machine}",
            "numpy": environment.numpy_version,
            "blas": [pool.model_dump(mode="json") for pool in environment.blas],
        },
        "lock": seal.lock_lines(),
    }


@app.command()
def runtimes() -> None:
    """List the runtimes installed here."""
    for name in available_runtimes():
        stdout.print(name)


@app.command()
def demo(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for the demo seal.")
    ] = Path("build/demo"),
) -> None:
    """Train the bundled digits model, seal it, and show the seal."""
    import shutil

    from modelseal.demo import DEMO_NAME, DEMO_VERSION, train_demo_model

    stderr.print("training the demo model (scikit-learn digits, deterministic) ...")
    model = train_demo_model()
    stderr.print(f"hold-out accuracy {model.holdout_accuracy:.3f}")
    seal_path = output / f"{DEMO_NAME}-{DEMO_VERSION}.seal"
    if seal_path.exists():
        shutil.rmtree(seal_path)
    seal = pack(
        model.estimator,
        runtime="sklearn",
        name=DEMO_NAME,
        version=DEMO_VERSION,
        golden=model.golden_inputs,
        output=seal_path,
    )
    stdout.print(seal_view(seal))
    stdout.print()
    stdout.print(verify_view(verify(seal), show_info=False))


@app.command(name="verify")
def verify_command(
    source: Annotated[str, typer.Argument(metavar="SEAL", help="Seal folder or archive.")],
    as_json: JsonFlag = False,
    strict_env: Annotated[
        bool, typer.Option("--strict-env", help="Exit 1 on critical environment drift too.")
    ] = False,
    tolerance: Annotated[
        list[str] | None,
        typer.Option(help="Override the seal's policy: POLICY or OUTPUT=POLICY; repeatable."),
    ] = None,
    batch_size: Annotated[
        list[int] | None,
        typer.Option(help="Replay batch sizes (default: 1 and all golden rows); repeatable."),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Show info rows (packages outside the lock) too.")
    ] = False,
) -> None:
    """Verify a seal here: integrity, environment drift, and a replay of its golden inputs."""
    report = verify(source, tolerance=tolerance or (), batch_sizes=batch_size or None)
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        stdout.print(verify_view(report, show_info=show_all))
    if not report.passes(strict_env=strict_env):
        raise typer.Exit(EXIT_DRIFT)


@app.command()
def diff(
    packed: Annotated[str, typer.Argument(metavar="A", help="Seal, environment.json, or -.")],
    current: Annotated[str, typer.Argument(metavar="B", help="Seal, environment.json, or -.")],
    as_json: JsonFlag = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="Show info rows (packages outside the lock) too.")
    ] = False,
) -> None:
    """Rank the differences between two environments by numerical risk (A is the reference)."""
    report = diff_sources(packed, current)
    if as_json:
        print_json(report.model_dump(mode="json"))
        return
    stdout.print(environment_rows_view(report.rows, show_info=show_all))
