"""The environment fingerprint as data: what ``environment.json`` holds."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PythonInfo(BaseModel):
    version: str
    implementation: str
    build: str
    compiler: str


class PlatformInfo(BaseModel):
    system: str
    release: str
    machine: str
    libc: str
    libc_version: str


class CpuInfo(BaseModel):
    model: str
    count: int
    flags: list[str] = Field(description="instruction-set flags that change numerics")


class ThreadPool(BaseModel):
    """One native BLAS thread pool as threadpoolctl reports it."""

    user_api: str
    internal_api: str
    version: str | None
    num_threads: int
    architecture: str | None = None
    library: str = Field(description="file name of the shared library, without its folder")
    owner: str | None = Field(
        default=None,
        description="the distribution whose folder holds the library (numpy, scipy, torch); "
        "null for a library outside site-packages",
    )

    @property
    def label(self) -> str:
        """``openblas 0.3.30 (numpy)``: the vendor, its version and whose copy it is."""
        owner = f" ({self.owner})" if self.owner else ""
        return f"{self.internal_api} {self.version or '?'}{owner}"


class GpuInfo(BaseModel):
    name: str
    memory_mib: int | None = None
    compute_capability: str | None = None
    driver: str | None = None


class TorchInfo(BaseModel):
    version: str
    cuda: str | None = None
    cudnn: str | None = None
    cuda_available: bool | None = None
    tf32_matmul: bool | None = None
    tf32_cudnn: bool | None = None
    cudnn_deterministic: bool | None = None
    deterministic_algorithms: bool | None = None
    num_threads: int | None = None


class OnnxRuntimeInfo(BaseModel):
    version: str
    distribution: str
    providers: list[str] | None = None


class EnvironmentRecord(BaseModel):
    """Everything about an environment that can change a model's outputs."""

    python: PythonInfo
    platform: PlatformInfo
    cpu: CpuInfo
    packages: dict[str, str] = Field(description="normalized distribution name -> version")
    numpy_version: str
    threadpools: list[ThreadPool] = Field(
        description="the BLAS thread pools of numpy and (when installed) scipy; records made "
        "before modelseal loaded them may list fewer, and OpenMP runtimes too"
    )
    numerics_env: dict[str, str] = Field(
        description="environment variables that change numerics (thread counts, cuBLAS)"
    )
    gpus: list[GpuInfo] = Field(default_factory=list)
    torch: TorchInfo | None = None
    onnxruntime: OnnxRuntimeInfo | None = None
    captured_at: str

    @property
    def blas(self) -> list[ThreadPool]:
        return [pool for pool in self.threadpools if pool.user_api == "blas"]
