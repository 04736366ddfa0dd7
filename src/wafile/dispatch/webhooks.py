"""Webhook jobs: apply a stored provider callback (services/webhooks.py for WhatsApp,
services/sms_webhooks.py for SMS)."""

from __future__ import annotations

from wafile.core.jobs import Job
from wafile.dispatch.jobs import JobContext
from wafile.services.sms_webhooks import sms_webhooks

__all__ = ["apply_sms_webhook", "apply_webhook"]


async def apply_webhook(job: Job, ctx: JobContext) -> None:
    # With the other bodies this worker's jobs apply meanwhile (dispatch/webhook_batch.py).
    await ctx.deps.webhook_bodies.apply(
        ctx.deps.sessions,
        ctx.deps.clock,
        job_id=job.id,
        owner=ctx.owner,
        receipt_id=str(job.payload["receipt_id"]),
        completed=ctx.mark_completed,
    )


async def apply_sms_webhook(job: Job, ctx: JobContext) -> None:
    receipt_id = str(job.payload["receipt_id"])
    await sms_webhooks.process(ctx.session, receipt_id=receipt_id, now=ctx.now)
