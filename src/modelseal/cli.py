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
from typing import Annotated, Any, Literal

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
from modelseal.seal.keys import DEFAULT_KEY_TYPE, KeyType, generate_key_pair
from modelseal.seal.signatures import sign_seal
from modelseal.seal.trust import ALLOW_UNSIGNED_PICKLE_VARIABLE, TrustPolicy, authenticate
from modelseal.serving.config import DriftPolicy, LogFormat, NanPolicy, ServeConfig
from modelseal.sources import resolve, resolve_source
from modelseal.tabular.files import parse_dtypes
from modelseal.verify import diff_sources, seal_pickle_on_load, verify

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
            help="Golden inputs: .npy (the single input), .npz (by name), or .parquet / .csv "
            "(a DataFrame, for a model trained on one); optional where the model carries an "
            "input example (mlflow)."
        ),
    ] = None,
    golden_dtypes: Annotated[
        list[str] | None,
        typer.Option(
            help="pandas dtypes of a --golden .csv's columns: NAME=DTYPE[,NAME=DTYPE...] or a "
            ".json file of them; repeatable."
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
        golden_dtypes=parse_dtypes(golden_dtypes or []),
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
    trusted_key: TrustedKeyOption = None,
) -> None:
    """Show a seal's manifest, files, digests, signatures and environment summary (checks
    every file; with trusted keys, refuses a seal none of them signed)."""
    seal = resolve(seal_path, expect_digest)
    authenticate(seal, TrustPolicy.from_options(trusted_key or (), expect_digest=expect_digest))
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
        **trust_data(seal),
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
    inline_below_ms: Annotated[
        float,
        typer.Option(
            envvar="MODELSEAL_INLINE_BELOW_MS",
            help="Run a batch expected to take less than this on the event loop, not the "
            "inference thread (ONNX, scikit-learn, torch on CPU; 0: never).",
        ),
    ] = 2.0,
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
    cache_dir: CacheDirOption = None,
    cache_max_bytes: CacheMaxBytesOption = None,
    trusted_key: TrustedKeyOption = None,
    allow_unsigned_pickle: AllowUnsignedPickleOption = False,
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
    from modelseal.sources.cache import parse_max_bytes

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
        inline_below_ms=inline_below_ms,
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
    trust = TrustPolicy.from_options(
        trusted_key or (), expect_digest=expect_digest, allow_unsigned_pickle=allow_unsigned_pickle
    )
    run_server(
        source, config, trust, cache_dir=cache_dir, cache_max_bytes=parse_max_bytes(cache_max_bytes)
    )


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
    trusted_key: TrustedKeyOption = None,
    allow_unsigned_pickle: AllowUnsignedPickleOption = False,
) -> None:
    """Verify a seal here: integrity, signatures, environment drift, and a replay of its
    golden inputs."""
    trust = TrustPolicy.from_options(
        trusted_key or (), expect_digest=expect_digest, allow_unsigned_pickle=allow_unsigned_pickle
    )
    if url is not None:
        _verify_remote(source, url, tolerance or [], batch_size, as_json, trust)
        return
    seal = resolve(source, trust.expect_digest)
    report = verify(seal, tolerance=tolerance or (), batch_sizes=batch_size or None, trust=trust)
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
    trust: TrustPolicy,
) -> None:
    from modelseal.remote import verify_server
    from modelseal.reports import remote_view

    seal = resolve(source, trust.expect_digest)
    authenticate(seal, trust)
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
# The cache options of fetch and serve; typer reads these annotations once the module is loaded.

CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        envvar="MODELSEAL_CACHE_DIR",
        help="Cache folder for remote seals [default: ~/.cache/modelseal].",
    ),
]
CacheMaxBytesOption = Annotated[
    str | None,
    typer.Option(
        envvar="MODELSEAL_CACHE_MAX_BYTES",
        help="Evict least recently used seals beyond this size (e.g. 20G).",
    ),
]


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
    cache_dir: CacheDirOption = None,
    cache_max_bytes: CacheMaxBytesOption = None,
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


# --- ship: Dockerfile, compose.yaml, Kubernetes and KServe manifests (issue 9) -------------

