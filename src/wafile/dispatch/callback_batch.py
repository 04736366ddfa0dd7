"""Recording the attempts of a worker's concurrent callback jobs together.

A delivery job records its attempts (and the next attempt of a failed one) together
with its completion, so that a crash between the two cannot lose them. A worker
runs dozens of delivery jobs at once, and each recording was a transaction of its
own (BEGIN, the deliveries' UPDATE, the attempts' INSERT, the job's DELETE, COMMIT).
Here the jobs whose requests end while one recording commits go together in the
next, with their jobs' completions (db/group_commit.py): the statements of one job
for all of them (services/callbacks.py, `record`).

Two jobs of one delivery (a manual redelivery beside its automatic attempt) never
share a batch: an attempt's number is the count its UPDATE left on the row.

A batch that fails (a database error) is recorded again one job at a time, so one
bad job fails only itself, and the queue retries it (its receiver then gets the
events again: receivers deduplicate by `webhook-id`). A job another worker took over
meanwhile is not recorded: its handler gets `LeaseLost`, as the worker would have
raised.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from wafile.clock import Clock
from wafile.config import Settings
from wafile.dispatch.job_batch import JobBatcher
from wafile.services.callbacks import JobAttempts, callbacks

__all__ = ["CallbackBatcher"]

_jitter = random.Random()  # noqa: S311 - spreads retries, not a secret


@dataclass(frozen=True, kw_only=True, slots=True)
class _Outcome:
    outcome: JobAttempts
    clock: Clock = field(repr=False)
    settings: Settings = field(repr=False)


def _deliveries(finished: _Outcome) -> set[str]:
    return {prepared.delivery.id for prepared, _ in finished.outcome.attempts}


class CallbackBatcher(JobBatcher[_Outcome]):
    """One per worker process (`WorkerDeps.callback_records`)."""

    def __init__(self) -> None:
        super().__init__(self._write, what="callback jobs", keys=_deliveries)

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
        """Record the job's attempts and complete it (`JobBatcher.finish`: `LeaseLost`
        when another worker holds the job now, and nothing of it was recorded)."""
        work = _Outcome(outcome=outcome, clock=clock, settings=settings)
        await self.finish(sessions, job_id=job_id, owner=owner, work=work, completed=completed)

    @staticmethod
    async def _write(session: AsyncSession, done: list[_Outcome]) -> None:
        settings = done[0].settings
        await callbacks.record(
            session,
            [d.outcome for d in done],
            # A vendor format's own schedule wins over this (Prepared.retry_schedule).
            schedule=settings.callback_retry_schedule,
            failing_after=timedelta(seconds=settings.callback_failing_after_seconds),
            rand=_jitter.random,
            now=done[0].clock.now(),
        )
