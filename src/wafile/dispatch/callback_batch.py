"""Recording the attempts of a worker's concurrent callback jobs together.

A delivery job records its attempts (and the next attempt of a failed one) together
with its completion, so that a crash between the two cannot lose them. A worker
runs dozens of delivery jobs at once, and each recording was a transaction of its
own (BEGIN, the deliveries' UPDATE, the attempts' INSERT, the job's DELETE, COMMIT).
Here the jobs whose requests end while a recording is under way wait for it to end,
then are recorded in one transaction with their jobs' completions: the statements
of one job for all of them (services/callbacks.py, `record`). Nothing waits for a
batch to fill: a job that finds no recording under way is recorded at once.

Two jobs of one delivery (a manual redelivery beside its automatic attempt) never
share a batch: an attempt's number is the count its UPDATE left on the row.

A batch that fails (a database error) is recorded again one job at a time, so one
bad job fails only itself, and the queue retries it (its receiver then gets the
events again: receivers deduplicate by `webhook-id`). A job another worker took over
meanwhile is not recorded: its handler gets `LeaseLost`, as the worker would have
raised.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from wafile.clock import Clock
from wafile.config import Settings
from wafile.core.jobs import LeaseLost
from wafile.db.engine import transaction
from wafile.db.jobs import JobRepository
from wafile.services.callbacks import JobAttempts, callbacks

__all__ = ["MAX_BATCH", "CallbackBatcher"]

log = logging.getLogger(__name__)
MAX_BATCH: Final = 64  # jobs per transaction: bounds the statements' sizes and locks held
_jitter = random.Random()  # noqa: S311 - spreads retries, not a secret


@dataclass(kw_only=True, slots=True)
class _Pending:
    job_id: str
    owner: str
    outcome: JobAttempts
    completed: Callable[[], None] = field(repr=False)
    done: asyncio.Future[None] = field(repr=False)

    @property
    def deliveries(self) -> set[str]:
        return {prepared.delivery.id for prepared, _ in self.outcome.attempts}


class CallbackBatcher:
    """One per worker process (`WorkerDeps.callback_records`)."""

    def __init__(self) -> None:
        self._pending: list[_Pending] = []
        self._recorder: asyncio.Task[None] | None = None
        self.batches = 0  # transactions that recorded jobs, for tests and logs

    async def record(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        settings: Settings,
        *,
        job_id: str,
        owner: str,
        outcome: JobAttempts,
        completed: Callable[[], None] = lambda: None,
    ) -> None:
        """Record the job's attempts and complete it (deleted while `owner` holds it).

        Returns once committed; raises `LeaseLost` when another worker holds the job
        now (nothing of it was recorded), or what recording it alone raised.
        `completed` is called as soon as the commit made the job complete."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(
            _Pending(job_id=job_id, owner=owner, outcome=outcome, completed=completed, done=done)
        )
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_pending(sessions, clock, settings))
        await done

    def _next_batch(self) -> list[_Pending]:
        """Up to MAX_BATCH pending jobs, no two with a delivery in common (the later
        waits for the next batch)."""
        batch: list[_Pending] = []
        left: list[_Pending] = []
        taken: set[str] = set()
        for pending in self._pending:
            ids = pending.deliveries
            if len(batch) < MAX_BATCH and not ids & taken:
                batch.append(pending)
                taken |= ids
            else:
                left.append(pending)
        self._pending = left
        return batch

    async def _record_pending(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings
    ) -> None:
        while self._pending:
            batch = self._next_batch()
            try:
                await self._commit(sessions, clock, settings, batch)
            except Exception as exc:  # each is tried alone below
                if len(batch) > 1:
                    log.warning(
                        "%d callback jobs not recorded together (%s): one by one", len(batch), exc
                    )
                    for one in batch:
                        await self._alone(sessions, clock, settings, one)
                else:
                    _settle(batch[0], exc)

    async def _alone(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        settings: Settings,
        one: _Pending,
    ) -> None:
        try:
            await self._commit(sessions, clock, settings, [one])
        except Exception as exc:  # the job's own failure, for its handler
            _settle(one, exc)

    async def _commit(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        settings: Settings,
        batch: list[_Pending],
    ) -> None:
        async with transaction(sessions) as session:
            held = await JobRepository(session).complete_many([(p.job_id, p.owner) for p in batch])
            await callbacks.record(
                session,
                [p.outcome for p in batch if p.job_id in held],
                # A vendor format's own schedule wins over this (Prepared.retry_schedule).
                schedule=settings.callback_retry_schedule,
                failing_after=timedelta(seconds=settings.callback_failing_after_seconds),
                rand=_jitter.random,
                now=clock.now(),
            )
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