WeightsChoice = Literal["baked", "volume", "s3", "registry"]


@app.command(name="dockerfile")
def dockerfile_command(
    seal_source: Annotated[
        str, typer.Argument(metavar="SEAL", help="Seal folder or archive, or file:// URI.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Build context folder to write.")],
    weights: Annotated[
        WeightsChoice, typer.Option(help="Where the container finds the seal.")
    ] = "baked",
    gpu: Annotated[
        bool, typer.Option("--gpu", help="A CUDA runtime base for the seal's CUDA build.")
    ] = False,
    base_image: Annotated[
        str | None,
        typer.Option(help="Base image instead of the sealed Python's: NAME:TAG or NAME@sha256:..."),
    ] = None,
    wheelhouse: Annotated[
        Path | None,
        typer.Option(help="Install from this folder of wheels: the build needs no network."),
    ] = None,
    compose: Annotated[bool, typer.Option("--compose", help="Write compose.yaml too.")] = False,
    source: Annotated[
        str | None,
        typer.Option(help="Default MODELSEAL_SOURCE (volume path, s3:// or models:/ URI)."),
    ] = None,
    pin: Annotated[
        list[str] | None,
        typer.Option(help="Move a pin of the seal's lock: NAME==VERSION; repeatable."),
    ] = None,
    startup_seconds: Annotated[
        float | None,
        typer.Option(help="The seal's start-up time, instead of measuring it here."),
    ] = None,
) -> None:
    """Write the multi-stage Dockerfile (and build context) of a seal's serving image."""
    from modelseal.deploy import Weights, write_dockerfile

    with resolve(seal_source) as seal:
        plan, context = write_dockerfile(
            seal,
            output,
            weights=Weights(weights),
            gpu=gpu,
            base_image=base_image,
            wheelhouse=wheelhouse,
            with_compose=compose,
            source=source,
            pins=pin or (),
            startup_seconds=startup_seconds,
        )
    for path in context.files:
        stdout.print(f"wrote {context.root / path}")
    for name, (sealed, moved) in plan.moved_pins.items():
        stderr.print(f"[yellow]moved pin:[/] {name} {sealed or '(not sealed)'} -> {moved}")
    network = "--network none " if wheelhouse is not None else ""
    stderr.print(f"build: docker build {network}-t {plan.image_tag} {context.root}")


@app.command(name="k8s")
def k8s_command(
    seal_source: Annotated[
        str, typer.Argument(metavar="SEAL", help="Seal folder or archive, or file:// URI.")
    ],
    image: Annotated[str, typer.Option(help="The serving image (modelseal dockerfile).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the manifests.")],
    gpu: Annotated[int, typer.Option("--gpu", help="GPUs per pod (nvidia.com/gpu).")] = 0,
    replicas: Annotated[int, typer.Option(help="Replicas (the HPA's minimum).")] = 2,
    max_replicas: Annotated[
        int | None, typer.Option(help="The HPA's maximum (default 4 x replicas).")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help="s3://, models:/ or https:// URI, or a path under /models (a PVC)."),
    ] = None,
    namespace: Annotated[str | None, typer.Option(help="Namespace of the resources.")] = None,
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option(help="Public key (PEM) the server trusts for signatures; repeatable."),
    ] = None,
    drain_seconds: Annotated[
        int, typer.Option(help="The server's drain window (preStop matches it).")
    ] = 5,
    cpu: Annotated[float, typer.Option(help="CPU request in cores (limit: twice it).")] = 1.0,
    volume_claim: Annotated[
        str | None, typer.Option(help="PersistentVolumeClaim holding the seal (path source).")
    ] = None,
    startup_seconds: Annotated[
        float | None,
        typer.Option(help="The seal's start-up time, instead of measuring it here."),
    ] = None,
    memory_mib: Annotated[
        int | None, typer.Option(help="Memory request in MiB, instead of measuring it here.")
    ] = None,
) -> None:
    """Write Kubernetes (Deployment, Service, PDB, HPA) and KServe manifests for a seal."""
    from modelseal.deploy import KubernetesOptions, write_manifests

    options = KubernetesOptions(
        image=image,
        replicas=replicas,
        max_replicas=max_replicas,
        gpus=gpu,
        source=source,
        namespace=namespace,
        trusted_keys=tuple(trusted_key or ()),
        drain_seconds=drain_seconds,
        cpu=cpu,
        volume_claim=volume_claim,
    )
    with resolve(seal_source) as seal:
        manifests = write_manifests(
            seal,
            output,
            options,
            startup_seconds=startup_seconds,
            memory_request_bytes=memory_mib * (1 << 20) if memory_mib is not None else None,
        )
    for path in manifests.files:
        stdout.print(f"wrote {manifests.root / path}")
    sizing = manifests.sizing
    if sizing.measured is not None:
        stderr.print(
            f"measured start-up {sizing.measured.seconds:.1f} s, peak memory "
            f"{sizing.measured.peak_rss_bytes >> 20} MiB"
        )
    stderr.print(
        f"startupProbe budget {sizing.startup_budget_seconds} s; memory request "
        f"{sizing.memory_request_bytes >> 20} MiB, limit {sizing.memory_limit_bytes >> 20} MiB"
    )


