"""Provider webhooks: checked, stored, acknowledged; then applied by a job.

The receiving request does the least that is safe: it checks the signature over the
raw bytes (an unsigned or forged body is refused and nothing is stored), stores the
body and queues its processing in the same transaction, and answers. A slow database
or a burst of statuses therefore never makes Meta retry, and a crash after the
answer loses nothing: the job runs on any worker.

Applying a body is idempotent: inbound messages are unique by wamid, statuses by
(wamid, status), and the 24-hour window only ever moves forward. Each new inbound
message is one `inbound.received` callback event, made in the transaction that
completes it: this one for a message without a file, the one that records its file
(`record_inbound_media`) otherwise, so the event can carry the file.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.accounts import Account
from wafile.core.inbound import Inbound
from wafile.core.jobs import Priority
from wafile.core.meta_signature import verify_hub_signature
from wafile.core.phones import whatsapp_id
from wafile.core.senders import Sender
from wafile.core.whatsapp_webhook import (
    InboundMessage,
    MalformedWebhook,
    StatusUpdate,
    parse_webhook,
)
from wafile.core.window import WindowState, window_state
from wafile.crypto import Sealer
from wafile.db.engine import ReferenceGone
from wafile.db.jobs import JobRepository, NewJob
from wafile.db.webhooks import WebhookRepository
from wafile.errors import Forbidden, SenderNotFound, Unauthorized, ValidationFailed
from wafile.ids import new_id
from wafile.services.callbacks import callbacks
from wafile.services.messages import messages, status_report
from wafile.services.senders import senders

__all__ = ["INBOUND_MEDIA_KIND", "WEBHOOK_KIND", "SignedBody", "WebhookService", "webhooks"]

log = logging.getLogger(__name__)
WEBHOOK_KIND = "whatsapp.webhook"
INBOUND_MEDIA_KIND = "whatsapp.inbound_media"


@dataclass(frozen=True, kw_only=True, slots=True)
class SignedBody:
    """A webhook body whose signature was checked (`check`), to be stored (`store`)."""

    sender_id: str
    text: str


class WebhookService:
    async def handshake(
        self,
        session: AsyncSession,
        sealer: Sealer,
        *,
        sender_id: str,
        mode: str | None,
        token: str | None,
        challenge: str | None,
    ) -> str:
        """Meta's GET verification: the challenge back when the verify token matches."""
        _, secrets = await senders.with_secrets(session, sealer, sender_id)
        if mode != "subscribe" or token is None or challenge is None:
            raise Forbidden("expected hub.mode=subscribe with hub.verify_token and hub.challenge")
        if not hmac.compare_digest(token.encode(), secrets.verify_token.encode()):
            raise Forbidden("the verify token does not match this sender's")
        return challenge

    async def receive(
        self,
        session: AsyncSession,
        sealer: Sealer,
        *,
        sender_id: str,
        body: bytes,
        signature: str | None,
        now: datetime,
    ) -> str:
        """Check, store and queue one POST; the receipt id."""
        signed = await self.check(
            session, sealer, sender_id=sender_id, body=body, signature=signature
        )
        [receipt_id] = await self.store(session, [signed], now=now)
        return receipt_id

    async def check(
        self,
        session: AsyncSession,
        sealer: Sealer,
        *,
        sender_id: str,
        body: bytes,
        signature: str | None,
    ) -> SignedBody:
        """A POST's body, once its signature is the sender's (reads only)."""
        _, secrets = await senders.with_secrets(session, sealer, sender_id)
        if not signature:
            raise Unauthorized("missing X-Hub-Signature-256")
        if not verify_hub_signature(secrets.app_secret, body, signature):
            raise Unauthorized("X-Hub-Signature-256 does not match the body")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed("the webhook body is not UTF-8") from None
        return SignedBody(sender_id=sender_id, text=text)

    async def store(
        self, session: AsyncSession, bodies: Sequence[SignedBody], *, now: datetime
    ) -> list[str]:
        """Store checked bodies and queue their processing (one INSERT of the bodies,
        one of their jobs); their receipt ids, in order."""
        ids = [new_id("whr") for _ in bodies]
        try:
            await WebhookRepository(session).add_receipts(
                [(i, b.sender_id, b.text) for i, b in zip(ids, bodies, strict=True)], now
            )
        except ReferenceGone:  # removed after `check` (a batch goes again one by one)
            raise SenderNotFound("the sender was removed while this webhook came in") from None
        jobs = [
            NewJob(
                kind=WEBHOOK_KIND, payload={"receipt_id": i}, run_at=now, priority=Priority.REPORT
            )
            for i in ids
        ]
        await JobRepository(session).enqueue_all(jobs, now=now)
        return ids

    async def process(self, session: AsyncSession, *, receipt_id: str, now: datetime) -> None:
        """Apply a stored body: windows, inbound messages, statuses. Safe to repeat."""
        await self.process_many(session, [receipt_id], now=now)

    async def process_many(
        self, session: AsyncSession, receipt_ids: Sequence[str], *, now: datetime
    ) -> None:
        """`process` for several stored bodies in one transaction, in the order given
        (the order they came in): each body's inbound messages in turn, then the
        statuses of all of them recorded and applied together, as one body's are."""
        repo = WebhookRepository(session)
        claimed = await repo.claim_receipts(receipt_ids, now)
        statuses: list[tuple[Sender, StatusUpdate]] = []
        for receipt_id in receipt_ids:
            if receipt_id in claimed:
                sender_id, body = claimed[receipt_id]
                statuses += await self._apply_body(session, repo, receipt_id, sender_id, body, now)
        await _apply_statuses(session, statuses, now)

    async def _apply_body(
        self,
        session: AsyncSession,
        repo: WebhookRepository,
        receipt_id: str,
        sender_id: str,
        body: str,
        now: datetime,
    ) -> list[tuple[Sender, StatusUpdate]]:
        """A claimed body's windows and inbound messages; its statuses, each with the
        sender of the number it names, for `_apply_statuses`."""
        found = await senders.by_id(session, sender_id)
        if found is None:  # the sender was removed meanwhile; nothing to apply it to
            return []
        try:
            batch = parse_webhook(body.encode())
        except MalformedWebhook as exc:
            # Signed by Meta but not an envelope we know: keep it, never retry it.
            log.warning("webhook %s for sender %s not applied: %s", receipt_id, found.id, exc)
            return []
        # One Meta app has one webhook URL for all its numbers: route each event to
        # the account's sender of the number it names (the URL's sender otherwise).
        by_number = {
            s.whatsapp.phone_number_id: s for s in await senders.of_account(session, found)
        }
        for message in batch.messages:
            target = by_number.get(message.phone_number_id, found)
            # The window moves even for a redelivered message: saw_user keeps the latest.
            await repo.saw_user(target.id, message.from_wa_id, message.at)
            inbound = _inbound_of(target, message)
            if not await repo.add_inbound(inbound):
                continue  # known: its event was made when it was new
            if message.media is not None:
                # Meta keeps the file 7 days: fetch it into the media store now (its
                # event follows, with the file).
                await JobRepository(session).enqueue(
                    INBOUND_MEDIA_KIND, {"inbound_id": inbound.id}, now, now=now
                )
            else:
                await callbacks.notify_inbound(
                    session,
                    inbound,
                    to=business_number(target),
                    media_link=None,
                    now=now,
                )
        return [(by_number.get(s.phone_number_id, found), s) for s in batch.statuses]

    async def record_inbound_media(
        self,
        session: AsyncSession,
        *,
        inbound_id: str,
        media_id: str | None,
        error: str | None,
        media_link: tuple[str, datetime] | None,
        now: datetime,
    ) -> None:
        """The file of an inbound message is in the media store (`media_id`, with a
        signed download link) or will not be (`error`): record it, and make the
        message's `inbound.received` event. Only the first call does anything."""
        repo = WebhookRepository(session)
        if not await repo.set_inbound_media(inbound_id, media_id=media_id, error=error):
            return
        inbound = await repo.inbound(inbound_id)
        sender = await senders.by_id(session, inbound.sender_id) if inbound else None
        if inbound is None or sender is None:
            return
        await callbacks.notify_inbound(
            session,
            inbound,
            to=business_number(sender),
            media_link=media_link if media_id is not None else None,
            now=now,
        )

    async def window(
        self, session: AsyncSession, *, sender: Sender, to: str, now: datetime
    ) -> WindowState:
        last = await WebhookRepository(session).last_inbound(sender.id, whatsapp_id(to))
        return window_state(last, now)

    async def inbound_page(
        self,
        session: AsyncSession,
        *,
        account: Account,
        limit: int,
        before: tuple[datetime, str] | None,
    ) -> list[Inbound]:
        return await WebhookRepository(session).inbound_page(account.id, limit=limit, before=before)


