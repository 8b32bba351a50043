"""Server settings: one field per ``modelseal serve`` flag (each also a MODELSEAL_* variable)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from modelseal.errors import UsageError

# Read by the CLI of every install: nothing here may need the serve extra (orjson, uvicorn).
DriftPolicy = Literal["fail", "warn", "exit"]
NanPolicy = Literal["reject", "allow"]
"""What to do with NaN or Inf in a floating-point input: reject the request, or pass it on."""
LogFormat = Literal["auto", "json", "text"]


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    device: str = "auto"
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    require_gpu: int = 0
    """Refuse to start unless this many GPUs are visible (no silent CPU fallback)."""
    half: bool = False
    """Run in half precision on the GPU, for runtimes that support it."""
    drift: DriftPolicy = "fail"
    """``fail``: a golden replay beyond tolerance keeps the server not ready; ``warn``: ready,
    with the report on /seal and the drift warning metric set; ``exit``: the process exits 1
    when start-up verification fails (drift, or a model that cannot load or run here), for
    Compose and plain Docker, where nothing reads readiness."""
    tolerance: tuple[str, ...] = ()
    max_batch_size: int = 64
    max_batch_delay_ms: float = 0.0
    """0: batch only the requests already waiting; never hold a lone request back."""
    max_queue: int = 512
    inline_below_ms: float = 2.0
    """A batch the model's recent batches say takes less than this runs on the event loop
    instead of the inference thread (cheaper than the hop); 0: always in the thread. Only
    for runtimes that run native code on the CPU (``core.INLINE_RUNTIMES``)."""
    max_body_bytes: int = 16 * 1024 * 1024
    nan_policy: NanPolicy = "reject"
    probe_interval_s: float = 5.0
    """Readiness re-runs a golden row through the model at most this often."""
    stall_seconds: float = 60.0
    """Liveness fails when one batch has been running longer than this (a wedged worker)."""
    header_timeout_s: float = 10.0
    """A request's headers must arrive within this long of its first byte (or of connecting)."""
    body_timeout_s: float = 60.0
    """A request's body must arrive within this long of its headers."""
    max_connections: int = 1000
    """Connections opened beyond this many open ones get a 503 (Retry-After) and are closed."""
    drain_seconds: float = 5.0
    workers: int = 1
    """Server processes sharing the port, each verifying the seal itself (``workers``)."""
    warmup_rounds: int = 3
    access_log: bool = False
    log_format: LogFormat = "auto"
    replay_batch_sizes: tuple[int, ...] = field(default=())
    """Golden replay batch sizes at start-up; empty means 1 and ``max_batch_size``."""

    def __post_init__(self) -> None:
        positive = {
            "max_batch_size": self.max_batch_size,
            "max_queue": self.max_queue,
            "max_body_bytes": self.max_body_bytes,
            "probe_interval_s": self.probe_interval_s,
            "stall_seconds": self.stall_seconds,
            "header_timeout_s": self.header_timeout_s,
            "body_timeout_s": self.body_timeout_s,
            "max_connections": self.max_connections,
            "workers": self.workers,
        }
        for name, value in positive.items():
            if value <= 0:
                raise UsageError(f"{name} must be above 0, got {value}")
        non_negative = {
            "max_batch_delay_ms": self.max_batch_delay_ms,
            "inline_below_ms": self.inline_below_ms,
            "drain_seconds": self.drain_seconds,
            "require_gpu": self.require_gpu,
            "warmup_rounds": self.warmup_rounds,
        }
        for name, value in non_negative.items():
            if value < 0:
                raise UsageError(f"{name} must be 0 or more, got {value}")
        kind, colon, index = self.device.partition(":")
        cuda_n = kind == "cuda" and colon and index.isascii() and index.isdecimal()
        if not (self.device in ("auto", "cpu", "cuda") or cuda_n):
            raise UsageError(
                f"--device {self.device!r}: expected auto, cpu, cuda or cuda:N with N a GPU "
                "index (cuda:0, cuda:1, ...)"
            )

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        return self.replay_batch_sizes or (1, self.max_batch_size)
