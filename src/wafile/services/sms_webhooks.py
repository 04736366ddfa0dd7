"""SMS provider status callbacks: checked, stored, acknowledged; then applied by a job.

The same shape as WhatsApp's (services/webhooks.py): the request checks
`X-Twilio-Signature` over the URL wafile gave the provider as `StatusCallback` and the
form fields (a wrong or missing signature is refused and nothing is stored), stores
the body with its processing job in one transaction, and answers. The job records each
(sid, status) once and moves the message through the state machine, so repeated and
reordered callbacks are harmless.

Callbacks get lost (Twilio retries little, and a busy server may time out its POST),
so a sent SMS is also polled: `sms.poll` jobs read the message from the provider on
`Settings.sms_poll_schedule` until it has a final status, and record what they find
exactly as a callback would have.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import parse_qsl

from sqlalchemy.ext.asyncio import AsyncSession

from wafile.config import Settings
from wafile.core.jobs import Priority
from wafile.core.plan import Channel
from wafile.core.senders import SmsSecrets, SmsSender
from wafile.core.twilio_signature import SIGNATURE_HEADER, verify_twilio_signature
from wafile.core.whatsapp_webhook import StatusUpdate
from wafile.crypto import Sealer
from wafile.db.jobs import JobRepository
from wafile.db.webhooks import WebhookRepository
from wafile.errors import Unauthorized, ValidationFailed
from wafile.ids import new_id
from wafile.services.messages import messages, status_report
from wafile.services.senders import senders

__all__ = [
    "SMS_POLL_KIND",
    "SMS_STATUSES",
    "SMS_WEBHOOK_KIND",
    "SmsWebhookService",
    "sms_status_url",
    "sms_webhooks",
]

log = logging.getLogger(__name__)
SMS_WEBHOOK_KIND = "sms.webhook"
SMS_POLL_KIND = "sms.poll"
# Twilio's statuses that say something about the attempt, as wafile's attempt status;
# the others (queued, sending, accepted, scheduled) say only that it is on its way.
SMS_STATUSES = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}


def sms_status_url(settings: Settings, sender_id: str) -> str:
    """The `StatusCallback` wafile gives the provider, and signs its checks against."""
    return f"{settings.effective_public_url}/webhooks/sms/{sender_id}"


class SmsWebhookService:
    async def receive(
        self,
        session: AsyncSession,
        sealer: Sealer,
        settings: Settings,
        *,
        sender_id: str,
        body: bytes,
        signature: str | None,
        now: datetime,
    ) -> str | None:
        """Check, store and queue one status callback; the receipt id (None: a status
        that only says the SMS is on its way, which changes nothing and is not kept)."""
        _, secrets = await senders.sms_with_secrets(session, sealer, sender_id)
        if not signature:
            raise Unauthorized(f"missing {SIGNATURE_HEADER}")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed("the callback body is not UTF-8") from None
        url = sms_status_url(settings, sender_id)
        params = _params(text)
        if not verify_twilio_signature(secrets.auth_token, url, params, signature):
            raise Unauthorized(f"{SIGNATURE_HEADER} does not match {url} and the form fields")
        status = (params.get("MessageStatus") or params.get("SmsStatus") or [""])[-1]
        if status not in SMS_STATUSES:  # queued, sending, accepted...: no job for nothing
            return None
        receipt_id = new_id("whr")
        await WebhookRepository(session).add_receipt(receipt_id, sender_id, text, now)
        await JobRepository(session).enqueue(
            SMS_WEBHOOK_KIND, {"receipt_id": receipt_id}, now, now=now, priority=Priority.REPORT
        )
        return receipt_id

    async def process(self, session: AsyncSession, *, receipt_id: str, now: datetime) -> None:
        """Apply a stored callback to its message. Safe to repeat."""
        claimed = await WebhookRepository(session).claim_receipt(receipt_id, now)
        if claimed is None:
            return
        sender_id, body = claimed
        fields = dict(parse_qsl(body, keep_blank_values=True))
        sid = fields.get("MessageSid") or fields.get("SmsSid") or ""
        status = SMS_STATUSES.get(fields.get("MessageStatus") or fields.get("SmsStatus") or "")
        if sid and status is not None:
            code = fields.get("ErrorCode") or ""
            await self.record_status(
                session,
                sender_id=sender_id,
                sid=sid,
                status=status,
                reported=fields.get("MessageStatus") or fields.get("SmsStatus") or status,
                to=fields.get("To", ""),
                error_code=int(code) if code.isdigit() else None,
                error_message=fields.get("ErrorMessage") or None,
                now=now,
            )

    async def record_status(
        self,
        session: AsyncSession,
        *,
        sender_id: str,
        sid: str,
        status: str,
        reported: str,
        to: str,
        error_code: int | None,
        error_message: str | None,
        now: datetime,
    ) -> None:
        """One (sid, status) once, applied to its message: from a callback or a poll.

        `status` is wafile's (SMS_STATUSES), `reported` the provider's own word.
        """
        repo = WebhookRepository(session)
        update = StatusUpdate(
            phone_number_id="",
            provider_id=sid,
            status=status,
            recipient_wa_id=to[:32],
            # Twilio's callbacks carry no time of the change: it is when wafile heard it.
            at=now,
            error_code=error_code,
            error_title=reported,
            error_details=error_message,
        )
        await repo.hold_provider_id(sender_id, sid)  # see messages.sent
        new = await repo.add_status(
            {
                "id": new_id("pst"),
                "sender_id": sender_id,
                "provider_id": sid,
                "status": status,
                "recipient": update.recipient_wa_id,
                "at": update.at,
                "error_code": update.error_code,
                "error_title": update.error_title,
                "error_details": update.error_details,
                "received_at": now,
            }
        )
        if not new:
            return
        ref = await messages.for_provider_id(session, sender_id, sid)
        if ref is None:  # not ours, or its send has not committed: messages.sent applies it
            return
        message_id, attempt = ref
        event = status_report(update, attempt, Channel.SMS)
        await messages.apply(session, message_id, event, source="sms", now=now)

    async def schedule_poll(
        self,
        session: AsyncSession,
        *,
        message_id: str,
        attempt: int,
        sender_id: str,
        sid: str,
        step: int,
        schedule: Sequence[float],
        now: datetime,
    ) -> None:
        """Poll the provider `schedule[step]` seconds from now, if the schedule goes on."""
        if step >= len(schedule):
            log.info("SMS %s: no final status after the last poll; it stays sent", sid)
            return
        payload = {
            "message_id": message_id,
            "attempt": attempt,
            "sender_id": sender_id,
            "sid": sid,
            "step": step,
        }
        await JobRepository(session).enqueue(
            SMS_POLL_KIND,
            payload,
            now + timedelta(seconds=schedule[step]),
            now=now,
            dedupe_key=f"{SMS_POLL_KIND}:{sid}:{step}",
        )

    async def poll_target(
        self,
        session: AsyncSession,
        sealer: Sealer,
        *,
        message_id: str,
        attempt: int,
        sender_id: str,
    ) -> tuple[SmsSender, SmsSecrets] | None:
        """The sender to ask with, while the attempt still waits for a final status."""
        if not await messages.awaits_report(session, message_id=message_id, attempt=attempt):
            return None
        return await senders.sms_with_secrets(session, sealer, sender_id)


def _params(text: str) -> dict[str, list[str]]:
    params: defaultdict[str, list[str]] = defaultdict(list)
    for name, value in parse_qsl(text, keep_blank_values=True):
        params[name].append(value)
    return params


sms_webhooks = SmsWebhookService()
