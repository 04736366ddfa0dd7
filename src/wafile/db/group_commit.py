"""Group commit: writes that concurrent callers would each commit alone, committed in
one transaction.

Every transaction costs round trips of its own (BEGIN, COMMIT, and on SQLite a disk
flush), and a busy process runs dozens of small ones at once: accepting messages,
recording sends. Callers `submit` an item and wait; the items submitted while a
commit is under way wait for it to end, then go together in the next one. Nothing
waits for a batch to fill: an item that finds no commit under way goes at once.

`write(session, items)` writes a batch in the transaction it is given and returns one
result per item, in order; a result that is an exception is raised to that item's
caller alone (the others commit). A batch that fails as a whole is written again one
item at a time, so one bad item fails only its own caller.

The transaction is the group's: the caller that submits gives up owning its own, which
is the point. Results reach callers only after the commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from wafile.db.engine import transaction

__all__ = ["MAX_BATCH", "GroupCommit"]

log = logging.getLogger(__name__)
MAX_BATCH: Final = 64  # items per transaction: bounds statement sizes and the locks held

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        write: Callable[[AsyncSession, list[T]], Awaitable[list[R | Exception]]],
        *,
        what: str,
        max_batch: int = MAX_BATCH,
        keys: Callable[[T], set[str]] | None = None,
    ) -> None:
        self._write = write
        self._what = what  # for logs: "sends", "messages"
        self._max_batch = max_batch
        # Items whose keys meet (two jobs of one callback delivery) never share a
        # batch: the later one waits for the next.
        self._keys = keys
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._runner: asyncio.Task[None] | None = None
        self.commits = 0  # transactions committed, for tests and logs

    async def submit(self, sessions: async_sessionmaker[AsyncSession], item: T) -> R:
        """Write the item with whatever else is submitted meanwhile; its result once
        committed, or its exception."""
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(sessions), name=f"commit {self._what}")
        return await done

    async def _run(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        while self._pending:
            batch = self._next_batch()
            try:
                results = await self._commit(sessions, [item for item, _ in batch])
            except Exception as exc:  # each alone below
                if len(batch) == 1:
                    _settle(batch[0][1], exc)
                    continue
                log.warning(
                    "%d %s not written together (%s): one by one", len(batch), self._what, exc
                )
                for item, done in batch:
                    try:
                        [result] = await self._commit(sessions, [item])
                    except Exception as one_exc:  # that caller's own failure
                        _settle(done, one_exc)
                    else:
                        _settle(done, result)
                continue
            for (_, done), result in zip(batch, results, strict=True):
                _settle(done, result)

    def _next_batch(self) -> list[tuple[T, asyncio.Future[R]]]:
        if self._keys is None:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            return batch
        batch, left, taken = [], [], set[str]()
        for pending in self._pending:
            keys = self._keys(pending[0])
            if len(batch) < self._max_batch and not keys & taken:
                batch.append(pending)
                taken |= keys
            else:
                left.append(pending)
        self._pending = left
        return batch

    async def _commit(
        self, sessions: async_sessionmaker[AsyncSession], items: list[T]
    ) -> list[R | Exception]:
        async with transaction(sessions) as session:
            results = await self._write(session, items)
        self.commits += 1
        return results


def _settle(done: asyncio.Future[R], result: R | Exception) -> None:
    if done.done():  # its caller was cancelled (a request dropped, a worker stopping)
        return
    if isinstance(result, Exception):
        done.set_exception(result)
    else:
        done.set_result(result)
