"""The `callback.deliver` job: signed POSTs of one message's events to one target.

Read the deliveries (reads only: on PostgreSQL no transaction), POST with no
transaction open, then record the attempts (and the next jobs, or the deliveries'
ends) together with the job's completion, in one transaction with the other delivery
jobs of this worker that finished meanwhile (dispatch/callback_batch.py). A crash
after the receiver answered but before the commit sends the events again: receivers
deduplicate by `webhook-id`.

Payload: `{"delivery_id", "step"}` for the automatic attempt number `step` of the
retry schedule; `{"delivery_ids": [...], "step": 1}` for the first attempts of several
events of one message to one target (made in one transaction), sent one after the
other in sequence order; or `{"delivery_id", "manual": true}` for a redelivery by hand
(one attempt; it schedules nothing).

A job's events go in order: when one fails (and will be retried), the ones after it
are not tried now; they get a job of their own, due just after that one's next attempt
(where they wait their turn as usual, services/callbacks.py).
"""

from __future__ import annotations

from wafile.core.callbacks import DeliveryAttempt
from wafile.core.jobs import Job
from wafile.crypto import sealer_for
from wafile.db.engine import autocommit
from wafile.dispatch.jobs import JobContext, RetryLater
from wafile.services.callbacks import JobAttempts, Prepared, callbacks

__all__ = ["deliver_callback"]


async def deliver_callback(job: Job, ctx: JobContext) -> None:
    raw_ids = job.payload.get("delivery_ids")
    ids = (
        [str(i) for i in raw_ids]
        if isinstance(raw_ids, list)
        else [str(job.payload["delivery_id"])]
    )
    manual = bool(job.payload.get("manual", False))
    step = int(job.payload.get("step", 1))
    settings = ctx.deps.settings
    # Reads (and, at an account's first callback_url delivery, an insert-or-keep of its
    # secret): no transaction needed, which on PostgreSQL saves a BEGIN and a COMMIT.
    async with autocommit(ctx.deps.sessions) as session:
        prepared = await callbacks.prepare(
            session,
            sealer_for(settings.secret_key),
            delivery_ids=ids,
            manual=manual,
            allow_loopback_http=settings.callback_loopback_ok,
            now=ctx.now,
        )
    if not prepared:
        return
    if prepared[0].wait_until is not None:
        # Waiting for its turn is not failing: the attempt is given back (counts=False).
        wait = (prepared[0].wait_until - ctx.now).total_seconds()
        raise RetryLater(wait, "an earlier event of this message goes first", counts=False)
    attempts: list[tuple[Prepared, DeliveryAttempt]] = []
    for one in prepared:
        attempt = await _attempt(ctx, one, manual)
        attempts.append((one, attempt))
        if attempt.error is not None and one.refused is None and not manual:
            break  # retried later: the events after it must not overtake it
    rest = [one.delivery.id for one in prepared[len(attempts) :]]
    # With the other delivery jobs that finished meanwhile, and this job's completion.
    await ctx.deps.callback_records.record(
        ctx.deps.sessions,
        ctx.deps.clock,
        settings,
        job_id=job.id,
        owner=ctx.owner,
        outcome=JobAttempts(attempts=attempts, step=step, rest=rest),
        completed=ctx.mark_completed,
    )


async def _attempt(ctx: JobContext, prepared: Prepared, manual: bool) -> DeliveryAttempt:
    """One request for one delivery (none when its target is refused): its outcome."""
    requested_at = ctx.deps.clock.now()
    if prepared.refused is not None:
        return DeliveryAttempt(
            number=0,
            manual=manual,
            requested_at=requested_at,
            status_code=None,
            error=prepared.refused,
            latency_ms=0,
            response=None,
        )
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
    return DeliveryAttempt(
        number=0,  # numbered when recorded
        manual=manual,
        requested_at=requested_at,
        status_code=result.status_code,
        error=result.error,
        latency_ms=result.latency_ms,
        response=result.response,
    )
