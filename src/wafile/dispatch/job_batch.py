"""Completing concurrent jobs of one kind together with what they write.

A job that records its outcome together with its completion cannot lose it or record
it twice when the process dies between the two. A worker runs dozens of jobs at once,
and each recording was a transaction of its own; here the jobs that finish while one
recording commits go together in the next (db/group_commit.py): their rows deleted in
one statement and their writes made by one call of `write`, for all of them.

A job another worker took over meanwhile writes nothing: its handler gets `LeaseLost`,
as the worker would have raised. A batch that fails is written again one job at a
time, so one bad job fails only itself, and the queue retries it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from wafile.core.jobs import LeaseLost
from wafile.db.group_commit import GroupCommit
from wafile.db.jobs import JobRepository

__all__ = ["JobBatcher"]

W = TypeVar("W")


@dataclass(frozen=True, kw_only=True, slots=True)
class _Finished(Generic[W]):
    job_id: str
    owner: str
    work: W
    completed: Callable[[], None] = field(repr=False)


class JobBatcher(Generic[W]):
    """`write(session, works)` writes the work of the jobs still held (never none), in
    the batch's transaction; `keys(work)`: works whose keys meet never share a batch.
    The batchers of sends, webhook bodies and callback attempts subclass it, each
    with a `finish` of its own words."""

    def __init__(
        self,
        write: Callable[[AsyncSession, list[W]], Awaitable[None]],
        *,
        what: str,
        keys: Callable[[W], set[str]] | None = None,
    ) -> None:
        self._write_works = write
        self._keys = keys
        self._group: GroupCommit[_Finished[W], None] = GroupCommit(
            self._complete_and_write, what=what, keys=self._keys_of if keys is not None else None
        )

    @property
    def batches(self) -> int:
        """Transactions that completed jobs, for tests and logs."""
        return self._group.commits

    async def finish(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        job_id: str,
        owner: str,
        work: W,
        completed: Callable[[], None] = lambda: None,
    ) -> None:
        """Write `work` and complete the job (deleted while `owner` holds it).

        Returns once committed; raises `LeaseLost` when another worker holds the job
        now (nothing of it was written), or what writing it alone raised. `completed`
        is called once the job is deleted in the batch's transaction, before this
        returns: the worker's heartbeat must not take the missing row for a lease
        another worker took."""
        finished = _Finished(job_id=job_id, owner=owner, work=work, completed=completed)
        await self._group.submit(sessions, finished)

    def _keys_of(self, finished: _Finished[W]) -> set[str]:
        assert self._keys is not None
        return self._keys(finished.work)

    async def _complete_and_write(
        self, session: AsyncSession, batch: list[_Finished[W]]
    ) -> list[Exception | None]:
        held = await JobRepository(session).complete_many([(f.job_id, f.owner) for f in batch])
        kept = [f for f in batch if f.job_id in held]
        if kept:
            await self._write_works(session, [f.work for f in kept])
        for f in kept:
            f.completed()  # just before the commit: a failing commit fails the handler too
        return [None if f.job_id in held else LeaseLost() for f in batch]
