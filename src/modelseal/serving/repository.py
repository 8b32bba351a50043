"""Every model a server serves, by name, each one ``ModelServer`` with its own state machine,
batcher, verification and metrics.

A server serves one seal today; the Open Inference Protocol's repository extension (several
seals, load and unload) adds entries here without touching the routes, which already name
the model. The server is live when every model is, and ready when every model is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Protocol

from modelseal.errors import SealError, UnknownModelError, UsageError
from modelseal.serving.core import ModelServer


class Peers(Protocol):
    """The other worker processes serving beside this one (``workers``)."""

    def publish(self, ready: bool) -> None:
        """Tell them whether this worker is ready."""

    def readiness(self) -> tuple[bool, str]:
        """Whether every worker (this one as last published) is ready, and why not."""


class ModelRepository:
    """The models of one server, keyed by model name; with ``peers``, one worker of several
    whose readiness is the pod's."""

    def __init__(self, models: Sequence[ModelServer], peers: Peers | None = None) -> None:
        if not models:
            raise UsageError("a server needs at least one model to serve")
        self._models: dict[str, ModelServer] = {}
        for model in models:
            if model.seal.name in self._models:
                raise UsageError(f"two seals are named {model.seal.name!r}; names must differ")
            self._models[model.seal.name] = model
        self.default = models[0]
        """The model ``/predict``, ``/health``, ``/seal`` and ``/openapi.json`` are about."""
        self.draining = False
        """Set by SIGTERM: every response closes its connection from then on."""
        self.peers = peers

    def __iter__(self) -> Iterator[ModelServer]:
        return iter(self._models.values())

    def model(self, name: str, version: str | None = None) -> ModelServer:
        """The model served as ``name`` (and ``version`` when given); else ``UnknownModelError``."""
        model = self._models.get(name)
        if model is None:
            served = ", ".join(repr(known) for known in self._models)
            raise UnknownModelError(
                f"model {name!r} is not served here; this server serves {served}"
            )
        if version is not None and version != model.seal.version:
            raise UnknownModelError(
                f"model {name!r} has no version {version!r}; this server serves version "
                f"{model.seal.version!r}"
            )
        return model

    # --- lifecycle, fanned out to every model -----------------------------------------------

    def begin_startup(self) -> None:
        for model in self:
            model.begin_startup()

    def begin_drain(self) -> None:
        self.draining = True
        for model in self:
            model.begin_drain()

    async def finish_drain(self) -> None:
        await asyncio.gather(*(model.finish_drain() for model in self))

    @property
    def was_ready(self) -> bool:
        """Whether any model ever turned ready (only then can there be traffic to drain)."""
        return any(model.was_ready for model in self)

    async def settled(self) -> SealError | None:
        """Wait until every model's start-up has ended; the first failure, if any."""
        for model in self:
            await model.settled.wait()
        return next((m.startup_failure for m in self if m.startup_failure is not None), None)

    # --- health of the whole server ---------------------------------------------------------

    def liveness(self) -> tuple[bool, str]:
        for model in self:
            ok, reason = model.liveness()
            if not ok:
                return False, reason
        return True, "alive"

    async def readiness(self) -> tuple[bool, str]:
        for model in self:
            ok, reason = await model.readiness()
            if not ok:
                return False, reason
        if self.peers is not None:
            self.peers.publish(True)
            return self.peers.readiness()
        return True, "the inference probe passed"

    def publish_readiness(self) -> None:
        """Tell the peers whether this worker is ready (as of the last inference probe)."""
        if self.peers is not None:
            self.peers.publish(all(model.health.ready for model in self))
