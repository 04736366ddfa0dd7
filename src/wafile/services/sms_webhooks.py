"""SMS provider status callbacks: checked, stored, acknowledged; then applied by a job.

The same shape as WhatsApp's (services/webhooks.py): the request checks
`X-Twilio-Signature` over the URL wafile gave the provider as `StatusCallback` and the
form fields (a wrong or missing signature is refused and nothing is stored), stores
the body with its processing job in one transaction, and answers. The job records each
(sid, status) once and moves the message through the state machine, so repeated and
reordered callbacks are harmless.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from urllib.parse import parse_qsl

from sqlalchemy.ext.asyncio import AsyncSession

from wafile.config import Settings
from wafile.core.jobs import Priority
from wafile.core.plan import Channel
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
    "SMS_STATUSES",
    "SMS_WEBHOOK_KIND",
    "SmsWebhookService",
    "sms_status_url",
    "sms_webhooks",
]

log = logging.getLogger(__name__)
SMS_WEBHOOK_KIND = "sms.webhook"
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
        repo = WebhookRepository(session)
        receipt = await repo.receipt(receipt_id)
        if receipt is None or receipt.processed_at is not None:
            return
        fields = dict(parse_qsl(receipt.body, keep_blank_values=True))
        sid = fields.get("MessageSid") or fields.get("SmsSid") or ""
        status = SMS_STATUSES.get(fields.get("MessageStatus") or fields.get("SmsStatus") or "")
        if sid and status is not None:
            await self._status(session, receipt.sender_id, sid, status, fields, now)
        await repo.mark_processed(receipt_id, now)

    async def _status(
        self,
        session: AsyncSession,
        sender_id: str,
        sid: str,
        status: str,
        fields: dict[str, str],
        now: datetime,
    ) -> None:
        repo = WebhookRepository(session)
        code = fields.get("ErrorCode") or ""
        update = StatusUpdate(
            phone_number_id="",
            provider_id=sid,
            status=status,
            recipient_wa_id=fields.get("To", "")[:32],
            # Twilio's callbacks carry no time of the change: it is when wafile heard it.
            at=now,
            error_code=int(code) if code.isdigit() else None,
            error_title=fields.get("MessageStatus"),
            error_details=fields.get("ErrorMessage") or None,
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


def _params(text: str) -> dict[str, list[str]]:
    params: defaultdict[str, list[str]] = defaultdict(list)
    for name, value in parse_qsl(text, keep_blank_values=True):
        params[name].append(value)
    return params


sms_webhooks = SmsWebhookService()
