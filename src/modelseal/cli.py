"""The ``modelseal`` command: parses, calls the API, prints. The only module that prints.

Exit codes (``EXIT_CODES`` maps every error to one): 0 success / consistent, 1 drift beyond
tolerance or a model that cannot load or run here, 2 a usage error or an unreadable, corrupt
or unsafe seal, 3 ``verify --url`` found the server serving another seal than the one given.
A command given ``--json`` that fails before it has a report prints an ``ErrorReport``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from modelseal._version import __version__
from modelseal.environment.fingerprint import capture_environment
from modelseal.errors import (
    ChecksFailedError,
    DeviceError,
    DriftError,
    InputError,
    IntegrityError,
    NoCulpritError,
    RuntimeLoadError,
    SealError,
    SealFormatError,
    SourceError,
    StorageError,
    UsageError,
    WrongSealError,
)
from modelseal.pack import pack
from modelseal.reports import (
    ErrorReport,
    diff_view,
    environment_view,
    seal_view,
    verify_view,
)
from modelseal.runtimes.numpy_function import NumpyFunction
from modelseal.runtimes.registry import available_runtimes, get_runtime
from modelseal.seal.artifact import Seal
from modelseal.serving.config import DriftPolicy, LogFormat, NanPolicy, ServeConfig
from modelseal.sources import resolve, resolve_source
from modelseal.verify import diff_sources, verify

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_UNUSABLE = 2
EXIT_WRONG_SEAL = 3
EXIT_CODES: dict[type[SealError], int] = {
    DriftError: EXIT_DRIFT,
    ChecksFailedError: EXIT_DRIFT,
    NoCulpritError: EXIT_DRIFT,
    WrongSealError: EXIT_WRONG_SEAL,
    RuntimeLoadError: EXIT_DRIFT,
    DeviceError: EXIT_DRIFT,
    IntegrityError: EXIT_UNUSABLE,
    SealFormatError: EXIT_UNUSABLE,
    SourceError: EXIT_UNUSABLE,
    StorageError: EXIT_UNUSABLE,
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


@dataclass
class Invocation:
    """What the running command line asked for that matters once it has failed."""

    json: bool = False


invocation = Invocation()


def _remember_json(value: bool) -> bool:
    invocation.json = value
    return value


JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout.", callback=_remember_json)
]
SOURCE_HELP = "Seal folder or archive, file://, s3://, models:/NAME/VERSION or @ALIAS, https://."
ExpectDigest = Annotated[
    str | None,
    typer.Option(
        "--expect-digest",
        envvar="MODELSEAL_EXPECT_DIGEST",
        help="sha256:... of the seal to accept; any other is refused before it is loaded.",
    ),
]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: runs the command and exits with its code."""
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    """Run one command line and return its exit code instead of exiting."""
    invocation.json = False
    try:
        app(args=argv, prog_name="modelseal")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_UNUSABLE
    except SealError as exc:
        code = exit_code_for(exc)
        stderr.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        if invocation.json and not _reported(exc):
            print_json(ErrorReport.of(exc, code).model_dump(mode="json"))
        return code
    return EXIT_OK


def _reported(error: SealError) -> bool:
    """Whether the command printed the report this error carries before raising it."""
    return isinstance(error, DriftError | WrongSealError | ChecksFailedError | NoCulpritError) and (
        error.report is not None
    )


