"""Waiting for a send slot: the sender's messages-per-second limit, in a send job.

Right before the `/messages` POST (an upload is not a message), the job takes a slot
from the sender's bucket in a statement committed at once, with the slots the worker's
other jobs ask for meanwhile (dispatch/slot_batch.py): never in the job's `ctx.session`,
which stays open until the job ends and would hold the sender's row locked through
the HTTP call, serialising every worker. A slot at most
`MAX_WAIT` away is slept for (the job keeps its lease meanwhile); a later one is not
taken, and the job goes back to the queue until its turn (`RetryLater`), freeing the
worker's slot for other jobs. A job that wakes too late for its slot (the process
stalled) takes a new one, once, rather than send together with the slots after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final

from wafile.db.engine import transaction
from wafile.dispatch.jobs import JobContext, RetryLater
from wafile.services.messages import SendPlan, SmsSendPlan, messages
from wafile.services.rate_limits import mps_of

__all__ = ["wait_for_send_slot"]

log = logging.getLogger(__name__)

# Slots a job takes at most: a second one when it woke too late for the first (its
# process stalled); late again, it sends anyway rather than lose more slots.
SLOTS_MAX: Final = 2


async def wait_for_send_slot(
    ctx: JobContext, plan: SendPlan | SmsSendPlan, uploaded: Sequence[str] = ()
) -> None:
    """Return at the message's slot; `RetryLater` when it is too far off.

    `uploaded` holds Meta's media id when this run uploaded the file: a job sent back
    to the queue records it first, so its next run does not upload the file again.
    """
    sender, clock = plan.sender, ctx.deps.clock
    for _ in range(SLOTS_MAX):
        now = clock.now()  # not ctx.now: the upload may have taken a while
        slot = await ctx.deps.send_slots.reserve(ctx.deps.sessions, clock, sender)
        if not slot.granted:
            if uploaded:
                async with transaction(ctx.deps.sessions) as session:
                    await messages.remember_upload(
                        session,
                        sender_id=sender.id,
                        sha256=plan.media.sha256,
                        media_id=uploaded[0],
                        now=now,
                    )
            limit = f"its limit of {mps_of(sender)} messages a second"
            # Waiting is not failing: the attempt is given back (counts=False).
            raise RetryLater(slot.at - now, f"sender {sender.name} is at {limit}", counts=False)
        # A slot that passed while this job waited for the row lock is due at once,
        # not missed: it is no older than that wait.
        granted_at = clock.now()
        due = max(slot.at, granted_at)
        wait = (due - granted_at).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        late = clock.now() - due
        if late <= slot.grace:
            log.debug(
                "sender %s: sending, %.3f s after the slot", sender.name, late.total_seconds()
            )
            return
    log.debug("sender %s: sending, late for a second slot too", sender.name)
