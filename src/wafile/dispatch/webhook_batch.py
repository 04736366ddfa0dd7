"""Applying the stored webhook bodies of a worker's concurrent jobs together.

Meta posts one status per webhook unless it is busy, and each body is a job: applied
alone, a body cost a transaction of about ten statements for one status. Here the
bodies whose jobs run while one batch commits are applied together in the next
(`webhooks.process_many`: their statuses recorded and applied with the statements of
one body), with their jobs' completions (dispatch/job_batch.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from wafile.clock import Clock
from wafile.dispatch.job_batch import JobBatcher
from wafile.services.webhooks import webhooks

__all__ = ["WebhookBatcher"]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Body:
    receipt_id: str
    clock: Clock = field(repr=False)


class WebhookBatcher(JobBatcher[_Body]):
    """One per worker process (`WorkerDeps.webhook_bodies`)."""

    def __init__(self) -> None:
        super().__init__(self._write, what="webhook bodies")

    async def apply(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        job_id: str,
        owner: str,
        receipt_id: str,
        completed: Callable[[], None] = lambda: None,
    ) -> None:
        """Apply the stored body and complete its job (`JobBatcher.finish`: `LeaseLost`
        when another worker holds the job now, and nothing of it was applied)."""
        body = _Body(receipt_id=receipt_id, clock=clock)
        await self.finish(sessions, job_id=job_id, owner=owner, work=body, completed=completed)

    @staticmethod
    async def _write(session: AsyncSession, bodies: list[_Body]) -> None:
        receipt_ids = [b.receipt_id for b in bodies]
        await webhooks.process_many(session, receipt_ids, now=bodies[0].clock.now())
