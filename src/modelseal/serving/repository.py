"""Every model a server serves, by name, each one ``ModelServer`` with its own state machine,
batcher, verification and metrics; and the remote seals still on their way (``SealFetch``).

A server serves one seal today; the Open Inference Protocol's repository extension (several
seals, load and unload) adds entries here without touching the routes, which already name
the model. A fetched seal's name is known only once its manifest has arrived: until then a
request naming any model not served yet gets 503 (it may be the one on its way), not 404.
The server is live when every model is, and ready when every model is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Protocol

from modelseal.errors import NotAcceptingError, SealError, UnknownModelError, UsageError
from modelseal.serving.config import ServeConfig
from modelseal.serving.core import ModelServer
from modelseal.serving.fetching import SealFetch
from modelseal.serving.metrics import ServerMetrics


class Peers(Protocol):
    """The other worker processes serving beside this one (``workers``)."""

    def publish(self, ready: bool) -> None:
        """Tell them whether this worker is ready."""

    def readiness(self) -> tuple[bool, str]:
        """Whether every worker (this one as last published) is ready, and why not."""


class ModelRepository:
    """The models of one server, keyed by model name, and the fetches that will add more;
    with ``peers``, one worker of several whose readiness is the pod's."""

    def __init__(
        self,
        models: Sequence[ModelServer] = (),
        fetches: Sequence[SealFetch] = (),
        peers: Peers | None = None,
    ) -> None:
        if not models and not fetches:
            raise UsageError("a server needs at least one model to serve")
        self._models: dict[str, ModelServer] = {}
        for model in models:
            self._add(model)
        self._fetches = list(fetches)
        self._first: ModelServer | SealFetch = models[0] if models else fetches[0]
        self.config: ServeConfig = self._first.config
        """The server's settings (every model is served under the same ones today)."""
        self.draining = False
        """Set by SIGTERM: every response closes its connection from then on."""
        self.peers = peers

    def __iter__(self) -> Iterator[ModelServer]:
        return iter(self._models.values())

    @property
    def default(self) -> ModelServer:
        """The model ``/predict``, ``/health``, ``/seal`` and ``/openapi.json`` are about;
        ``NotAcceptingError`` (503) while it is still being fetched, or its fetch failed."""
        first = self._first
        if isinstance(first, ModelServer):
            return first
        if first.model is None:
            raise first.not_ready()
        return first.model

    @property
    def default_fetch(self) -> SealFetch | None:
        """The fetch of the default model, when it is (or was) a remote seal."""
        return self._first if isinstance(self._first, SealFetch) else None

    def model(self, name: str, version: str | None = None) -> ModelServer:
        """The model served as ``name`` (and ``version`` when given); else ``UnknownModelError``,
        or ``NotAcceptingError`` while a seal that may be that model is still being fetched."""
        model = self._models.get(name)
        if model is None:
            unsettled = [fetch.reason() for fetch in self._fetches if fetch.model is None]
            if unsettled:
                raise NotAcceptingError(
                    f"model {name!r} is not known yet: this server is "
                    f"{'; '.join(unsettled)}. Retry once /v2/health/ready answers 200"
                )
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

    @property
    def metrics(self) -> list[ServerMetrics]:
        """The metrics of every model, served or still being fetched, each once."""
        found = [fetch.metrics for fetch in self._fetches] + [model.metrics for model in self]
        return list({id(metrics): metrics for metrics in found}.values())

    def _add(self, model: ModelServer) -> None:
        if model.seal.name in self._models:
            raise UsageError(f"two seals are named {model.seal.name!r}; names must differ")
        self._models[model.seal.name] = model

    # --- lifecycle, fanned out to every model -----------------------------------------------

    def begin_startup(self) -> None:
        for model in self:
            model.begin_startup()
        for fetch in self._fetches:
            fetch.begin(arrived=self._add)

    def begin_drain(self) -> None:
        self.draining = True
        for model in self:
            model.begin_drain()
        for fetch in self._fetches:
            fetch.begin_drain()

    async def finish_drain(self) -> None:
        await asyncio.gather(
            *(model.finish_drain() for model in self),
            *(fetch.finish_drain() for fetch in self._fetches),
        )

    @property
    def was_ready(self) -> bool:
        """Whether any model ever turned ready (only then can there be traffic to drain)."""
        return any(model.was_ready for model in self)

    @property
    def fetch_failure(self) -> SealError | None:
        """Why a remote seal could not be fetched (and so will never be served), else None."""
        return next((f.failure for f in self._fetches if f.failure is not None), None)

    @property
    def fetch_stuck(self) -> bool:
        """Whether a drain gave up waiting for a fetch to stop (a read stuck on the network)."""
        return any(fetch.stuck for fetch in self._fetches)

    async def settled(self) -> SealError | None:
        """Wait until every fetch and every model's start-up has ended; the first failure."""
        for fetch in self._fetches:
            await fetch.ended.wait()
        for model in self:
            await model.settled.wait()
        failure = self.fetch_failure
        if failure is not None:
            return failure
        return next((m.startup_failure for m in self if m.startup_failure is not None), None)

    # --- health of the whole server ---------------------------------------------------------

    def liveness(self) -> tuple[bool, str]:
        for model in self:
            ok, reason = model.liveness()
            if not ok:
                return False, reason
        return True, "alive"

    async def readiness(self) -> tuple[bool, str]:
        for fetch in self._fetches:
            if fetch.model is None:
                return False, fetch.reason()
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
            ready = all(model.health.ready for model in self) and all(
                fetch.model is not None for fetch in self._fetches
            )
            self.peers.publish(ready)