def exit_code_for(error: SealError) -> int:
    for kind in type(error).__mro__:
        if kind in EXIT_CODES:
            return EXIT_CODES[kind]
    return EXIT_UNUSABLE


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def _print_version(value: bool) -> None:
    if value:
        stdout.print(f"modelseal {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Seal a model with the environment it was validated in; verify and serve it."""


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
    model: Annotated[
        str,
        typer.Argument(help="Model file or folder to seal (mlflow: also runs:/ or models:/ URI)."),
    ],
    runtime: Annotated[str, typer.Option("--runtime", "-r", help="Runtime that loads it.")],
    name: Annotated[str, typer.Option(help="Model name.")],
    version: Annotated[str, typer.Option(help="Model version.")],
    golden: Annotated[
        Path | None,
        typer.Option(
            help="Golden inputs: .npy (the single input) or .npz (by name); optional where "
            "the model carries an input example (mlflow)."
        ),
    ] = None,
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
        NumpyFunction(source=Path(model), weights=weights) if weights is not None else model,
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
    seal_path: Annotated[str, typer.Argument(metavar="SEAL", help=SOURCE_HELP)],
    as_json: JsonFlag = False,
    expect_digest: ExpectDigest = None,
) -> None:
    """Show a seal's manifest, files, digests and environment summary (checks every file)."""
    seal = resolve(seal_path, expect_digest)
    if as_json:
        print_json(inspect_data(seal))
        return
    stdout.print(seal_view(seal))


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
def serve(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE",
            envvar=["MODELSEAL_SOURCE", "MODEL_SOURCE", "MODEL_VOLUME_PATH"],
            help=SOURCE_HELP,
        ),
    ],
    host: Annotated[str, typer.Option(envvar="MODELSEAL_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="MODELSEAL_PORT")] = 8080,
    device: Annotated[
        str, typer.Option(envvar="MODELSEAL_DEVICE", help="auto, cpu, cuda or cuda:N.")
    ] = "auto",
    require_gpu: Annotated[
        int,
        typer.Option(envvar="MODELSEAL_REQUIRE_GPU", help="Fail unless N GPUs are visible."),
    ] = 0,
    half: Annotated[
        bool, typer.Option(envvar="MODELSEAL_HALF", help="Half precision on the GPU.")
    ] = False,
    drift: Annotated[
        DriftPolicy,
        typer.Option(
            envvar="MODELSEAL_DRIFT",
            help="fail: drift keeps the server not ready; warn: serve, report on /seal; "
            "exit: exit 1 when start-up verification fails (Compose, plain Docker).",
        ),
    ] = "fail",
    tolerance: Annotated[
        list[str] | None, typer.Option(help="Override the seal's policy: POLICY or OUTPUT=POLICY.")
    ] = None,
    max_batch_size: Annotated[int, typer.Option(envvar="MODELSEAL_MAX_BATCH_SIZE")] = 64,
    max_batch_delay_ms: Annotated[
        float,
        typer.Option(
            envvar="MODELSEAL_MAX_BATCH_DELAY_MS",
            help="Wait up to this long to fill a batch (0: batch only what is waiting).",
        ),
    ] = 0.0,
    max_queue: Annotated[
        int, typer.Option(envvar="MODELSEAL_MAX_QUEUE", help="Requests waiting before 503.")
    ] = 512,
    max_body_bytes: Annotated[int, typer.Option(envvar="MODELSEAL_MAX_BODY_BYTES")] = 16 << 20,
    nan_policy: Annotated[
        NanPolicy, typer.Option(envvar="MODELSEAL_NAN_POLICY", help="Reject or allow NaN/Inf.")
    ] = "reject",
    probe_interval: Annotated[
        float,
        typer.Option(
            envvar="MODELSEAL_PROBE_INTERVAL", help="Seconds between readiness inference probes."
        ),
    ] = 5.0,
    stall_seconds: Annotated[
        float,
        typer.Option(
            envvar="MODELSEAL_STALL_SECONDS", help="Liveness fails when a batch runs longer."
        ),
    ] = 60.0,
    drain_seconds: Annotated[
        float,
        typer.Option(
            envvar="MODELSEAL_DRAIN_SECONDS", help="Keep serving this long after SIGTERM."
        ),
    ] = 5.0,
    header_timeout: Annotated[
        float,
        typer.Option(
            envvar="MODELSEAL_HEADER_TIMEOUT",
            help="Seconds for a request's headers to arrive; then 408 and close.",
        ),
    ] = 10.0,
    body_timeout: Annotated[
        float,
        typer.Option(
            envvar="MODELSEAL_BODY_TIMEOUT",
            help="Seconds for a request's body to arrive after its headers; then 408 and close.",
        ),
    ] = 60.0,
    max_connections: Annotated[
        int,
        typer.Option(
            envvar="MODELSEAL_MAX_CONNECTIONS",
            help="Open connections beyond this get 503 (Retry-After) and are closed.",
        ),
    ] = 1000,
    access_log: Annotated[bool, typer.Option(envvar="MODELSEAL_ACCESS_LOG")] = False,
    log_format: Annotated[LogFormat, typer.Option(envvar="MODELSEAL_LOG_FORMAT")] = "auto",
    expect_digest: ExpectDigest = None,
    workers: Annotated[
        int,
        typer.Option(
            envvar="MODELSEAL_WORKERS",
            help="Server processes sharing the port, each verifying the seal; ready when all are.",
        ),
    ] = 1,
) -> None:
    """Serve a seal over HTTP (OIP v2 and /predict) once it proves it reproduces."""
    from modelseal.serving.runner import serve as run_server

    config = ServeConfig(
        host=host,
        port=port,
        device=device,
        require_gpu=require_gpu,
        half=half,
        drift=drift,
        tolerance=tuple(tolerance or ()),
        max_batch_size=max_batch_size,
        max_batch_delay_ms=max_batch_delay_ms,
        max_queue=max_queue,
        max_body_bytes=max_body_bytes,
        nan_policy=nan_policy,
        probe_interval_s=probe_interval,
        stall_seconds=stall_seconds,
        drain_seconds=drain_seconds,
        header_timeout_s=header_timeout,
        body_timeout_s=body_timeout,
        max_connections=max_connections,
        access_log=access_log,
        log_format=log_format,
        workers=workers,
    )
    run_server(source, config, expect_digest=expect_digest)


@app.command()
def demo(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for the demo seal.")
    ] = Path("build/demo"),
    port: Annotated[int, typer.Option(help="Port to serve on once sealed.")] = 8080,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Seal and verify only; do not start the server.")
    ] = False,
) -> None:
    """Train the bundled digits model, seal it, verify it, and serve it."""
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
    if no_serve:
        return
    stderr.print(
        f"serving on http://127.0.0.1:{port}: try `curl -s localhost:{port}/health` or "
        f"`modelseal verify {seal.root} --url http://127.0.0.1:{port}`; Ctrl-C stops"
    )
    serve(str(seal.root), port=port)


