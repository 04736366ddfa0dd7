"""Recording the sends of a worker's concurrent send jobs together.

A send Meta accepted is recorded (its provider id and its event, `messages.sent`)
together with its job's completion, so that a crash between the two cannot lose it or
record it twice. A worker runs dozens of sends at once, and each recording was a
transaction of its own of about eight statements. Here the sends whose answers arrive
while a recording is under way wait for it to end, then are recorded in one
transaction with their jobs' completions: the statements of one send for all of them.
Nothing waits for a batch to fill: a send that finds no recording under way is
recorded at once.

A batch that fails (a database error, a send whose message is gone) is recorded again
one send at a time, so one bad send fails only its own job, which the queue retries
as before. A job another worker took over meanwhile is not recorded: its handler gets
`LeaseLost`, as the worker would have raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from wafile.clock import Clock
from wafile.core.jobs import LeaseLost
from wafile.db.engine import transaction
from wafile.db.jobs import JobRepository
from wafile.services.messages import SentRecord, messages

__all__ = ["MAX_BATCH", "SentBatcher", "Upload"]

log = logging.getLogger(__name__)
MAX_BATCH: Final = 64  # sends per transaction: bounds the statements' sizes and the locks held


@dataclass(frozen=True, kw_only=True, slots=True)
class Upload:
    """The file this send uploaded to the sender's number (`messages.remember_upload`)."""

    sha256: str
    media_id: str


@dataclass(kw_only=True, slots=True)
class _Pending:
    job_id: str
    owner: str
    record: SentRecord
    upload: Upload | None
    completed: Callable[[], None] = field(repr=False)
    done: asyncio.Future[None] = field(repr=False)


class SentBatcher:
    """One per worker process (`WorkerDeps.sent`)."""

    def __init__(self) -> None:
        self._pending: list[_Pending] = []
        self._recorder: asyncio.Task[None] | None = None
        self.batches = 0  # transactions that recorded sends, for tests and logs

    async def record(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        job_id: str,
        owner: str,
        record: SentRecord,
        upload: Upload | None = None,
        completed: Callable[[], None] = lambda: None,
    ) -> None:
        """Record the send and complete its job (deleted while `owner` holds it).

        Returns once committed; raises `LeaseLost` when another worker holds the job
        now (nothing of it was recorded), or what recording it alone raised.
        `completed` is called as soon as the commit made the job complete (before this
        returns: the worker's heartbeat must not take the deleted job for a lost one).
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(
            _Pending(
                job_id=job_id,
                owner=owner,
                record=record,
                upload=upload,
                completed=completed,
                done=done,
            )
        )
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_pending(sessions, clock))
        await done

    async def _record_pending(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock
    ) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                await self._commit(sessions, clock, batch)
            except Exception as exc:  # each is tried alone below
                if len(batch) > 1:
                    log.warning("%d sends not recorded together (%s): one by one", len(batch), exc)
                    for one in batch:
                        await self._alone(sessions, clock, one)
                else:
                    _settle(batch[0], exc)

    async def _alone(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, one: _Pending
    ) -> None:
        try:
            await self._commit(sessions, clock, [one])
        except Exception as exc:  # the job's own failure, for its handler
            _settle(one, exc)

    async def _commit(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, batch: list[_Pending]
    ) -> None:
        now = clock.now()
        async with transaction(sessions) as session:
            held = await JobRepository(session).complete_many([(p.job_id, p.owner) for p in batch])
            kept = [p for p in batch if p.job_id in held]
            for p in kept:
                if p.upload is not None:
                    await messages.remember_upload(
                        session,
                        sender_id=p.record.sender_id,
                        sha256=p.upload.sha256,
                        media_id=p.upload.media_id,
                        now=now,
                    )
            await messages.sent(session, [p.record for p in kept], now=now)
        self.batches += 1
        for p in batch:
            if p.job_id in held:
                p.completed()
                _settle(p, None)
            else:
                _settle(p, LeaseLost())


def _settle(pending: _Pending, error: BaseException | None) -> None:
    if pending.done.done():  # its handler was cancelled (the worker is stopping)
        return
    if error is None:
        pending.done.set_result(None)
    else:
        pending.done.set_exception(error)
