"""Sender repository: all SQL about senders. Credentials arrive and leave sealed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.senders import (
    Channel,
    DefaultTemplate,
    Sender,
    SmsSender,
    TwilioSender,
    WhatsAppSender,
)
from wafile.db.tables import SenderRow
from wafile.errors import SenderExists

__all__ = ["SenderRepository"]


AnySender = Sender | SmsSender


def _config(sender: AnySender) -> dict[str, Any]:
    if isinstance(sender, SmsSender):
        t = sender.sms
        return {
            "account_sid": t.account_sid,
            "from_number": t.from_number,
            "messaging_service_sid": t.messaging_service_sid,
            "base_url": t.base_url,
            "mps": t.mps,
        }
    w = sender.whatsapp
    return {
        "phone_number_id": w.phone_number_id,
        "waba_id": w.waba_id,
        "display_phone_number": w.display_phone_number,
        "graph_url": w.graph_url,
        "graph_version": w.graph_version,
        "mps": w.mps,
        "default_templates": [
            {"category": t.category, "name": t.name, "language": t.language}
            for t in w.default_templates
        ],
    }


def _whatsapp(config: dict[str, Any]) -> WhatsAppSender:
    values = dict(config)
    templates = values.pop("default_templates", None) or []
    return WhatsAppSender(
        **values, default_templates=tuple(DefaultTemplate(**t) for t in templates)
    )


def _sender(row: SenderRow) -> Sender:
    return Sender(
        id=row.id,
        account_id=row.account_id,
        name=row.name,
        channel=Channel(row.channel),
        whatsapp=_whatsapp(row.config),
        is_default=row.is_default,
        created_at=row.created_at,
    )


def _sms_sender(row: SenderRow) -> SmsSender:
    return SmsSender(
        id=row.id,
        account_id=row.account_id,
        name=row.name,
        sms=TwilioSender(**row.config),
        is_default=row.is_default,
        created_at=row.created_at,
    )


_WHATSAPP = SenderRow.channel == str(Channel.WHATSAPP)
_SMS = SenderRow.channel == str(Channel.SMS)


class SenderRepository:
    """WhatsApp senders through the plain methods, SMS senders through `sms_*`: one
    table (names are unique in an account across channels), two shapes of settings."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, sender: AnySender, *, sealed_secrets: str) -> None:
        """Insert; `SenderExists` when the account already has one by that name."""
        row = SenderRow(
            id=sender.id,
            account_id=sender.account_id,
            name=sender.name,
            channel=str(sender.channel),
            config=_config(sender),
            sealed_secrets=sealed_secrets,
            is_default=sender.is_default,
            created_at=sender.created_at,
        )
        try:
            # A savepoint keeps the caller's transaction usable after a conflict.
            async with self._session.begin_nested():
                self._session.add(row)
        except IntegrityError:
            raise SenderExists(f"a sender named {sender.name!r} already exists") from None
        if sender.is_default:  # at most one default per account and channel
            await self._session.execute(
                update(SenderRow)
                .where(
                    SenderRow.account_id == sender.account_id,
                    SenderRow.channel == str(sender.channel),
                    SenderRow.id != sender.id,
                )
                .values(is_default=False)
            )

    async def list_for(self, account_id: str) -> list[Sender]:
        stmt = (
            select(SenderRow)
            .where(SenderRow.account_id == account_id, _WHATSAPP)
            .order_by(SenderRow.created_at, SenderRow.id)
        )
        return [_sender(row) for row in await self._session.scalars(stmt)]

    async def get_by_name(self, account_id: str, name: str) -> Sender | None:
        row = await self._by_name(account_id, name)
        return _sender(row) if row is not None and row.channel == Channel.WHATSAPP else None

    async def get(self, sender_id: str) -> tuple[Sender, str] | None:
        """A sender by id (any account: webhooks and workers), with its sealed secrets."""
        row = await self._session.get(SenderRow, sender_id)
        if row is None or row.channel != Channel.WHATSAPP:
            return None
        return _sender(row), row.sealed_secrets

    async def default_for(self, account_id: str) -> Sender | None:
        """The account's default sender, else its oldest."""
        row = await self._default(account_id, Channel.WHATSAPP)
        return _sender(row) if row else None

    async def sms_list_for(self, account_id: str) -> list[SmsSender]:
        stmt = (
            select(SenderRow)
            .where(SenderRow.account_id == account_id, _SMS)
            .order_by(SenderRow.created_at, SenderRow.id)
        )
        return [_sms_sender(row) for row in await self._session.scalars(stmt)]

    async def sms_get_by_name(self, account_id: str, name: str) -> SmsSender | None:
        row = await self._by_name(account_id, name)
        return _sms_sender(row) if row is not None and row.channel == Channel.SMS else None

    async def sms_get(self, sender_id: str) -> tuple[SmsSender, str] | None:
        row = await self._session.get(SenderRow, sender_id)
        if row is None or row.channel != Channel.SMS:
            return None
        return _sms_sender(row), row.sealed_secrets

    async def sms_default_for(self, account_id: str) -> SmsSender | None:
        row = await self._default(account_id, Channel.SMS)
        return _sms_sender(row) if row else None

    async def _by_name(self, account_id: str, name: str) -> SenderRow | None:
        return await self._session.scalar(
            select(SenderRow).where(SenderRow.account_id == account_id, SenderRow.name == name)
        )

    async def _default(self, account_id: str, channel: Channel) -> SenderRow | None:
        """The account's default sender on `channel`, else its oldest."""
        stmt = (
            select(SenderRow)
            .where(SenderRow.account_id == account_id, SenderRow.channel == str(channel))
            .order_by(SenderRow.is_default.desc(), SenderRow.created_at, SenderRow.id)
            .limit(1)
        )
        return await self._session.scalar(stmt)

    async def replace(self, sender: AnySender, *, sealed_secrets: str) -> None:
        """New settings and credentials for an existing sender (same id, same webhook URL)."""
        await self._session.execute(
            update(SenderRow)
            .where(SenderRow.id == sender.id)
            .values(config=_config(sender), sealed_secrets=sealed_secrets)
        )

    async def remove(self, sender_id: str) -> bool:
        result = await self._session.execute(delete(SenderRow).where(SenderRow.id == sender_id))
        return bool(getattr(result, "rowcount", 0))
