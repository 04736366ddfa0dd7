"""Send slots: each sender's messages-per-second limit, held across all workers.

Every `/messages` POST to Meta takes a slot first (uploads are not messages). The
bucket is a database row (`db/rate_limits.py`), so the limit holds for any number of
workers on any number of machines. Call `reserve` in a transaction of its own that
commits at once, or with each statement committing alone (`db.engine.autocommit`):
the sender's row is locked until the commit. Its second statement (a refusal's next
try) reads the row afresh, so it needs no transaction shared with the first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.rate_limit import (
    MAX_WAIT,
    Granted,
    SendRate,
    from_micros,
    micros,
    most_at_once,
)
from wafile.core.senders import Sender, SmsSender
from wafile.db.rate_limits import SendRateRepository

__all__ = ["RateLimitService", "SendSlot", "most_together", "mps_of", "rate_limits"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class SendSlot:
    """Granted: send at `at` (now, or up to the wait allowed later), at most `grace`
    late: a send held up longer would go together with the next ones, so it gives the
    slot up and takes another. Refused: nothing was taken; try again at `at`."""

    granted: bool
    at: datetime
    grace: timedelta = timedelta(0)


class RateLimitService:
    async def reserve(
        self,
        session: AsyncSession,
        sender: Sender | SmsSender,
        *,
        now: datetime,
        max_wait: timedelta = MAX_WAIT,
    ) -> SendSlot:
        """A slot for one message from `sender`, at most `max_wait` after `now`.

        `now` is the caller's clock, not the database's. Machines whose clocks differ
        by d still take their slots from one schedule that keeps the limit; each sends
        at its own reading of the slot, so in real time the limit can be exceeded by
        at most d * mps in a window, and a clock running ahead only makes the others
        wait. Keep the clocks synchronised (NTP: milliseconds).
        """
        rate = SendRate(mps=mps_of(sender))
        decision = await SendRateRepository(session).take(
            sender.id, now=micros(now), rate=rate, max_wait=micros(max_wait)
        )
        if isinstance(decision, Granted):
            at = from_micros(decision.at)
            log.debug("sender %s: send slot granted, %.3f s ahead", sender.name, _ahead(at, now))
            grace = timedelta(microseconds=rate.late_limit)
            return SendSlot(granted=True, at=at, grace=grace)
        at = from_micros(decision.retry_at)
        log.debug("sender %s: send slot refused, back in %.3f s", sender.name, _ahead(at, now))
        return SendSlot(granted=False, at=at)

    async def reserve_all(
        self,
        session: AsyncSession,
        sender: Sender | SmsSender,
        count: int,
        *,
        now: datetime,
        max_wait: timedelta = MAX_WAIT,
    ) -> list[SendSlot] | None:
        """`count` slots in one statement, in order, as `count` calls of `reserve`
        would grant them; None when they would not all be granted (nothing is taken:
        reserve them one by one then). At most `most_together(sender)`."""
        rate = SendRate(mps=mps_of(sender))
        taken = await SendRateRepository(session).take_all(
            sender.id, count, now=micros(now), rate=rate, max_wait=micros(max_wait)
        )
        if taken is None:
            log.debug("sender %s: %d send slots not all in reach", sender.name, count)
            return None
        grace = timedelta(microseconds=rate.late_limit)
        return [SendSlot(granted=True, at=from_micros(g.at), grace=grace) for g in taken]


def most_together(sender: Sender | SmsSender, max_wait: timedelta = MAX_WAIT) -> int:
    """The most slots `reserve_all` takes at once for `sender`."""
    return most_at_once(SendRate(mps=mps_of(sender)), micros(max_wait))


def _ahead(at: datetime, now: datetime) -> float:
    return (at - now).total_seconds()


rate_limits = RateLimitService()


def mps_of(sender: Sender | SmsSender) -> int:
    """The sender's messages-per-second limit, whatever its channel."""
    return sender.sms.mps if isinstance(sender, SmsSender) else sender.whatsapp.mps
