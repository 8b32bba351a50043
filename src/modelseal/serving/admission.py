"""A request held by its model from before its body is read until it is answered, so that a
full queue refuses new requests before any work is spent on them."""

from __future__ import annotations

from typing import Protocol

from modelseal.errors import SealError


class Admitting(Protocol):
    """What admits requests: a served model (``ModelServer``)."""

    admitted_count: int
    """Requests held now: read, decoded, queued or running."""

    def refusal(self) -> SealError | None:
        """Why a new request would be refused now, or None."""
        ...


class Admission:
    """One request held by its model (a class: cheaper than a generator on every request)."""

    __slots__ = ("model",)

    def __init__(self, model: Admitting) -> None:
        self.model = model

    async def __aenter__(self) -> None:
        refusal = self.model.refusal()
        if refusal is not None:
            raise refusal
        self.model.admitted_count += 1

    async def __aexit__(self, *_exc: object) -> None:
        self.model.admitted_count -= 1
