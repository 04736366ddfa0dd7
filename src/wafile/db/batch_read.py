"""Batched reads: lookups by key that concurrent callers would each make alone, made
in one query.

A busy process makes the same small read dozens of times at once: the file each
accepted message names, the message each send job is about. Each read is a round trip
and a statement for the database to run, and on two cores that work, not the waiting,
is what limits throughput. Callers `get` a key and wait; the keys asked for while a
query is under way wait for it to end, then go together in the next one (a key asked
for twice goes once). As with `GroupCommit`, nothing waits for a batch to fill: a key
that finds no query under way goes at once, so a quiet process reads as before.

`read(session, keys)` returns the rows it found, by key; a key it did not find is None
to its callers. A failing query fails the callers of that batch alone. Reads run with
each statement committing on its own (`db.engine.autocommit`): they share no snapshot
with anything, which is what the callers' own one-statement reads had too.

A batch takes a pooled connection of its own. Call `get` before the caller's own
session has run a statement: callers that each held a connection while waiting for a
batch could together hold the whole pool, and the batch would wait for them for ever.
PostgreSQL only (`batches`): SQLite has a single pooled connection, and there a read
is a function call, not a round trip, so each caller reads in its own session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from wafile.db.engine import autocommit
from wafile.db.group_commit import MAX_BATCH

__all__ = ["BatchRead", "batches"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def batches(sessions: async_sessionmaker[AsyncSession]) -> bool:
    """Whether reads through these sessions go through a `BatchRead` (PostgreSQL)."""
    engine: AsyncEngine = sessions.kw["bind"]
    return engine.dialect.name == "postgresql"


class BatchRead(Generic[K, V]):
    def __init__(
        self,
        read: Callable[[AsyncSession, list[K]], Awaitable[Mapping[K, V]]],
        *,
        what: str,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._read = read
        self._what = what  # names the runner task: "media", "messages to send"
        self._max_batch = max_batch
        self._pending: dict[K, list[asyncio.Future[V | None]]] = {}
        self._runner: asyncio.Task[None] | None = None
        self.queries = 0  # queries made, for tests and logs

    async def get(self, sessions: async_sessionmaker[AsyncSession], key: K) -> V | None:
        """The row for `key`, read with whatever else is asked for meanwhile."""
        found: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append(found)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(sessions), name=f"read {self._what}")
        return await found

    async def _run(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        while self._pending:
            keys = list(self._pending)[: self._max_batch]
            waiting = {key: self._pending.pop(key) for key in keys}
            try:
                async with autocommit(sessions) as session:
                    rows = await self._read(session, keys)
                self.queries += 1
            except Exception as exc:  # the callers of this batch see it; later ones retry
                for futures in waiting.values():
                    for found in futures:
                        if not found.done():  # its caller was cancelled
                            found.set_exception(exc)
                continue
            for key, futures in waiting.items():
                for found in futures:
                    if not found.done():
                        found.set_result(rows.get(key))
