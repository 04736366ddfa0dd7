"""Messages: accept a send (message, first attempt and its job in one transaction),
apply events through the state machine, and prepare what a send job needs.

A message's event log is its record of truth: its state is the log replayed through
`core.message_state.transition`, and every event, applied or not, is appended with
why. The state after the last event is kept on the message row (its snapshot), so an
event is applied without replaying the log; messages from before snapshots replay.
Effects are carried out in the same transaction as the event that caused them: a new
attempt is a `message.send` job, a fallback deadline a `message.deadline` job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.accounts import Account
from wafile.core.callback_formats import STANDARD, format_named
from wafile.core.jobs import Priority
from wafile.core.media import Media
from wafile.core.message import NATIVE, Message, Snapshot
from wafile.core.message_codec import event_from_json, event_to_json
from wafile.core.message_state import (
    Accepted,
    AttemptStatus,
    Effect,
    Event,
    LogEntry,
    MessageState,
    ScheduleDeadline,
    StartAttempt,
    StatusReport,
    replay,
    should_send,
    transition,
)
from wafile.core.phones import InvalidNumber, to_e164, whatsapp_id
from wafile.core.plan import Channel, Plan, PlanStep, Success, make_plan
from wafile.core.provider_errors import classify_sms, classify_whatsapp
from wafile.core.providers import allows as provider_allows
from wafile.core.senders import Sender, SmsSecrets, SmsSender, WhatsAppSecrets
from wafile.core.sms_text import check_sms_text
from wafile.core.whatsapp_messages import CAPTION_MAX, CAPTIONED, TEMPLATE_HEADERS
from wafile.core.whatsapp_webhook import StatusUpdate
from wafile.core.window import window_state
from wafile.crypto import Sealer
from wafile.db.accounts import AccountRepository
from wafile.db.engine import ReferenceGone
from wafile.db.jobs import JobRepository, NewJob
from wafile.db.media import MediaRepository
from wafile.db.messages import DuplicateKey, ForSend, MessageRepository, StoredEvent
from wafile.db.providers import ProviderRepository
from wafile.db.webhooks import WebhookRepository
from wafile.errors import (
    Conflict,
    MediaNotFound,
    MessageNotFound,
    ProviderNotFound,
    SenderNotFound,
    ValidationFailed,
)
from wafile.ids import new_id
from wafile.services.api_keys import api_keys
from wafile.services.callbacks import callbacks
from wafile.services.senders import senders

__all__ = [
    "DEADLINE_KIND",
    "IDEMPOTENCY_WINDOW",
    "SEND_KIND",
    "Checked",
    "ForSendLookup",
    "MediaLookup",
    "MessageService",
    "MessageView",
    "NewMessage",
    "PendingFetch",
    "SendPlan",
    "SentRecord",
    "SmsSendPlan",
    "content_refusal",
    "messages",
    "status_report",
]

SEND_KIND = "message.send"
DEADLINE_KIND = "message.deadline"
IDEMPOTENCY_WINDOW = timedelta(hours=24)
# Meta keeps uploaded media 30 days; reuse an upload for 29, so it never expires mid-send.
UPLOAD_REUSE = timedelta(days=29)
# Finds an account's file: (account id, media id) -> the file, or None.
MediaLookup = Callable[[str, str], Awaitable[Media | None]]
# Reads what a send job needs first: message id -> the message with its file, window
# and upload, or None.
ForSendLookup = Callable[[str], Awaitable[ForSend | None]]
# The plan of a send that gives no `channels`, when its account has no default either.
WHATSAPP_ONLY: tuple[dict[str, Any], ...] = ({"channel": "whatsapp"},)


@dataclass(frozen=True, kw_only=True, slots=True)
class NewMessage:
    to: str
    media_id: str | None = None
    # A remote file instead (exactly one of the two): fetched by the worker before the
    # first send, with the named media provider's credentials.
    media_url: str | None = None
    provider: str | None = None
    sender: str | None = None
    filename: str | None = None
    caption: str | None = None
    reply_to: str | None = None
    template: dict[str, Any] | None = None  # {name, language, parameters}
    reference: str | None = None
    callback_url: str | None = None
    # What callback_url receives (core.callback_formats): a dialect's per-send callback
    # URL gets its vendor's callbacks, signed its vendor's way.
    callback_format: str = STANDARD
    # The plan in the API's shape: [{channel, success?, fallback_time?, sender?, text?}];
    # None: the account's default plan.
    channels: tuple[dict[str, Any], ...] | None = None
    # The API it came through: NATIVE, or the dialect's name (its vendor's endpoints
    # receive only its messages).
    origin: str = NATIVE
    # Accept a number of the right length that its numbering plan does not assign (the
    # sandbox's Telesign dialect only: Telesign checks the length alone; see
    # docs/dialects.md). Everywhere else such a number is refused before any send.
    unassigned_number_ok: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class PendingFetch:
    """A send by URL whose file is not in the media store yet."""

    account_id: str
    url: str
    provider: str | None
    filename: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageView:
    message: Message
    state: MessageState
    events: list[StoredEvent]


@dataclass(frozen=True, kw_only=True, slots=True)
class SentRecord:
    """A send the provider accepted, to record (`MessageService.sent`): the provider's
    id for the attempt (statuses name it) and the event."""

    message_id: str
    attempt: int
    sender_id: str
    provider_id: str
    event: Event
    channel: Channel = Channel.WHATSAPP


@dataclass(frozen=True, kw_only=True, slots=True)
class SendPlan:
    """What a send job needs, read in one short transaction before any I/O."""

    message: Message
    sender: Sender
    secrets: WhatsAppSecrets
    media: Media
    window_open: bool
    uploaded_media_id: str | None  # Meta's id of this content on this sender, if fresh


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsSendPlan:
    """What an SMS send job needs."""

    message: Message
    step: PlanStep
    sender: SmsSender
    secrets: SmsSecrets
    media: Media


@dataclass(frozen=True, kw_only=True, slots=True)
class Checked:
    """A new message checked and built, not stored yet (`MessageService.store`)."""

    message: Message
    accepted: Accepted
    state: MessageState
    effects: tuple[Effect, ...]
    entry: LogEntry


class MessageService:
    async def accept(
        self,
        session: AsyncSession,
        *,
        account: Account,
        request: NewMessage,
        idempotency_key: str | None,
        now: datetime,
    ) -> tuple[MessageView, bool]:
        """Store the message and start it; (view, created). A repeated key returns the first."""
        repo = MessageRepository(session)
        if idempotency_key is not None:
            earlier = await repo.by_key(account.id, idempotency_key)
            if earlier is not None and now - earlier.created_at >= IDEMPOTENCY_WINDOW:
                await repo.forget_key(earlier.id)
                earlier = None
            if earlier is not None:
                return await self._same_request(session, earlier, _request_hash(request)), False
        checked = await self.check(
            session, account=account, request=request, idempotency_key=idempotency_key, now=now
        )
        try:
            [view] = await self.store(session, [checked], now=now)
        except DuplicateKey:  # a concurrent POST with the same key won the race
            assert idempotency_key is not None
            earlier = await repo.by_key(account.id, idempotency_key)
            if earlier is None:
                raise
            return await self._same_request(session, earlier, _request_hash(request)), False
        return view, True

    async def check(
        self,
        session: AsyncSession,
        *,
        account: Account,
        request: NewMessage,
        idempotency_key: str | None,
        now: datetime,
        media_of: MediaLookup | None = None,
    ) -> Checked:
        """Check a new message and build it, reading only (what `accept` stores).
        `media_of` looks the file up instead of `session` (the API batches those reads
        across concurrent requests)."""
        try:
            to = to_e164(request.to, unassigned_ok=request.unassigned_number_ok)
        except InvalidNumber as exc:
            raise ValidationFailed(f"to: {exc}") from None
        try:
            format_named(request.callback_format)
        except ValueError as exc:
            raise ValidationFailed(f"callback_format: {exc}") from None
        # The file first: `media_of` may wait for a batch that needs a pooled
        # connection, and must not wait while this session holds one (db/batch_read.py).
        media = await self._media(session, account, request, media_of)
        plan = await self._plan(session, account, request)
        if media is not None and any(step.channel is Channel.WHATSAPP for step in plan):
            why = content_refusal(media, request.caption, request.template)
            if why is not None:
                raise ValidationFailed(why)
        # A new message starts from the plan's initial state: no log to replay and no
        # row to lock, so storing it is a handful of inserts (the hot path of the API).
        accepted = Accepted(at=now)
        after, effects, entry = transition(MessageState(plan=plan), accepted)
        message = Message(
            snapshot=Snapshot(state=after, seq=1),
            id=new_id("msg"),
            account_id=account.id,
            sender_id=plan[0].sender_id or "",
            plan=plan,
            to=to,
            media_id=media.id if media is not None else None,
            media_url=request.media_url,
            provider=request.provider,
            # A fetched file's name is known once fetched (Content-Disposition, URL).
            filename=request.filename or (media.filename if media is not None else ""),
            caption=request.caption,
            reply_to=request.reply_to,
            template=request.template,
            reference=request.reference,
            callback_url=request.callback_url,
            callback_format=request.callback_format,
            origin=request.origin,
            idempotency_key=idempotency_key,
            request_hash=_request_hash(request),
            status=str(after.status),
            created_at=now,
            updated_at=now,
        )
        return Checked(
            message=message, accepted=accepted, state=after, effects=effects, entry=entry
        )

    async def store(
        self, session: AsyncSession, checked: Sequence[Checked], *, now: datetime
    ) -> list[MessageView]:
        """Store checked messages and start them: their rows, acceptance events and
        jobs (the outbox), each kind in one statement. `DuplicateKey` when the one
        message given holds an idempotency key another message took; several messages
        stored at once must hold none."""
        repo = MessageRepository(session)
        try:
            if len(checked) == 1:
                await repo.add(checked[0].message)  # with a savepoint if it holds a key
            else:
                await repo.add_many([c.message for c in checked])
        except ReferenceGone:
            # Read by `check`, removed before this commit (a group's batch then goes
            # again one message at a time, and only this one fails).
            raise Conflict(
                "the account, sender or file this message names was removed while it "
                "was accepted: check them and send it again"
            ) from None
        rows = [
            _event_row(c.message.id, 1, c.accepted, c.entry, source="api", now=now) for c in checked
        ]
        await repo.append_events(rows)
        await _carry_out_all(session, [(c.message, c.state, c.effects) for c in checked], now)
        return [
            MessageView(
                message=c.message,
                state=c.state,
                events=[(1, now, "api", row["event"], c.entry.applied, row["note"])],
            )
            for c, row in zip(checked, rows, strict=True)
        ]

    async def _same_request(
        self, session: AsyncSession, earlier: Message, digest: str
    ) -> MessageView:
        if earlier.request_hash != digest:
            raise Conflict(
                "this Idempotency-Key was used for a different request in the last 24 hours"
            )
        return await self._view(session, earlier)

    async def _media(
        self,
        session: AsyncSession,
        account: Account,
        request: NewMessage,
        media_of: MediaLookup | None,
    ) -> Media | None:
        """The stored file a send names; None for a send by URL (fetched later)."""
        if (request.media_id is None) == (request.media_url is None):
            raise ValidationFailed("give exactly one of media_id and media_url")
        if request.media_id is None:
            if request.provider is not None:
                found = await ProviderRepository(session).get_by_name(account.id, request.provider)
                if found is None:
                    raise ProviderNotFound(
                        f"provider: no media provider {request.provider!r} in this account"
                    )
                assert request.media_url is not None
                if not provider_allows(found[0].allowed, request.media_url):
                    raise ValidationFailed(
                        f"media_url: provider {request.provider!r} is restricted to other hosts"
                    )
            if request.caption is not None and len(request.caption) > CAPTION_MAX:
                raise ValidationFailed(f"caption: longer than WhatsApp's {CAPTION_MAX} characters")
            return None
        if request.provider is not None:
            raise ValidationFailed("provider: only with media_url")
        if media_of is not None:
            media = await media_of(account.id, request.media_id)
        else:
            media = await MediaRepository(session).get(request.media_id, account_id=account.id)
        if media is None:
            raise MediaNotFound(f"media_id: no media {request.media_id!r} in this account")
        return media

    async def attach_media(self, session: AsyncSession, *, message_id: str, media: Media) -> None:
        """The fetched file becomes the message's (the first fetch wins a race)."""
        await MessageRepository(session).attach_media(message_id, media.id, media.filename)

    async def set_default_plan(
        self,
        session: AsyncSession,
        *,
        account: Account,
        channels: tuple[dict[str, Any], ...] | None,
    ) -> Account:
        """The plan of sends that give none (None: WhatsApp only), checked as a send's."""
        if channels is not None:
            await self._resolve(session, account, channels, None, "default_channels")
        await AccountRepository(session).set_default_channels(
            account.id, list(channels) if channels is not None else None
        )
        api_keys.forget_keys()  # a key read holds its account, default plan included
        return replace(account, default_channels=channels)

    async def _plan(self, session: AsyncSession, account: Account, request: NewMessage) -> Plan:
        """The request's channels (else the account's default plan), senders resolved."""
        if request.channels is not None:
            return await self._resolve(
                session, account, request.channels, request.sender, "channels"
            )
        docs = account.default_channels or WHATSAPP_ONLY
        field = "the account's default_channels"
        return await self._resolve(session, account, docs, request.sender, field)

    async def _resolve(
        self,
        session: AsyncSession,
        account: Account,
        docs: tuple[dict[str, Any], ...],
        whatsapp_sender: str | None,
        field: str,
    ) -> Plan:
        if not docs:
            raise ValidationFailed(f"{field}: give at least one channel")
        steps: list[PlanStep] = []
        for i, doc in enumerate(docs):
            where = f"{field}[{i}]"
            try:
                channel = Channel(doc["channel"])
                text = doc.get("text")
                if text is not None:
                    check_sms_text(text)
                step = PlanStep(
                    channel=channel,
                    success=Success(doc.get("success") or Success.DELIVERED),
                    fallback_time=doc.get("fallback_time"),
                    text=text,
                )
            except (KeyError, ValueError) as exc:
                raise ValidationFailed(f"{where}: {exc}") from None
            if any(s.channel is channel for s in steps):
                # A second attempt on one channel would double-send and double-charge.
                raise ValidationFailed(f"{where}: {channel} appears twice in the plan")
            name = doc.get("sender") or (whatsapp_sender if channel is Channel.WHATSAPP else None)
            sender_id = await self._sender_id(session, account, channel, name, where)
            steps.append(replace(step, sender_id=sender_id))
        return make_plan(steps)

    async def _sender_id(
        self,
        session: AsyncSession,
        account: Account,
        channel: Channel,
        name: str | None,
        where: str,
    ) -> str:
        if channel is Channel.SMS:
            if name is not None:
                return (await senders.sms_get(session, account=account, name=name)).id
            sms = await senders.sms_default_for(session, account=account)
            if sms is None:
                raise SenderNotFound(
                    f"{where}: this account has no SMS sender: add one (POST /v1/sms-senders)"
                )
            return sms.id
        if name is not None:
            return (await senders.get(session, account=account, name=name)).id
        found = await senders.default_for(session, account=account)
        if found is None:
            raise SenderNotFound("this account has no sender: add one (POST /v1/senders)")
        return found.id

    async def apply(
        self, session: AsyncSession, message_id: str, event: Event, *, source: str, now: datetime
    ) -> MessageState:
        """Apply one event: log it, carry out its effects, keep the status column current."""
        repo = MessageRepository(session)
        message = await repo.get(message_id, lock=True)
        if message is None:
            raise MessageNotFound(f"no message {message_id!r}")
        return await _apply_held(session, repo, message, [(event, source)], now)

    async def apply_many(
        self,
        session: AsyncSession,
        events: Sequence[tuple[str, Event]],
        *,
        source: str,
        now: datetime,
    ) -> None:
        """Apply events to several messages, (message id, event) each, exactly as `apply`
        called for each in turn would (each message's events in the given order), with
        the messages read and locked (in id order: two batches cannot deadlock), their
        events logged and their states saved in one statement each."""
        if not events:
            return
        by_message: dict[str, list[tuple[Event, str]]] = {}
        for message_id, event in events:
            by_message.setdefault(message_id, []).append((event, source))
        repo = MessageRepository(session)
        found = await repo.get_many(sorted(by_message), lock=True)
        logged: list[dict[str, Any]] = []
        saved: list[tuple[str, Snapshot, datetime | None]] = []
        for message_id in sorted(by_message):
            message = found.get(message_id)
            if message is None:
                raise MessageNotFound(f"no message {message_id!r}")
            _, rows, save = await _advance(session, repo, message, by_message[message_id], now)
            logged += rows
            saved.append(save)
        await repo.append_events(logged)
        await repo.save_states(saved)

    async def page(
        self,
        session: AsyncSession,
        *,
        account: Account,
        limit: int,
        before: tuple[datetime, str] | None,
        status: str | None = None,
        to: str | None = None,
        since: datetime | None = None,
    ) -> list[MessageView]:
        if to is not None:
            try:
                to = to_e164(to)
            except InvalidNumber as exc:
                raise ValidationFailed(f"to: {exc}") from None
        repo = MessageRepository(session)
        found = await repo.page(
            account.id, limit=limit, before=before, status=status, to=to, since=since
        )
        # One query for the page's logs, not one per message.
        logs = await repo.events_of([m.id for m in found]) if found else {}
        return [_view_of(m, logs.get(m.id, [])) for m in found]

    async def view(
        self, session: AsyncSession, *, account: Account, message_id: str
    ) -> MessageView:
        message = await MessageRepository(session).get(message_id, account_id=account.id)
        if message is None:
            raise MessageNotFound(f"no message {message_id!r} in this account")
        return await self._view(session, message)

    async def _view(self, session: AsyncSession, message: Message) -> MessageView:
        return _view_of(message, await MessageRepository(session).events(message.id))

    async def prepare_send(
        self,
        session: AsyncSession,
        sealer: Sealer,
        *,
        message_id: str,
        attempt: int,
        now: datetime,
        for_send_of: ForSendLookup | None = None,
    ) -> SendPlan | SmsSendPlan | PendingFetch | None:
        """What the send job needs; None when the attempt should not send any more;
        `PendingFetch` when a send by URL must fetch its file first. `for_send_of` reads
        the message and what comes with it instead of `session` (a worker batches those
        reads across its concurrent jobs: `read_for_send`), before `session` is used."""
        repo = MessageRepository(session)
        if for_send_of is not None:
            found = await for_send_of(message_id)
        else:
            found = (await repo.for_send([message_id])).get(message_id)
        if found is None:
            return None
        message = found.message
        if not should_send((await _snapshot(repo, message))[0], attempt):
            return None
        step = message.plan[attempt]
        if message.media_id is None:
            if message.media_url is None:
                raise MediaNotFound(f"message {message_id} has no file")
            return PendingFetch(
                account_id=message.account_id,
                url=message.media_url,
                provider=message.provider,
                filename=message.filename or None,
            )
        media = found.media
        if media is None:
            raise MediaNotFound(f"the file of message {message_id} is gone (retention?)")
        if step.channel is Channel.SMS:
            sms, sms_secrets = await senders.sms_with_secrets(
                session, sealer, step.sender_id or message.sender_id
            )
            return SmsSendPlan(
                message=message, step=step, sender=sms, secrets=sms_secrets, media=media
            )
        sender, secrets = await senders.with_secrets(
            session, sealer, step.sender_id or message.sender_id
        )
        reuse_after = now - UPLOAD_REUSE
        if sender.id == message.sender_id:  # what `for_send` read is about this sender
            last = found.last_inbound_at
            uploaded = (
                found.uploaded[0] if found.uploaded and found.uploaded[1] > reuse_after else None
            )
        else:
            last = await WebhookRepository(session).last_inbound(sender.id, whatsapp_id(message.to))
            uploaded = await repo.uploaded(sender.id, media.sha256, after=reuse_after)
        return SendPlan(
            message=message,
            sender=sender,
            secrets=secrets,
            media=media,
            window_open=window_state(last, now).open,
            uploaded_media_id=uploaded,
        )

    async def read_for_send(
        self, session: AsyncSession, message_ids: list[str]
    ) -> dict[str, ForSend]:
        """What `prepare_send` reads first, for several messages in one query (for
        `db.batch_read.BatchRead`)."""
        return await MessageRepository(session).for_send(message_ids)

    async def awaits_report(self, session: AsyncSession, *, message_id: str, attempt: int) -> bool:
        """Whether an attempt that was sent still has no final status (for polling)."""
        repo = MessageRepository(session)
        message = await repo.get(message_id)
        if message is None:
            return False
        state, _ = await _snapshot(repo, message)
        if not 0 <= attempt < len(state.attempts):
            return False
        return state.attempts[attempt].status in (AttemptStatus.QUEUED, AttemptStatus.SENT)

    async def remember_upload(
        self, session: AsyncSession, *, sender_id: str, sha256: str, media_id: str, now: datetime
    ) -> None:
        await MessageRepository(session).remember_upload(sender_id, sha256, media_id, now)

    async def forget_upload(self, session: AsyncSession, *, sender_id: str, sha256: str) -> None:
        await MessageRepository(session).forget_upload(sender_id, sha256)

    async def sent(
        self, session: AsyncSession, records: Sequence[SentRecord], *, now: datetime
    ) -> None:
        """Record sends the providers accepted: their ids (for statuses) and events.

        A status webhook can be processed before this commits (Meta reports `sent` at
        once); it found no id to match and was only stored. Both sides hold the provider
        id until they commit, so such early statuses are found and applied here. Several
        sends (a worker's concurrent jobs) cost the statements of one: the ids are held
        and the messages locked each in one statement, in a fixed order (see
        `apply_many`), and the refs, events and states written each in one.
        """
        if not records:
            return
        webhook_repo, repo = WebhookRepository(session), MessageRepository(session)
        keys = [(r.sender_id, r.provider_id) for r in records]
        await webhook_repo.hold_provider_ids(keys)
        # The messages' row locks before any row that refers to them: inserting a ref
        # takes a key-share lock on its message, and two sends of one message recorded
        # at once (a late WhatsApp send and its SMS fallback), each holding that and
        # then asking for the row lock, deadlocked; the loser's retry sent again.
        found = await repo.get_many(sorted({r.message_id for r in records}), lock=True)
        missing = {r.message_id for r in records} - found.keys()
        if missing:
            raise MessageNotFound(f"no message {sorted(missing)[0]!r}")
        await repo.add_refs(
            [(r.sender_id, r.provider_id, r.message_id, r.attempt) for r in records]
        )
        early = await webhook_repo.statuses_of(keys)
        # Each send, then its early statuses, applied in turn; one read and write each.
        by_message: dict[str, list[tuple[Event, str]]] = {}
        for key, r in zip(keys, records, strict=True):
            events = by_message.setdefault(r.message_id, [])
            events.append((r.event, "send"))
            source = "sms" if r.channel is Channel.SMS else "whatsapp"
            events += [(status_report(s, r.attempt, r.channel), source) for s in early.get(key, [])]
        logged: list[dict[str, Any]] = []
        saved: list[tuple[str, Snapshot, datetime | None]] = []
        for message_id in sorted(by_message):
            _, rows, save = await _advance(
                session, repo, found[message_id], by_message[message_id], now
            )
            logged += rows
            saved.append(save)
        await repo.append_events(logged)
        await repo.save_states(saved)

    async def for_provider_id(
        self, session: AsyncSession, sender_id: str, provider_id: str
    ) -> tuple[str, int] | None:
        return await MessageRepository(session).ref(sender_id, provider_id)

    async def for_provider_ids(
        self, session: AsyncSession, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str, int]]:
        """`for_provider_id` for several (sender id, provider id) keys, in one query."""
        return await MessageRepository(session).refs(keys)


