"""The `message.send` job: one attempt of one message through its channel.

Read what is needed in a short transaction, do the provider calls with no
transaction open, then record the outcome together with the job's completion: in the
job's own transaction, or for a WhatsApp send that Meta accepted, in one shared with
the worker's other sends answered meanwhile (dispatch/sent_batch.py). A crash after
the provider accepted but before the commit sends again when the job reruns (at least
once; Meta has no idempotency key): the window for that is the few milliseconds
between the answer and the commit.
"""

from __future__ import annotations

import contextlib
import logging

from wafile.channels.sms_twilio import TwilioFailure
from wafile.channels.whatsapp_cloud import GraphFailure
from wafile.core.jobs import Job
from wafile.core.message_state import DeadlineReached, Event, SendFailed, SendSucceeded
from wafile.core.phones import whatsapp_id
from wafile.core.plan import Channel
from wafile.core.provider_errors import Disposition, classify_sms, classify_whatsapp
from wafile.core.sms_text import BODY_MAX, render_sms_text
from wafile.core.whatsapp_messages import (
    InvalidMessage,
    TemplateRef,
    file_message,
    template_message,
)
from wafile.crypto import sealer_for
from wafile.db.engine import autocommit, transaction
from wafile.dispatch.jobs import JobContext, RetryLater
from wafile.dispatch.send_slot import wait_for_send_slot
from wafile.dispatch.sent_batch import Upload
from wafile.errors import MessageNotFound, ServiceUnavailable, WafileError
from wafile.services.media import media
from wafile.services.messages import (
    PendingFetch,
    SendPlan,
    SentRecord,
    SmsSendPlan,
    content_refusal,
    messages,
)
from wafile.services.remote_media import remote_media
from wafile.services.sms_webhooks import sms_status_url, sms_webhooks

__all__ = ["deadline_job", "send_died", "send_job"]

log = logging.getLogger(__name__)
WINDOW_CLOSED = "the 24-hour window is closed and there is no template"


async def send_job(job: Job, ctx: JobContext) -> None:
    message_id, attempt = str(job.payload["message_id"]), int(job.payload["attempt"])
    sealer = sealer_for(ctx.deps.settings.secret_key)
    # Reads only, checked again when the outcome is recorded: no transaction needed.
    async with autocommit(ctx.deps.sessions) as session:
        plan = await messages.prepare_send(
            session,
            sealer,
            message_id=message_id,
            attempt=attempt,
            now=ctx.now,
            for_send_of=ctx.deps.for_send_lookup,  # with the other jobs' reads
        )
    if isinstance(plan, PendingFetch):
        if not await _fetch(job, ctx, plan, message_id, attempt):
            return
        async with autocommit(ctx.deps.sessions) as session:
            plan = await messages.prepare_send(
                session, sealer, message_id=message_id, attempt=attempt, now=ctx.now
            )
        assert not isinstance(plan, PendingFetch)
    if plan is None:
        return  # superseded, already sent, or the message is final
    if isinstance(plan, SmsSendPlan):
        await _sms_attempt(job, ctx, plan, attempt)
        return
    event: Event
    provider_id: str | None = None
    uploaded: list[str] = []  # Meta's media id, when this run uploaded the file
    try:
        provider_id = await _send_whatsapp(plan, ctx, uploaded)
        event = SendSucceeded(at=ctx.deps.clock.now(), attempt=attempt, provider_id=provider_id)
    except _Refused as refused:
        event = SendFailed(
            at=ctx.deps.clock.now(),
            attempt=attempt,
            disposition=refused.disposition,
            code=refused.code,
            reason=refused.reason,
        )
    except GraphFailure as exc:
        verdict = classify_whatsapp(exc.code, exc.http_status)
        reused = plan.uploaded_media_id is not None and not uploaded
        lost = verdict.disposition is not Disposition.RETRY and not verdict.halts_sender
        if reused and lost and job.attempts_left > 0:
            # The earlier upload may be gone at Meta (expired, deleted): forget it, and
            # the next run uploads afresh (throttling and bad tokens are not that).
            async with transaction(ctx.deps.sessions) as session:
                await messages.forget_upload(
                    session, sender_id=plan.sender.id, sha256=plan.media.sha256
                )
            raise RetryLater(0.0, f"re-uploading after: {exc}") from exc
        if verdict.disposition is Disposition.RETRY and job.attempts_left > 0:
            if verdict.retry_after is not None:
                raise RetryLater(verdict.retry_after, str(exc)) from exc
            raise  # the queue's backoff
        disposition = verdict.disposition
        if disposition is Disposition.RETRY:  # out of retries: try the next channel
            disposition = Disposition.FALL_BACK
        event = SendFailed(
            at=ctx.deps.clock.now(),
            attempt=attempt,
            disposition=disposition,
            code=exc.code,
            reason=f"{verdict.reason}: {exc}",
        )
    upload = Upload(sha256=plan.media.sha256, media_id=uploaded[0]) if uploaded else None
    if provider_id is not None:
        record = SentRecord(
            message_id=message_id,
            attempt=attempt,
            sender_id=plan.sender.id,
            provider_id=provider_id,
            event=event,
        )
        # With the other sends answered meanwhile, and this job's completion.
        await ctx.deps.sent.record(
            ctx.deps.sessions,
            ctx.deps.clock,
            job_id=job.id,
            owner=ctx.owner,
            record=record,
            upload=upload,
            completed=ctx.mark_completed,
        )
    else:
        if upload is not None:
            await messages.remember_upload(
                ctx.session,
                sender_id=plan.sender.id,
                sha256=upload.sha256,
                media_id=upload.media_id,
                now=ctx.now,
            )
        log.info("message %s attempt %d not sent: %s", message_id, attempt, event)
        await messages.apply(ctx.session, message_id, event, source="send", now=ctx.now)


