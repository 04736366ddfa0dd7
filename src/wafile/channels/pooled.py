"""What every client that owns one pooled httpx client shares (the provider channels,
the remote-file fetcher, the CLI's API client): used as an async context manager and
closed with whatever made it. And the failure every provider client raises."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import httpx

__all__ = ["PooledClient", "ProviderFailure"]


class ProviderFailure(Exception):
    """A provider's API refused a call or gave no answer (GraphFailure, TwilioFailure).

    An expected outcome, classified by the caller: a job it escapes is retried by the
    queue and logged without a traceback, like wafile's own errors."""


class PooledClient:
    """Base of those clients; a subclass builds `self._http` in its `__init__`."""

    _http: httpx.AsyncClient

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
