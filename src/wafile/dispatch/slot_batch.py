"""Send slots that a worker's concurrent jobs ask of one sender, taken in one statement.

A send slot (the sender's messages-per-second limit, `services/rate_limits.py`) was a
statement of its own for every message, the commonest statement a worker ran. Slots
asked for while a sender's statement is under way wait for it, then go together in the
next one (`reserve_all`), which takes them all when all are in reach. When they are
not (the sender is at its limit), they are taken one by one, so that each is granted or
refused exactly as it would have been alone, in the order asked. As with
`db.group_commit`, nothing waits for a batch to fill: a slot asked for when no
statement is under way goes at once.

Statements run with each committing on its own (`db.engine.autocommit`): the sender's
row stays locked only for the statement, never across a job's HTTP call.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from wafile.clock import Clock
from wafile.core.senders import Sender, SmsSender
from wafile.db.engine import autocommit
from wafile.services.rate_limits import SendSlot, most_together, rate_limits

__all__ = ["SlotBatcher"]


class SlotBatcher:
    """One per worker process (`WorkerDeps.send_slots`); batches are per sender."""

    def __init__(self) -> None:
        self._pending: dict[str, list[asyncio.Future[SendSlot]]] = {}
        self._runners: dict[str, asyncio.Task[None]] = {}
        self.statements = 0  # slot-taking statements run, for tests and logs

    async def reserve(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, sender: Sender | SmsSender
    ) -> SendSlot:
        """A slot from `sender`'s bucket (see `RateLimitService.reserve`)."""
        slot: asyncio.Future[SendSlot] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(sender.id, []).append(slot)
        runner = self._runners.get(sender.id)
        if runner is None or runner.done():
            self._runners[sender.id] = asyncio.create_task(
                self._run(sessions, clock, sender), name=f"send slots {sender.name}"
            )
        return await slot

    async def _run(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, sender: Sender | SmsSender
    ) -> None:
        waiting = self._pending.get(sender.id)
        while waiting:
            batch = waiting[: most_together(sender)]
            del waiting[: len(batch)]
            try:
                await self._take(sessions, clock, sender, batch)
            except Exception as exc:  # the callers of this batch see it
                for slot in batch:
                    if not slot.done():
                        slot.set_exception(exc)
        # Nothing awaited since the last look: no slot can be asked for in between.
        self._pending.pop(sender.id, None)
        self._runners.pop(sender.id, None)  # a removed sender leaves nothing behind

    async def _take(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        sender: Sender | SmsSender,
        batch: list[asyncio.Future[SendSlot]],
    ) -> None:
        async with autocommit(sessions) as session:
            together = None
            if len(batch) > 1:
                self.statements += 1
                together = await rate_limits.reserve_all(
                    session, sender, len(batch), now=clock.now()
                )
            if together is not None:
                _settle(batch, together)
                return
            for slot in batch:  # one by one: each granted or refused as alone
                self.statements += 1
                _settle([slot], [await rate_limits.reserve(session, sender, now=clock.now())])


def _settle(waiting: list[asyncio.Future[SendSlot]], slots: list[SendSlot]) -> None:
    for slot, got in zip(waiting, slots, strict=True):
        if not slot.done():  # its job was cancelled (a stopping worker): the slot is lost
            slot.set_result(got)
