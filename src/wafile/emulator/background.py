"""An emulator's background work: its tasks and its one HTTP client, owned by the
event loop that serves it.

Timelines and webhook or callback posts run as tasks created lazily on the serving
loop (a mounted app gets no lifespan events to start them). Tests and hosts may
reset or close the emulator from another thread's loop, so cancelling and closing
go back to the loop that owns the tasks and the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import httpx

__all__ = ["IN_FLIGHT_MAX", "Background", "GatedTransport"]

log = logging.getLogger(__name__)
# Requests an emulator's client has in its connection pool at once (httpx's default
# pool holds 100 connections); the rest wait their turn outside it.
IN_FLIGHT_MAX = 100


class GatedTransport(httpx.AsyncBaseTransport):
    """At most `limit` requests inside the wrapped transport at once.

    httpcore's pool scans its whole queue of waiting requests each time a request
    arrives or a connection frees. A burst of thousands of webhooks (a benchmark's
    statuses) queued there made that scan 80% of the WhatsApp emulator's CPU
    (profiled), so webhooks left late and the benchmark measured the emulator, not
    wafile. Waiting on a semaphore instead costs next to nothing. The gate is held
    until the response headers are in; a request let in while every connection is
    still busy with a body waits in the pool, so the pool's queue stays under `limit`.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int = IN_FLIGHT_MAX) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._inner = inner
        self._gate = asyncio.Semaphore(limit)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with self._gate:
            return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class Background:
    def __init__(
        self, *, name: str, user_agent: str, transport: httpx.AsyncBaseTransport | None
    ) -> None:
        self._name = name
        self._user_agent = user_agent
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        """Tasks still running."""
        return len(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        self._loop = asyncio.get_running_loop()
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s task failed", self._name, exc_info=task.exception())

    def http(self) -> httpx.AsyncClient:
        # The client belongs to the loop it was made on; aclose() must close it there.
        self._loop = asyncio.get_running_loop()
        if self._client is None:
            inner = self._transport or httpx.AsyncHTTPTransport()
            self._client = httpx.AsyncClient(
                transport=GatedTransport(inner), headers={"User-Agent": self._user_agent}
            )
        return self._client

    def cancel(self) -> None:
        """Cancel every task, from any thread (a reset)."""
        loop = self._loop
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if loop is not None and loop is not current and loop.is_running():
            for task in list(self._tasks):
                loop.call_soon_threadsafe(task.cancel)
        elif loop is None or loop is current or not loop.is_closed():
            for task in list(self._tasks):
                task.cancel()
        else:
            self._tasks.clear()  # tasks of a closed loop are gone already

    async def aclose(self) -> None:
        """Cancel the tasks and close the HTTP client (from any loop)."""
        loop = self._loop
        current = asyncio.get_running_loop()
        if loop is not None and loop is not current:
            if loop.is_running():
                # The tasks and the client belong to the serving loop: close them there.
                future = asyncio.run_coroutine_threadsafe(self._aclose(), loop)
                await asyncio.wrap_future(future)
                return
            # That loop has stopped: its tasks can no longer run, and its client's
            # connections went with it.
            self._tasks.clear()
            self._client = None
        await self._aclose()
        self._loop = None

    async def _aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
