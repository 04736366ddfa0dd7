"""Recording the sends of a worker's concurrent send jobs together.

A send Meta accepted is recorded (its provider id and its event, `messages.sent`)
together with its job's completion, so that a crash between the two cannot lose it or
record it twice. A worker runs dozens of sends at once, and each recording was a
transaction of its own of about eight statements; here the sends answered while one
recording commits go together in the next (db/group_commit.py): the statements of one
send for all of them.

A job another worker took over meanwhile is not recorded: its handler gets
`LeaseLost`, as the worker would have raised. A batch that fails is written again one
send at a time, so one bad send fails only its own job, which the queue retries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from wafile.clock import Clock
from wafile.dispatch.job_batch import JobBatcher
from wafile.services.messages import SentRecord, messages

__all__ = ["SentBatcher", "Upload"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Upload:
    """The file this send uploaded to the sender's number (`messages.remember_upload`)."""

    sha256: str
    media_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class _Sent:
    record: SentRecord
    upload: Upload | None
    clock: Clock = field(repr=False)


class SentBatcher(JobBatcher[_Sent]):
    """One per worker process (`WorkerDeps.sent`)."""

    def __init__(self) -> None:
        super().__init__(self._write, what="sends")

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
        """Record the send and complete its job (`JobBatcher.finish`: `LeaseLost` when
        another worker holds the job now, and nothing of it was recorded)."""
        sent = _Sent(record=record, upload=upload, clock=clock)
        await self.finish(sessions, job_id=job_id, owner=owner, work=sent, completed=completed)

    @staticmethod
    async def _write(session: AsyncSession, sends: list[_Sent]) -> None:
        now = sends[0].clock.now()
        for s in sends:
            if s.upload is not None:
                await messages.remember_upload(
                    session,
                    sender_id=s.record.sender_id,
                    sha256=s.upload.sha256,
                    media_id=s.upload.media_id,
                    now=now,
                )
        await messages.sent(session, [s.record for s in sends], now=now)
