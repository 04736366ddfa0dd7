"""The `callback.deliver` job: one signed POST of one callback event to one target.

Read the delivery in a short transaction, POST with no transaction open, then record
the attempt (and the next job, or the delivery's end) in the job's own transaction,
together with the job's completion. A crash after the receiver answered but before
the commit sends the event again: receivers deduplicate by `webhook-id`.

Payload: `{"delivery_id", "step"}` for the automatic attempt number `step` of the
retry schedule, or `{"delivery_id", "manual": true}` for a redelivery by hand (one
attempt; it schedules nothing).
"""

from __future__ import annotations

import random
from datetime import timedelta

from wafile.core.callbacks import DeliveryAttempt
from wafile.core.jobs import Job
from wafile.crypto import Sealer
from wafile.db.engine import transaction
from wafile.dispatch.jobs import JobContext, RetryLater
from wafile.services.callbacks import callbacks

__all__ = ["deliver_callback"]

_jitter = random.Random()  # noqa: S311 - spreads retries, not a secret


async def deliver_callback(job: Job, ctx: JobContext) -> None:
    delivery_id = str(job.payload["delivery_id"])
    manual = bool(job.payload.get("manual", False))
    step = int(job.payload.get("step", 1))
    settings = ctx.deps.settings
    async with transaction(ctx.deps.sessions) as session:
        prepared = await callbacks.prepare(
            session,
            Sealer(settings.secret_key),
            delivery_id=delivery_id,
            manual=manual,
            allow_loopback_http=settings.callback_loopback_ok,
            now=ctx.now,
        )
    if prepared is None:
        return
    if prepared.wait_until is not None:
        # Waiting for its turn is not failing: the attempt is given back (counts=False).
        wait = (prepared.wait_until - ctx.now).total_seconds()
        raise RetryLater(wait, "an earlier event of this message goes first", counts=False)
    requested_at = ctx.deps.clock.now()
    if prepared.refused is not None:
        attempt = DeliveryAttempt(
            number=0,
            manual=manual,
            requested_at=requested_at,
            status_code=None,
            error=prepared.refused,
            latency_ms=0,
            response=None,
        )
    else:
        delivery, sign = prepared.delivery, prepared.sign
        signed = (
            sign(delivery.body.encode(), prepared.secret, delivery.event_id, requested_at)
            if sign is not None
            else None
        )
        async with ctx.deps.callback_client() as poster:
            result = await poster.post(
                prepared.url,
                delivery.body,
                event_id=delivery.event_id,
                secret=prepared.secret,
                at=requested_at,
                signed=signed,
            )
        attempt = DeliveryAttempt(
            number=0,  # numbered when recorded
            manual=manual,
            requested_at=requested_at,
            status_code=result.status_code,
            error=result.error,
            latency_ms=result.latency_ms,
            response=result.response,
        )
    await callbacks.record(
        ctx.session,
        prepared=prepared,
        attempt=attempt,
        step=step,
        # The vendor's schedule for a vendor format that has one, else wafile's.
        schedule=(
            prepared.retry_schedule
            if prepared.retry_schedule is not None
            else settings.callback_retry_schedule
        ),
        failing_after=timedelta(seconds=settings.callback_failing_after_seconds),
        rand=_jitter.random(),
        now=ctx.deps.clock.now(),
    )
