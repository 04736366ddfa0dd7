"""The `whatsapp.webhook` job: apply a stored webhook body (see services/webhooks.py)."""

from __future__ import annotations

from wafile.core.jobs import Job
from wafile.dispatch.jobs import JobContext
from wafile.services.webhooks import webhooks

__all__ = ["apply_webhook"]


async def apply_webhook(job: Job, ctx: JobContext) -> None:
    await webhooks.process(ctx.session, receipt_id=str(job.payload["receipt_id"]), now=ctx.now)
