"""What every provider client shares: one pooled httpx client per process, used as an
async context manager and closed with the worker that made it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import httpx

__all__ = ["PooledClient"]


class PooledClient:
    """Base of the channel clients; a subclass builds `self._http` in its `__init__`."""

    _http: httpx.AsyncClient

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
