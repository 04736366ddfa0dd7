"""The `sms.poll` job: ask the SMS provider what became of a sent message whose final
status has not arrived (its callback may be lost), and record the answer as a callback
would have been recorded (services/sms_webhooks.py)."""

from __future__ import annotations

from wafile.core.jobs import Job
from wafile.crypto import sealer_for
from wafile.db.engine import transaction
from wafile.dispatch.jobs import JobContext
from wafile.services.sms_webhooks import SMS_STATUSES, sms_webhooks

__all__ = ["poll_sms"]


async def poll_sms(job: Job, ctx: JobContext) -> None:
    p = job.payload
    message_id, attempt = str(p["message_id"]), int(p["attempt"])
    sender_id, sid, step = str(p["sender_id"]), str(p["sid"]), int(p["step"])
    async with transaction(ctx.deps.sessions) as session:
        target = await sms_webhooks.poll_target(
            session,
            sealer_for(ctx.deps.settings.secret_key),
            message_id=message_id,
            attempt=attempt,
            sender_id=sender_id,
        )
    if target is None:
        return  # a final status arrived meanwhile (or the message is gone)
    sender, secrets = target
    async with ctx.deps.sms_client() as client:
        # A TwilioFailure goes to the queue's backoff: the provider may be down too.
        state = await client.fetch(sender.sms, secrets.auth_token, sid)
    status = SMS_STATUSES.get(state.status)
    if status is not None:
        await sms_webhooks.record_status(
            ctx.session,
            sender_id=sender_id,
            sid=sid,
            status=status,
            reported=state.status,
            to=state.to,
            error_code=state.error_code,
            error_message=state.error_message,
            now=ctx.now,
        )
    if status in (None, "sent"):  # still on its way: ask again later
        await sms_webhooks.schedule_poll(
            ctx.session,
            message_id=message_id,
            attempt=attempt,
            sender_id=sender_id,
            sid=sid,
            step=step + 1,
            schedule=ctx.deps.settings.sms_poll_schedule,
            now=ctx.now,
        )