# --- authenticity: keys, signatures, and what the operator trusts -------------------------
# The trust options of inspect, verify and serve are defined here, with the commands they
# belong to; typer reads the annotations above only once the whole module is loaded.

TrustedKeyOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--trusted-key",
        metavar="PUB.pem",
        help="Refuse seals not signed by this public key (PEM, or a folder of .pem files); "
        "repeatable. Default: MODELSEAL_TRUSTED_KEYS (files or folders, ':'-separated).",
    ),
]
AllowUnsignedPickleOption = Annotated[
    bool,
    typer.Option(
        "--allow-unsigned-pickle",
        envvar=ALLOW_UNSIGNED_PICKLE_VARIABLE,
        help="Load a model that unpickles (joblib, torch, most MLflow flavors) from a seal no "
        "trusted key signed: whoever can write the seal can then run code here (logged).",
    ),
]


def trust_data(seal: Seal) -> dict[str, Any]:
    """The ``inspect --json`` fields on authenticity: signatures, trusted keys, pickle."""
    trust = seal.trust
    return {
        "signatures": [s.model_dump(mode="json") for s in trust.signatures] if trust else [],
        "trusted_keys": [key.fingerprint for key in trust.trusted_keys] if trust else [],
        "pickle_on_load": seal_pickle_on_load(seal),
    }


@app.command()
def keygen(
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", metavar="KEY", help="Writes KEY.pem (private, 0600), KEY.pub.pem."
        ),
    ],
    key_type: Annotated[
        KeyType, typer.Option("--type", help="ecdsa-p256 (openssl verifies it) or ed25519.")
    ] = DEFAULT_KEY_TYPE,
) -> None:
    """Make a signing key pair for `modelseal sign`."""
    pair = generate_key_pair(output, key_type)
    stdout.print(f"private key {pair.private_key} (keep it secret; mode 0600)", highlight=False)
    stdout.print(f"public key  {pair.public_key} (give it to --trusted-key)", highlight=False)
    stdout.print(f"fingerprint {pair.fingerprint} ({pair.key_type})", highlight=False)


@app.command()
def sign(
    seal_path: Annotated[
        Path, typer.Argument(metavar="SEAL", help="Seal folder or archive (.tar, .tar.gz).")
    ],
    key: Annotated[Path, typer.Option(metavar="KEY.pem", help="The private key to sign with.")],
    as_json: JsonFlag = False,
) -> None:
    """Sign a seal's digest with KEY.pem, into the seal's signatures/ (checks every file)."""
    signed = sign_seal(seal_path, key)
    if as_json:
        print_json({"seal": signed.source, "digest": signed.digest, "files": list(signed.files),
                    "descriptor": signed.descriptor.model_dump(mode="json")})  # fmt: skip
        return
    stdout.print(f"signed {signed.source} digest sha256:{signed.digest}", highlight=False)
    stdout.print(
        f"by {signed.descriptor.key_fingerprint} ({signed.descriptor.algorithm}) -> "
        f"{', '.join(signed.files)}",
        highlight=False,
    )