def _event_row(
    message_id: str, seq: int, event: Event, entry: LogEntry, *, source: str, now: datetime
) -> dict[str, Any]:
    """The event log row of one event (MessageRepository.append_events)."""
    return {
        "message_id": message_id,
        "seq": seq,
        "at": event.at,
        "recorded_at": now,
        "source": source,
        "event": event_to_json(event),
        "applied": entry.applied,
        "note": str(entry.reason) if entry.reason else None,
    }


async def _apply_held(
    session: AsyncSession,
    repo: MessageRepository,
    message: Message,
    events: Sequence[tuple[Event, str]],
    now: datetime,
) -> MessageState:
    """Apply (event, source) pairs to a message this transaction holds: log, effects,
    snapshot."""
    after, logged, saved = await _advance(session, repo, message, events, now)
    await repo.append_events(logged)
    await repo.save_states([saved])
    return after


async def _advance(
    session: AsyncSession,
    repo: MessageRepository,
    message: Message,
    events: Sequence[tuple[Event, str]],
    now: datetime,
) -> tuple[MessageState, list[dict[str, Any]], tuple[str, Snapshot, datetime | None]]:
    """Run a held message's (event, source) pairs through the state machine and carry
    out their effects: (the state after them, their log rows, the snapshot to save).
    The caller writes the rows and the snapshot."""
    state, last = await _snapshot(repo, message)
    changed = False
    rows: list[dict[str, Any]] = []
    for event, source in events:
        after, effects, entry = transition(state, event)
        # The row lock (PostgreSQL) or the write lock (SQLite) makes last + 1 the next seq.
        last += 1
        rows.append(_event_row(message.id, last, event, entry, source=source, now=now))
        await _carry_out(session, message, after, effects, now)
        changed = changed or after.status != state.status or entry.applied
        state = after
    return state, rows, (message.id, Snapshot(state=state, seq=last), now if changed else None)