@app.command(name="verify")
def verify_command(
    source: Annotated[str, typer.Argument(metavar="SEAL", help=SOURCE_HELP)],
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
        typer.Option(
            help="Replay batch sizes, each >= 1 (default: 1 and all golden rows; with --url, "
            "64); repeatable."
        ),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Show info rows (packages outside the lock) too.")
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(
            help="Check a running server instead (http://HOST:PORT; HOST:PORT means http): "
            "send it the golden inputs. Exit 3 when it serves another seal."
        ),
    ] = None,
    expect_digest: ExpectDigest = None,
) -> None:
    """Verify a seal here: integrity, environment drift, and a replay of its golden inputs."""
    if url is not None:
        _verify_remote(source, url, tolerance or [], batch_size, as_json, expect_digest)
        return
    seal = resolve(source, expect_digest)
    report = verify(seal, tolerance=tolerance or (), batch_sizes=batch_size or None)
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        stdout.print(verify_view(report, show_info=show_all))
    report.check(strict_env=strict_env)


def _verify_remote(
    source: str,
    url: str,
    tolerance: list[str],
    batch_sizes: list[int] | None,
    as_json: bool,
    expect_digest: str | None,
) -> None:
    from modelseal.remote import verify_server
    from modelseal.reports import remote_view

    seal = resolve(source, expect_digest)
    report = verify_server(seal, url, tolerance=tolerance, batch_sizes=batch_sizes)
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        stdout.print(remote_view(report))
    report.check()


@app.command()
def diff(
    packed: Annotated[str, typer.Argument(metavar="A", help="Seal, environment.json, or -.")],
    current: Annotated[str, typer.Argument(metavar="B", help="Seal, environment.json, or -.")],
    as_json: JsonFlag = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="Show info rows (packages outside the lock) too.")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when any difference is critical.")
    ] = False,
) -> None:
    """Rank the differences between two environments by numerical risk (A is the reference)."""
    report = diff_sources(packed, current)
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        stdout.print(diff_view(report, show_info=show_all))
    report.check(strict=strict)


# --- doctor (triage) -------------------------------------------------------------------------


