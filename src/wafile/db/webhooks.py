"""Webhook receipts, conversation windows, inbound messages and provider statuses.

Every insert here is idempotent on the provider's own ids, because providers deliver
at least once: a redelivered body changes nothing the first one did not.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.inbound import Inbound
from wafile.core.whatsapp_webhook import StatusUpdate
from wafile.db.engine import ReferenceGone
from wafile.db.lists import padded
from wafile.db.tables import (
    ConversationWindowRow,
    InboundMessageRow,
    ProviderStatusRow,
    WebhookReceiptRow,
)

__all__ = ["WebhookRepository"]

_statuses = cast(Table, ProviderStatusRow.__table__)
_ADD_RECEIPT = insert(cast(Table, WebhookReceiptRow.__table__))


# Built once: every sent batch and status webhook runs them.
_HOLD_PROVIDER_IDS = text(
    "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(x, 0)"
    " AS k FROM unnest(CAST(:keys AS text[])) AS x) AS held ORDER BY k"
)
_STATUSES_OF = (
    select(ProviderStatusRow)
    .where(
        tuple_(ProviderStatusRow.sender_id, ProviderStatusRow.provider_id).in_(
            bindparam("keys", expanding=True)
        )
    )
    .order_by(ProviderStatusRow.at, ProviderStatusRow.received_at)
)


class WebhookRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def _insert(self) -> Any:
        postgres = self._session.get_bind().dialect.name == "postgresql"
        return pg_insert if postgres else sqlite_insert

    async def add_receipt(self, receipt_id: str, sender_id: str, body: str, now: datetime) -> None:
        await self.add_receipts([(receipt_id, sender_id, body)], now)

    async def add_receipts(self, receipts: list[tuple[str, str, str]], now: datetime) -> None:
        """Store bodies, (receipt id, sender id, body) each, in one statement."""
        rows = [
            {"id": r, "sender_id": s, "body": b, "received_at": now, "processed_at": None}
            for r, s, b in receipts
        ]
        try:
            await self._session.execute(_ADD_RECEIPT, rows)
        except IntegrityError as exc:  # a fresh id collides with nothing: the sender
            raise ReferenceGone(str(exc.orig)) from exc

    async def claim_receipt(self, receipt_id: str, now: datetime) -> tuple[str, str] | None:
        """Mark a stored body processed and read it, in one statement: its (sender id,
        body), or None when it is gone or was processed already. The caller's
        transaction applies it; a rollback leaves it unprocessed. On PostgreSQL a
        second claimer waits for the first's commit, then finds it processed."""
        return (await self.claim_receipts([receipt_id], now)).get(receipt_id)

    async def claim_receipts(
        self, receipt_ids: Collection[str], now: datetime
    ) -> dict[str, tuple[str, str]]:
        """`claim_receipt` for several bodies in one statement: (sender id, body) by
        receipt id, for those not gone nor processed already."""
        if not receipt_ids:
            return {}
        table = WebhookReceiptRow
        rows = await self._session.execute(
            update(table)
            .where(table.id.in_(padded(receipt_ids)), table.processed_at.is_(None))
            .values(processed_at=now)
            .returning(table.id, table.sender_id, table.body)
            .execution_options(synchronize_session=False)
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    async def add_inbound(self, inbound: Inbound) -> bool:
        """Insert unless this (sender, wamid) is known; True when it was new."""
        stmt = (
            self._insert()(InboundMessageRow)
            .values(
                id=inbound.id,
                account_id=inbound.account_id,
                sender_id=inbound.sender_id,
                provider_id=inbound.provider_id,
                from_number=inbound.from_number,
                profile_name=inbound.profile_name,
                type=inbound.type,
                text=inbound.text,
                provider_media_id=inbound.provider_media_id,
                media_filename=inbound.media_filename,
                media_mime_type=inbound.media_mime_type,
                caption=inbound.caption,
                reply_to=inbound.reply_to,
                received_at=inbound.received_at,
                media_id=inbound.media_id,
                media_error=inbound.media_error,
            )
            .on_conflict_do_nothing(
                index_elements=[InboundMessageRow.sender_id, InboundMessageRow.provider_id]
            )
            .returning(InboundMessageRow.id)
        )
        return (await self._session.scalar(stmt)) is not None

    async def inbound(self, inbound_id: str) -> Inbound | None:
        row = await self._session.get(InboundMessageRow, inbound_id)
        return _inbound(row) if row else None

    async def set_inbound_media(
        self, inbound_id: str, *, media_id: str | None, error: str | None
    ) -> bool:
        """Record the file (or why there is none) once; True when this call did."""
        table = InboundMessageRow
        result = await self._session.execute(
            update(table)
            .where(table.id == inbound_id, table.media_id.is_(None), table.media_error.is_(None))
            .values(media_id=media_id, media_error=error)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def saw_user(self, sender_id: str, wa_id: str, at: datetime) -> None:
        """The user wrote at `at`: the window runs from the latest such time."""
        table = ConversationWindowRow
        stmt = self._insert()(table).values(sender_id=sender_id, wa_id=wa_id, last_inbound_at=at)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.sender_id, table.wa_id],
            # Webhooks arrive out of order: never move the window back.
            set_={"last_inbound_at": func.max(table.last_inbound_at, stmt.excluded.last_inbound_at)}
            if self._session.get_bind().dialect.name == "sqlite"
            else {
                "last_inbound_at": func.greatest(
                    table.last_inbound_at, stmt.excluded.last_inbound_at
                )
            },
        )
        await self._session.execute(stmt)

    async def last_inbound(self, sender_id: str, wa_id: str) -> datetime | None:
        row = await self._session.get(ConversationWindowRow, (sender_id, wa_id))
        return row.last_inbound_at if row else None

    async def add_status(self, values: dict[str, Any]) -> bool:
        """Record a (wamid, status) once; True when it was new."""
        stmt = (
            self._insert()(ProviderStatusRow)
            .values(**values)
            .on_conflict_do_nothing(
                index_elements=[
                    ProviderStatusRow.sender_id,
                    ProviderStatusRow.provider_id,
                    ProviderStatusRow.status,
                ]
            )
            .returning(ProviderStatusRow.id)
        )
        return (await self._session.scalar(stmt)) is not None

    async def add_statuses(self, rows: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        """`add_status` for several rows in one statement: the (sender id, provider id,
        status) keys that were new. Two rows with one key in `rows` cannot both be new
        on PostgreSQL (it refuses them): give each key once."""
        if not rows:
            return set()
        c = _statuses.c
        stmt = (
            self._insert()(_statuses)
            .on_conflict_do_nothing(index_elements=[c.sender_id, c.provider_id, c.status])
            .returning(c.sender_id, c.provider_id, c.status)
        )
        # Rows as parameters (compiled once, batched by SQLAlchemy), not `.values(rows)`
        # (compiled anew per batch: about 10 ms for a webhook of 50 statuses).
        return {(r[0], r[1], r[2]) for r in await self._session.execute(stmt, rows)}

    async def hold_provider_ids(self, keys: Collection[tuple[str, str]]) -> None:
        """`hold_provider_id` for several (sender id, provider id) keys in one statement,
        taken in the order of the lock numbers, so that two transactions holding
        overlapping sets wait for each other instead of deadlocking."""
        if not keys or self._session.get_bind().dialect.name != "postgresql":
            return
        # The same lock numbers as hold_provider_id. The lock function is volatile, so
        # PostgreSQL evaluates it after the sort, in ORDER BY's order.
        await self._session.execute(
            _HOLD_PROVIDER_IDS,
            {"keys": sorted({sender_id + provider_id for sender_id, provider_id in keys})},
        )

    async def hold_provider_id(self, sender_id: str, provider_id: str) -> None:
        """Serialise, until commit, the transactions that record a send's provider id or
        a status of it, so one of the two always sees the other (PostgreSQL; SQLite's
        BEGIN IMMEDIATE serialises every writer already)."""
        if self._session.get_bind().dialect.name == "postgresql":
            await self._session.execute(
                select(
                    func.pg_advisory_xact_lock(func.hashtextextended(sender_id + provider_id, 0))
                )
            )

    async def statuses_of(
        self, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], list[StatusUpdate]]:
        """The statuses stored for several (sender id, provider id) keys, in one query:
        each key's in the provider's order; keys with none are left out."""
        if not keys:
            return {}
        rows = await self._session.scalars(_STATUSES_OF, {"keys": padded(keys)})
        found: dict[tuple[str, str], list[StatusUpdate]] = {}
        for r in rows:
            found.setdefault((r.sender_id, r.provider_id), []).append(
                StatusUpdate(
                    phone_number_id="",  # routed already: the row names its sender
                    provider_id=r.provider_id,
                    status=r.status,
                    recipient_wa_id=r.recipient,
                    at=r.at,
                    error_code=r.error_code,
                    error_title=r.error_title,
                    error_details=r.error_details,
                )
            )
        return found

    async def inbound_page(
        self, account_id: str, *, limit: int, before: tuple[datetime, str] | None
    ) -> list[Inbound]:
        """Newest first; `before` is the (received_at, id) of the last item seen."""
        table = InboundMessageRow
        stmt = select(table).where(table.account_id == account_id)
        if before is not None:
            at, last_id = before
            stmt = stmt.where(
                or_(table.received_at < at, and_(table.received_at == at, table.id < last_id))
            )
        stmt = stmt.order_by(table.received_at.desc(), table.id.desc()).limit(limit)
        return [_inbound(row) for row in await self._session.scalars(stmt)]


def _inbound(row: InboundMessageRow) -> Inbound:
    return Inbound(
        id=row.id,
        account_id=row.account_id,
        sender_id=row.sender_id,
        provider_id=row.provider_id,
        from_number=row.from_number,
        profile_name=row.profile_name,
        type=row.type,
        text=row.text,
        provider_media_id=row.provider_media_id,
        media_filename=row.media_filename,
        media_mime_type=row.media_mime_type,
        caption=row.caption,
        reply_to=row.reply_to,
        received_at=row.received_at,
        media_id=row.media_id,
        media_error=row.media_error,
    )