async def _carry_out(
    session: AsyncSession,
    message: Message,
    state: MessageState,
    effects: tuple[Effect, ...],
    now: datetime,
) -> None:
    """Effects become jobs in the event's own transaction (the outbox)."""
    await _carry_out_all(session, [(message, state, effects)], now)


async def _carry_out_all(
    session: AsyncSession,
    changes: Sequence[tuple[Message, MessageState, tuple[Effect, ...]]],
    now: datetime,
) -> None:
    """`_carry_out` for several messages' (message, state after, effects): their jobs
    added in one statement."""
    jobs: list[NewJob] = []
    for message, _, effects in changes:
        for effect in effects:
            if isinstance(effect, StartAttempt):
                jobs.append(
                    NewJob(
                        kind=SEND_KIND,
                        payload={"message_id": message.id, "attempt": effect.attempt},
                        run_at=now,
                        dedupe_key=f"send:{message.id}:{effect.attempt}",
                        priority=Priority.FALLBACK if effect.attempt > 0 else Priority.NORMAL,
                    )
                )
            elif isinstance(effect, ScheduleDeadline):
                jobs.append(
                    NewJob(
                        kind=DEADLINE_KIND,
                        payload={"message_id": message.id, "attempt": effect.attempt},
                        run_at=effect.at,
                        dedupe_key=f"deadline:{message.id}:{effect.attempt}",
                        priority=Priority.TIMER,
                    )
                )
    await JobRepository(session).enqueue_all(jobs, now=now)
    # Notify: one signed callback delivery per matching target, with the state after it.
    await callbacks.notify_many(session, changes, now=now)


