"""Message repository: messages, their event logs, and provider ids to attempts."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Select,
    Table,
    Update,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.util import identity_key

from wafile.core.media import Media
from wafile.core.message import Message, Snapshot
from wafile.core.message_codec import snapshot_from_json, snapshot_to_json
from wafile.core.plan import Channel, Plan, PlanStep, make_plan, plan_from_json, plan_to_json
from wafile.db.engine import ReferenceGone
from wafile.db.lists import padded
from wafile.db.media import media_from_row
from wafile.db.tables import (
    AttemptRefRow,
    ConversationWindowRow,
    MediaRow,
    MessageEventRow,
    MessageRow,
    WhatsAppMediaRow,
)

__all__ = ["DuplicateKey", "ForSend", "MessageRepository", "StoredEvent"]


class DuplicateKey(Exception):
    """Another message of the account holds this idempotency key."""


StoredEvent = tuple[int, datetime, str, dict[str, Any], bool, str | None]


_messages = cast(Table, MessageRow.__table__)
_events = cast(Table, MessageEventRow.__table__)
_INSERT_MESSAGE = insert(_messages)


def _message(row: MessageRow) -> Message:
    plan = plan_from_json(row.plan) if row.plan else _whatsapp_only(row.sender_id)
    return Message(
        id=row.id,
        account_id=row.account_id,
        sender_id=row.sender_id,
        to=row.to_number,
        media_id=row.media_id,
        filename=row.filename,
        caption=row.caption,
        reply_to=row.reply_to,
        template=row.template,
        reference=row.reference,
        callback_url=row.callback_url,
        idempotency_key=row.idempotency_key,
        request_hash=row.request_hash,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        plan=plan,
        media_url=row.media_url,
        provider=row.provider,
        origin=row.origin,
        callback_format=row.callback_format,
        snapshot=snapshot_from_json(plan, row.state) if row.state else None,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ForSend:
    """A message with what sending it needs, read at once (`MessageRepository.for_send`).

    `last_inbound_at` and `uploaded` are about the message's own sender (the first
    step's): the recipient's last message to it, and Meta's (media id, upload time) for
    the file there. A later step with another sender must look its own up.
    """

    message: Message
    media: Media | None
    last_inbound_at: datetime | None
    uploaded: tuple[str, datetime] | None


def _row_of(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "account_id": message.account_id,
        "sender_id": message.sender_id,
        "to_number": message.to,
        "media_id": message.media_id,
        "filename": message.filename,
        "caption": message.caption,
        "reply_to": message.reply_to,
        "template": message.template,
        "reference": message.reference,
        "callback_url": message.callback_url,
        "idempotency_key": message.idempotency_key,
        "request_hash": message.request_hash,
        "status": message.status,
        "created_at": message.created_at,
        "updated_at": message.updated_at,
        "plan": plan_to_json(message.plan),
        "media_url": message.media_url,
        "provider": message.provider,
        "origin": message.origin,
        "callback_format": message.callback_format,
        "state": snapshot_to_json(message.snapshot) if message.snapshot else None,
    }


def _whatsapp_only(sender_id: str) -> Plan:
    """The plan of a message stored before plans existed."""
    return make_plan([PlanStep(channel=Channel.WHATSAPP, sender_id=sender_id)])


def _for_send() -> Select[MessageRow, MediaRow, datetime, str, datetime]:
    m, media, window, upload = MessageRow, MediaRow, ConversationWindowRow, WhatsAppMediaRow
    return (
        select(m, media, window.last_inbound_at, upload.media_id, upload.uploaded_at)
        .outerjoin(media, media.id == m.media_id)
        .outerjoin(
            window,
            and_(
                window.sender_id == m.sender_id,
                # core.phones.whatsapp_id in SQL: the E.164 number without its `+`.
                window.wa_id == func.ltrim(m.to_number, "+"),
            ),
        )
        .outerjoin(upload, and_(upload.sender_id == m.sender_id, upload.sha256 == media.sha256))
        .where(m.id.in_(bindparam("message_ids", expanding=True)))
    )


# Built once: SQLAlchemy keeps a statement object's cache key, which it otherwise
# works out again at every execution (a join of four tables, once per send).
_FOR_SEND = _for_send()


def _save_state() -> Update:
    table = cast(Table, MessageRow.__table__)
    return (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            state=bindparam("b_state"),
            status=bindparam("b_status"),
            # No change a reader sees keeps updated_at (NULL: keep it).
            updated_at=func.coalesce(
                bindparam("b_changed_at", type_=table.c.updated_at.type), table.c.updated_at
            ),
        )
    )


# Built once, as _FOR_SEND: statements every sent batch and status webhook runs.
_GET_MANY = (
    select(MessageRow)
    .where(MessageRow.id.in_(bindparam("message_ids", expanding=True)))
    .order_by(MessageRow.id)
)
_GET_MANY_LOCKED = _GET_MANY.with_for_update()
_SAVE_STATE = _save_state()


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, message: Message) -> None:
        """Insert; `DuplicateKey` when the idempotency key is taken (also under a race)."""
        # A Core INSERT on the table: the ORM's unit of work cost more CPU than the
        # statement itself on the API's hottest path.
        # The row as parameters of one statement built once (building `.values(row)`
        # per message cost more than running it).
        row = _row_of(message)
        if message.idempotency_key is None:  # nothing else can collide: no savepoint
            await self._insert([row])
            return
        try:
            async with self._session.begin_nested():
                await self._session.execute(_INSERT_MESSAGE, row)
        except IntegrityError:
            raise DuplicateKey(message.idempotency_key) from None

    async def add_many(self, messages: list[Message]) -> None:
        """Insert several messages in one statement; none may hold an idempotency key
        (a taken key would fail them all: give such a message to `add`)."""
        if any(m.idempotency_key is not None for m in messages):
            raise ValueError("add_many takes messages without an idempotency key")
        await self._insert([_row_of(m) for m in messages])

    async def _insert(self, rows: list[dict[str, Any]]) -> None:
        # A fresh id collides with nothing: what can fail is a reference.
        try:
            await self._session.execute(_INSERT_MESSAGE, rows)
        except IntegrityError as exc:
            raise ReferenceGone(str(exc.orig)) from exc

    async def get(
        self, message_id: str, *, account_id: str | None = None, lock: bool = False
    ) -> Message | None:
        """One message; `lock` holds it (PostgreSQL) while its events are applied."""
        stmt = select(MessageRow).where(MessageRow.id == message_id)
        if account_id is not None:
            stmt = stmt.where(MessageRow.account_id == account_id)
        if lock and self._session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = await self._session.scalar(stmt)
        return _message(row) if row else None

    async def for_send(self, message_ids: Collection[str]) -> dict[str, ForSend]:
        """Each message with its file, its window and its file's upload, all in one
        query (a send job's preparation read them one by one: four round trips per
        message; concurrent jobs' reads go together, see `db.batch_read`)."""
        params = {"message_ids": padded(sorted(set(message_ids)))}
        found: dict[str, ForSend] = {}
        for (
            message_row,
            media_row,
            last_inbound_at,
            upload_id,
            uploaded_at,
        ) in await self._session.execute(_FOR_SEND, params):
            found[message_row.id] = ForSend(
                message=_message(message_row),
                media=media_from_row(media_row) if media_row is not None else None,
                last_inbound_at=last_inbound_at,
                uploaded=(upload_id, uploaded_at) if upload_id is not None else None,
            )
        return found

    async def get_many(self, message_ids: list[str], *, lock: bool = False) -> dict[str, Message]:
        """Several messages by id, in one query; `lock` holds them (PostgreSQL) in id
        order, so two transactions locking overlapping sets cannot deadlock."""
        locks = lock and self._session.get_bind().dialect.name == "postgresql"
        stmt = _GET_MANY_LOCKED if locks else _GET_MANY
        rows = await self._session.scalars(stmt, {"message_ids": padded(message_ids)})
        return {row.id: _message(row) for row in rows}

    async def page(
        self,
        account_id: str,
        *,
        limit: int,
        before: tuple[datetime, str] | None,
        status: str | None,
        to: str | None,
        since: datetime | None,
    ) -> list[Message]:
        """Newest first; `before` is the (created_at, id) of the last item seen."""
        stmt = select(MessageRow).where(MessageRow.account_id == account_id)
        if status is not None:
            stmt = stmt.where(MessageRow.status == status)
        if to is not None:
            stmt = stmt.where(MessageRow.to_number == to)
        if since is not None:
            stmt = stmt.where(MessageRow.created_at >= since)
        if before is not None:
            at, last_id = before
            stmt = stmt.where(
                or_(
                    MessageRow.created_at < at,
                    and_(MessageRow.created_at == at, MessageRow.id < last_id),
                )
            )
        stmt = stmt.order_by(MessageRow.created_at.desc(), MessageRow.id.desc()).limit(limit)
        return [_message(row) for row in await self._session.scalars(stmt)]

    async def callback_format(self, message_id: str) -> str | None:
        """The format its `callback_url` receives (core.callback_formats); None: no message."""
        found: str | None = await self._session.scalar(
            select(MessageRow.callback_format).where(MessageRow.id == message_id)
        )
        return found

    async def by_key(self, account_id: str, key: str) -> Message | None:
        row = await self._session.scalar(
            select(MessageRow).where(
                MessageRow.account_id == account_id, MessageRow.idempotency_key == key
            )
        )
        return _message(row) if row else None

    async def forget_key(self, message_id: str) -> None:
        """Release an expired idempotency key, so it can name a new message."""
        await self._session.execute(
            update(MessageRow).where(MessageRow.id == message_id).values(idempotency_key=None)
        )

    async def save_states(self, saves: list[tuple[str, Snapshot, datetime | None]]) -> None:
        """Keep the state after an event of several messages, (id, snapshot,
        changed_at) each, in one executemany statement; `changed_at` moves `updated_at`
        (None: the event changed nothing a reader sees)."""
        await self._session.execute(
            _SAVE_STATE,
            [
                {
                    "b_id": message_id,
                    "b_state": snapshot_to_json(snapshot),
                    "b_status": str(snapshot.state.status),
                    "b_changed_at": changed_at,
                }
                for message_id, snapshot, changed_at in saves
            ],
        )
        # A Core statement leaves rows this session loaded stale: a later `get` in the
        # same transaction (messages.sent applies several events) must read them again.
        for message_id, _, _ in saves:
            loaded = self._session.identity_map.get(identity_key(MessageRow, message_id))
            if loaded is not None:
                self._session.expire(loaded)

    async def attach_media(self, message_id: str, media_id: str, filename: str) -> bool:
        """Set the fetched file of a send by URL, unless another run set it first; the
        filename only if the request gave none."""
        row = MessageRow
        result = await self._session.execute(
            update(row)
            .where(row.id == message_id, row.media_id.is_(None))
            .values(
                media_id=media_id, filename=func.coalesce(func.nullif(row.filename, ""), filename)
            )
        )
        return bool(getattr(result, "rowcount", 0))

    async def events(self, message_id: str) -> list[StoredEvent]:
        return (await self.events_of([message_id])).get(message_id, [])

    async def events_of(self, message_ids: list[str]) -> dict[str, list[StoredEvent]]:
        """The logs of several messages in one query (a page of messages), by id."""
        stmt = (
            select(MessageEventRow)
            .where(MessageEventRow.message_id.in_(message_ids))
            .order_by(MessageEventRow.message_id, MessageEventRow.seq)
        )
        logs: dict[str, list[StoredEvent]] = {}
        for r in await self._session.scalars(stmt):
            logs.setdefault(r.message_id, []).append(
                (r.seq, r.recorded_at, r.source, r.event, r.applied, r.note)
            )
        return logs

    async def append_events(self, events: list[dict[str, Any]]) -> None:
        """Append events (rows: message_id, seq, at, recorded_at, source, event,
        applied, note) in one statement. The caller holds each message (its row lock,
        or SQLite's write lock), so its next seq is the last + 1; (message_id, seq) is
        unique, so a wrong number fails, never forks."""
        if not events:
            return
        # The table, not the mapped class: the ORM's bulk insert cost more CPU per row.
        await self._session.execute(insert(_events), events)

    async def add_refs(self, refs: list[tuple[str, str, str, int]]) -> None:
        """Map provider ids to attempts, (sender id, provider id, message id, attempt)
        each, in one statement."""
        table = cast(Table, AttemptRefRow.__table__)
        keys = ("sender_id", "provider_id", "message_id", "attempt")
        await self._session.execute(insert(table), [dict(zip(keys, r, strict=True)) for r in refs])

    async def uploaded(self, sender_id: str, sha256: str, *, after: datetime) -> str | None:
        """Meta's media id for this content on this sender, if uploaded after `after`."""
        row = await self._session.get(WhatsAppMediaRow, (sender_id, sha256))
        return row.media_id if row is not None and row.uploaded_at > after else None

    async def remember_upload(
        self, sender_id: str, sha256: str, media_id: str, now: datetime
    ) -> None:
        table = WhatsAppMediaRow
        postgres = self._session.get_bind().dialect.name == "postgresql"
        stmt = (pg_insert if postgres else sqlite_insert)(table).values(
            sender_id=sender_id, sha256=sha256, media_id=media_id, uploaded_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.sender_id, table.sha256],
            set_={"media_id": stmt.excluded.media_id, "uploaded_at": stmt.excluded.uploaded_at},
        )
        await self._session.execute(stmt)

    async def forget_upload(self, sender_id: str, sha256: str) -> None:
        await self._session.execute(
            delete(WhatsAppMediaRow).where(
                WhatsAppMediaRow.sender_id == sender_id, WhatsAppMediaRow.sha256 == sha256
            )
        )

    async def ref(self, sender_id: str, provider_id: str) -> tuple[str, int] | None:
        row = await self._session.get(AttemptRefRow, (sender_id, provider_id))
        return (row.message_id, row.attempt) if row else None

    async def refs(
        self, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str, int]]:
        """`ref` for several (sender id, provider id) keys in one query; unknown keys are
        left out."""
        if not keys:
            return {}
        table = AttemptRefRow
        rows = await self._session.execute(
            select(table.sender_id, table.provider_id, table.message_id, table.attempt).where(
                tuple_(table.sender_id, table.provider_id).in_(padded(keys))
            )
        )
        return {(r.sender_id, r.provider_id): (r.message_id, r.attempt) for r in rows}