@app.command()
def doctor(
    source: Annotated[
        str | None,
        typer.Argument(
            metavar="[SEAL]",
            envvar=["MODELSEAL_SOURCE", "MODEL_SOURCE", "MODEL_VOLUME_PATH"],
            help="The seal to judge against (folder, archive or file:// URI); optional.",
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(help="Also check the server at URL: health, digest, drift, a golden row."),
    ] = None,
    container: Annotated[
        str | None,
        typer.Option(
            metavar="NAME|ID",
            help="Check a running container: the doctor inside it plus what Docker knows.",
        ),
    ] = None,
    latency_budget_ms: Annotated[
        float,
        typer.Option(
            envvar="MODELSEAL_LATENCY_BUDGET_MS",
            help="Warn when one golden row takes longer than this through --url.",
        ),
    ] = 1000.0,
    as_json: JsonFlag = False,
) -> None:
    """Triage: GPU, dependency drift, limits, threads, server and container checks."""
    from modelseal.doctor import DoctorOptions, run_doctor
    from modelseal.doctor.view import doctor_view

    options = DoctorOptions(url=url, container=container, latency_budget_s=latency_budget_ms / 1000)
    seal = resolve(source) if source else None
    report = run_doctor(seal, options)
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        stdout.print(doctor_view(report))
    report.check()


# --- bisect: which change since sealing breaks the replay (issue 14) ---------------------


@app.command(name="bisect")
def bisect_command(
    source: Annotated[
        str, typer.Argument(metavar="SEAL", help="Seal folder or archive, or file:// URI.")
    ],
    as_json: JsonFlag = False,
    max_envs: Annotated[
        int | None,
        typer.Option(help="Run trials in at most this many built environments [default: 16]."),
    ] = None,
    keep_envs: Annotated[
        Path | None,
        typer.Option(help="Keep the trial environments in DIR (and reuse them from there)."),
    ] = None,
) -> None:
    """Find the package or setting change since sealing that breaks the replay here."""
    from modelseal.bisect import bisect_seal
    from modelseal.bisect.view import bisect_view, trial_line

    report = bisect_seal(
        resolve_source(source),
        max_envs=max_envs,
        keep_envs=keep_envs,
        on_trial=lambda record: stderr.print(trial_line(record), highlight=False),
    )
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        stdout.print(bisect_view(report))
    report.check()


# --- Weight sources: publish a seal, fill the cache (logic in modelseal.sources) -------------


@app.command()
def push(
    seal_path: Annotated[str, typer.Argument(metavar="SEAL", help="Seal folder or archive.")],
    destination: Annotated[
        str,
        typer.Argument(
            metavar="S3_URI",
            help="s3://BUCKET/KEY.seal.tar[.gz], or s3://BUCKET/[PREFIX/] for "
            "NAME/VERSION/NAME-VERSION.seal.tar under it.",
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Check a seal and upload it to S3 as one archive (multipart when large)."""
    import dataclasses

    from modelseal.sources.publish import push as push_seal

    result = push_seal(seal_path, destination)
    if as_json:
        print_json(dataclasses.asdict(result))
        return
    stdout.print(f"pushed {result.uri} ({result.bytes} bytes in {result.seconds:.1f} s)")
    stdout.print(f"digest sha256:{result.digest}")


@app.command()
def register(
    seal_path: Annotated[str, typer.Argument(metavar="SEAL", help="Seal folder or archive.")],
    name: Annotated[str, typer.Option(help="Registered model name.")],
    alias: Annotated[
        str | None, typer.Option(help="Alias to point at the new version (e.g. champion).")
    ] = None,
    tracking_uri: Annotated[
        str | None, typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow tracking server.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check a seal and register it as a new model version in MLflow's registry."""
    import dataclasses

    from modelseal.sources.publish import register as register_seal

    result = register_seal(seal_path, name, alias=alias, tracking_uri=tracking_uri)
    if as_json:
        print_json({**dataclasses.asdict(result), "uri": result.uri})
        return
    stdout.print(f"registered {result.uri}" + (f" (alias {result.alias})" if result.alias else ""))
    stdout.print(f"digest sha256:{result.digest}")


@app.command()
def fetch(
    source: Annotated[str, typer.Argument(metavar="SOURCE", help=SOURCE_HELP)],
    expect_digest: ExpectDigest = None,
    cache_dir: Annotated[
        Path | None, typer.Option(envvar="MODELSEAL_CACHE_DIR", help="Cache folder.")
    ] = None,
    cache_max_bytes: Annotated[
        str | None,
        typer.Option(
            envvar="MODELSEAL_CACHE_MAX_BYTES",
            help="Evict least recently used seals beyond this size (e.g. 20G).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Fetch a seal into the cache and check it (for an init container, or to warm a node)."""
    import os

    from modelseal.sources.cache import SealCache, default_cache_dir, parse_max_bytes

    cache = SealCache(cache_dir or default_cache_dir(os.environ), parse_max_bytes(cache_max_bytes))
    _show_source_logs()
    seal = resolve(source, expect_digest, cache=cache)
    if as_json:
        print_json({"digest": seal.digest, "source": seal.source, "path": str(seal.root)})
        return
    stdout.print(f"{seal.source} -> {seal.root}")
    stdout.print(f"digest sha256:{seal.digest}")


def _show_source_logs() -> None:
    """fetch runs in init containers: its progress lines and retries go to stderr."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("modelseal.sources")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