async def _fetch(
    job: Job, ctx: JobContext, pending: PendingFetch, message_id: str, attempt: int
) -> bool:
    """Fetch a send by URL's file into the media store; False when the message failed.

    An origin that is down or slow is retried with the queue's backoff; a refusal (4xx,
    too big, a type WhatsApp and wafile do not take, a URL the SSRF guard refuses) fails
    the message: no channel can send a file wafile does not have.
    """
    try:
        item = await remote_media.fetch(
            ctx.deps.sessions,
            ctx.deps.store,
            ctx.deps.settings,
            account_id=pending.account_id,
            url=pending.url,
            provider=pending.provider,
            filename=pending.filename,
            now=ctx.now,
        )
    except ServiceUnavailable as exc:
        if job.attempts_left > 0:
            wait = exc.extra.get("retry_after")
            if isinstance(wait, int | float):
                raise RetryLater(float(wait), f"fetching media_url: {exc.detail}") from exc
            raise  # the queue's backoff
        code, why = exc.extra.get("origin_status"), f"fetching media_url: {exc.detail}"
    except WafileError as exc:
        code, why = exc.extra.get("origin_status"), f"fetching media_url: {exc.detail}"
    else:
        async with transaction(ctx.deps.sessions) as session:
            await messages.attach_media(session, message_id=message_id, media=item)
        return True
    event = SendFailed(
        at=ctx.deps.clock.now(),
        attempt=attempt,
        disposition=Disposition.FAIL,
        code=code if isinstance(code, int) else None,
        reason=why,
    )
    log.info("message %s: %s", message_id, why)
    await messages.apply(ctx.session, message_id, event, source="fetch", now=ctx.now)
    return False


async def _sms_attempt(job: Job, ctx: JobContext, plan: SmsSendPlan, attempt: int) -> None:
    """One SMS: the plan's text with a signed link to the file, then the outcome."""
    settings, message = ctx.deps.settings, plan.message
    link, _ = media.signed_url(
        plan.media,
        secret=settings.secret_key,
        base_url=settings.effective_public_url,
        lifetime=settings.sms_link_lifetime_seconds,
        now=ctx.now.timestamp(),
    )
    event: Event
    try:
        body = render_sms_text(
            plan.step.text, link=link, filename=message.filename, caption=message.caption
        )
        if len(body) > BODY_MAX:
            raise _Refused(Disposition.FAIL, f"the SMS text is longer than {BODY_MAX} characters")
        await wait_for_send_slot(ctx, plan)  # the sender's messages-per-second limit
        async with ctx.deps.sms_client() as client:
            sent = await client.send(
                plan.sender.sms,
                plan.secrets.auth_token,
                to=message.to,
                body=body,
                status_callback=sms_status_url(settings, plan.sender.id),
            )
    except _Refused as refused:
        event = SendFailed(
            at=ctx.deps.clock.now(),
            attempt=attempt,
            disposition=refused.disposition,
            code=refused.code,
            reason=refused.reason,
        )
    except TwilioFailure as exc:
        verdict = classify_sms(exc.code, exc.http_status)
        if verdict.disposition is Disposition.RETRY and job.attempts_left > 0:
            if verdict.retry_after is not None:
                raise RetryLater(verdict.retry_after, str(exc)) from exc
            raise  # the queue's backoff
        disposition = verdict.disposition
        if disposition is Disposition.RETRY:  # out of retries: the next channel, if any
            disposition = Disposition.FALL_BACK
        event = SendFailed(
            at=ctx.deps.clock.now(),
            attempt=attempt,
            disposition=disposition,
            code=exc.code,
            reason=f"{verdict.reason}: {exc}",
        )
    else:
        event = SendSucceeded(
            at=ctx.deps.clock.now(), attempt=attempt, provider_id=sent.sid, segments=sent.segments
        )
        record = SentRecord(
            message_id=message.id,
            attempt=attempt,
            sender_id=plan.sender.id,
            provider_id=sent.sid,
            event=event,
            channel=Channel.SMS,
        )
        await messages.sent(ctx.session, [record], now=ctx.now)
        await sms_webhooks.schedule_poll(  # in case its status callbacks get lost
            ctx.session,
            message_id=message.id,
            attempt=attempt,
            sender_id=plan.sender.id,
            sid=sent.sid,
            step=0,
            schedule=settings.sms_poll_schedule,
            now=ctx.now,
        )
        return
    log.info("message %s attempt %d not sent: %s", message.id, attempt, event)
    await messages.apply(ctx.session, message.id, event, source="send", now=ctx.now)