def status_report(
    status: StatusUpdate, attempt: int, channel: Channel = Channel.WHATSAPP
) -> StatusReport:
    """A provider's status of an attempt as the state machine's event."""
    disposition = None
    reason = status.error_details or status.error_title
    if status.status == "failed":
        classify = classify_sms if channel is Channel.SMS else classify_whatsapp
        verdict = classify(status.error_code, None)
        disposition = verdict.disposition
        reason = f"{verdict.reason}: {reason}" if reason else verdict.reason
    return StatusReport(
        at=status.at,
        attempt=attempt,
        status=AttemptStatus(status.status),
        provider_code=status.error_code,
        reason=reason,
        disposition=disposition,
    )


def _view_of(message: Message, events: list[StoredEvent]) -> MessageView:
    # The state that apply() acted on: the snapshot (the replay for older messages).
    state = message.snapshot.state if message.snapshot else _replay(message, events)
    return MessageView(message=message, state=state, events=events)


async def _snapshot(repo: MessageRepository, message: Message) -> tuple[MessageState, int]:
    """The message's state and the number of its last event."""
    if message.snapshot is not None:
        return message.snapshot.state, message.snapshot.seq
    log = await repo.events(message.id)
    return _replay(message, log), len(log)


def _replay(message: Message, events: list[StoredEvent]) -> MessageState:
    return replay(MessageState(plan=message.plan), (event_from_json(e[3]) for e in events))


def _request_hash(request: NewMessage) -> str:
    canonical = json.dumps(
        {k: getattr(request, k) for k in request.__slots__}, sort_keys=True, default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def content_refusal(
    media: Media, caption: str | None, template: dict[str, Any] | None
) -> str | None:
    """Why WhatsApp would refuse this file with this caption and template, if it would:
    checked at once for a stored file, by the send job for a fetched one."""
    if not media.whatsapp_sendable or media.whatsapp_sent_as is None:
        return f"media_id: WhatsApp cannot carry this file: {media.whatsapp_reason}"
    if caption is not None:
        if len(caption) > CAPTION_MAX:
            return f"caption: longer than WhatsApp's {CAPTION_MAX} characters"
        if media.whatsapp_sent_as not in CAPTIONED:
            return f"caption: WhatsApp shows none on {media.whatsapp_sent_as} files"
    if template is not None:
        if media.whatsapp_sent_as not in TEMPLATE_HEADERS:
            return f"template: a template header cannot carry a {media.whatsapp_sent_as}"
        if media.whatsapp_sent_as == "document" and media.mime_type != "application/pdf":
            return "template: WhatsApp template document headers take PDF only"
    return None


messages = MessageService()