async def _apply_statuses(
    session: AsyncSession, statuses: list[tuple[Sender, StatusUpdate]], now: datetime
) -> None:
    """Record the statuses of one body and move their messages, with a few statements
    for the whole body (Meta batches statuses): as if each were applied alone, in body
    order, and each (wamid, status) once, whether repeated in this body or known."""
    if not statuses:
        return
    repo = WebhookRepository(session)
    # Held until commit, every one before anything is written (see messages.sent).
    await repo.hold_provider_ids({(sender.id, s.provider_id) for sender, s in statuses})
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for sender, status in statuses:
        key = (sender.id, status.provider_id, status.status)
        rows.setdefault(
            key,
            {
                "id": new_id("pst"),
                "sender_id": sender.id,
                "provider_id": status.provider_id,
                "status": status.status,
                "recipient": status.recipient_wa_id,
                "at": status.at,
                "error_code": status.error_code,
                "error_title": status.error_title,
                "error_details": status.error_details,
                "received_at": now,
            },
        )
    new = await repo.add_statuses(list(rows.values()))
    fresh: list[tuple[str, StatusUpdate]] = []
    for sender, status in statuses:
        key = (sender.id, status.provider_id, status.status)
        if key in new:
            new.discard(key)  # a repeat later in the body is not new
            fresh.append((sender.id, status))
    # Not a message wafile sent, or its send has not committed yet: then
    # `messages.sent` applies it from the stored statuses.
    refs = await messages.for_provider_ids(session, {(s, st.provider_id) for s, st in fresh})
    events = [
        (ref[0], status_report(status, ref[1]))
        for sender_id, status in fresh
        if (ref := refs.get((sender_id, status.provider_id))) is not None
    ]
    await messages.apply_many(session, events, source="whatsapp", now=now)


def business_number(sender: Sender) -> str:
    """The sender's WhatsApp number in E.164 (Meta shows it with or without `+` and
    spaces)."""
    return "+" + "".join(c for c in sender.whatsapp.display_phone_number if c.isdigit())


def _inbound_of(sender: Sender, message: InboundMessage) -> Inbound:
    media = message.media
    return Inbound(
        id=new_id("inb"),
        account_id=sender.account_id,
        sender_id=sender.id,
        provider_id=message.provider_id,
        # WhatsApp's ids are the number's digits; the user exists, whatever the plan says.
        from_number="+" + message.from_wa_id,
        profile_name=message.profile_name,
        type=message.type,
        text=message.text,
        provider_media_id=media.provider_id if media else None,
        media_filename=media.filename if media else None,
        media_mime_type=media.mime_type if media else None,
        caption=media.caption if media else None,
        reply_to=message.reply_to,
        received_at=message.at,
    )


webhooks = WebhookService()