async def send_died(job: Job, error: str, ctx: JobContext) -> None:
    """The send job used up its attempts on unplanned errors (provider failures never
    get here: they end the attempt themselves). The attempt fails as fall-back, so the
    next channel starts, or the message fails with this reason and the business is
    told: never in progress for ever. A dead job revived later sends nothing more."""
    message_id, attempt = str(job.payload["message_id"]), int(job.payload["attempt"])
    event = SendFailed(
        at=ctx.now,
        attempt=attempt,
        disposition=Disposition.FALL_BACK,
        code=None,
        reason=f"wafile gave up sending after {job.attempts} attempts: {error}",
    )
    log.error("message %s attempt %d: %s", message_id, attempt, event.reason)
    with contextlib.suppress(MessageNotFound):  # deleted meanwhile: nothing left to tell
        await messages.apply(ctx.session, message_id, event, source="send", now=ctx.now)


async def deadline_job(job: Job, ctx: JobContext) -> None:
    message_id, attempt = str(job.payload["message_id"]), int(job.payload["attempt"])
    event = DeadlineReached(at=ctx.now, attempt=attempt)
    await messages.apply(ctx.session, message_id, event, source="deadline", now=ctx.now)


class _Refused(Exception):
    def __init__(self, disposition: Disposition, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.disposition, self.reason, self.code = disposition, reason, code


async def _send_whatsapp(plan: SendPlan, ctx: JobContext, uploaded: list[str]) -> str:
    message, item = plan.message, plan.media
    if message.media_url is not None:  # a stored file was checked when accepted
        refused = content_refusal(item, message.caption, message.template)
        if refused is not None:  # another channel (SMS: a link) may still carry it
            raise _Refused(Disposition.FALL_BACK, refused)
    kind = item.whatsapp_sent_as or "document"
    to = whatsapp_id(message.to)
    template = message.template
    if not plan.window_open and template is None:
        default = plan.sender.whatsapp.default_template(kind)
        if default is None:
            # Refused before Meta is called (it would answer 131047 and charge nothing).
            raise _Refused(Disposition.FALL_BACK, WINDOW_CLOSED, 131047)
        if kind == "document" and item.mime_type != "application/pdf":
            why = "the 24-hour window is closed and template document headers take PDF only"
            raise _Refused(Disposition.FALL_BACK, why, 131047)
        template = {
            "name": default.name,
            "language": default.language,
            "parameters": [message.caption or message.filename],
        }
    async with ctx.deps.cloud() as cloud:
        media_id = plan.uploaded_media_id
        if media_id is None:
            media_id = await cloud.upload(
                plan.sender.whatsapp,
                plan.secrets.access_token,
                chunks=await media.open(ctx.deps.store, item, None),
                filename=message.filename,
                mime_type=item.mime_type,
            )
            uploaded.append(media_id)
        try:
            if template is not None:
                body = template_message(
                    to=to,
                    template=TemplateRef(
                        name=str(template["name"]),
                        language=str(template.get("language") or "en_US"),
                        body_parameters=[str(p) for p in template.get("parameters") or ()],
                    ),
                    header_kind=kind,
                    media_id=media_id,
                    filename=message.filename,
                    mime_type=item.mime_type,
                )
            else:
                body = file_message(
                    to=to,
                    kind=kind,
                    media_id=media_id,
                    filename=message.filename,
                    caption=message.caption,
                    reply_to=message.reply_to,
                )
        except InvalidMessage as exc:
            raise _Refused(Disposition.FAIL, str(exc)) from None
        await wait_for_send_slot(ctx, plan, uploaded)  # the sender's messages-per-second limit
        return await cloud.send(plan.sender.whatsapp, plan.secrets.access_token, body)
