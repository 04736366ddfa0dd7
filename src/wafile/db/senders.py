"""Sender repository: all SQL about senders. Credentials arrive and leave sealed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.senders import Channel, DefaultTemplate, Sender, WhatsAppSender
from wafile.db.tables import SenderRow
from wafile.errors import SenderExists

__all__ = ["SenderRepository"]


def _config(sender: Sender) -> dict[str, Any]:
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


class SenderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, sender: Sender, *, sealed_secrets: str) -> None:
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
        if sender.is_default:  # at most one default per account
            await self._session.execute(
                update(SenderRow)
                .where(SenderRow.account_id == sender.account_id, SenderRow.id != sender.id)
                .values(is_default=False)
            )

    async def list_for(self, account_id: str) -> list[Sender]:
        stmt = (
            select(SenderRow)
            .where(SenderRow.account_id == account_id)
            .order_by(SenderRow.created_at, SenderRow.id)
        )
        return [_sender(row) for row in await self._session.scalars(stmt)]

    async def get_by_name(self, account_id: str, name: str) -> Sender | None:
        row = await self._session.scalar(
            select(SenderRow).where(SenderRow.account_id == account_id, SenderRow.name == name)
        )
        return _sender(row) if row else None

    async def get(self, sender_id: str) -> tuple[Sender, str] | None:
        """A sender by id (any account: webhooks and workers), with its sealed secrets."""
        row = await self._session.get(SenderRow, sender_id)
        return (_sender(row), row.sealed_secrets) if row else None

    async def default_for(self, account_id: str) -> Sender | None:
        """The account's default sender, else its oldest."""
        stmt = (
            select(SenderRow)
            .where(SenderRow.account_id == account_id)
            .order_by(SenderRow.is_default.desc(), SenderRow.created_at, SenderRow.id)
            .limit(1)
        )
        row = await self._session.scalar(stmt)
        return _sender(row) if row else None

    async def replace(self, sender: Sender, *, sealed_secrets: str) -> None:
        """New settings and credentials for an existing sender (same id, same webhook URL)."""
        await self._session.execute(
            update(SenderRow)
            .where(SenderRow.id == sender.id)
            .values(config=_config(sender), sealed_secrets=sealed_secrets)
        )

    async def remove(self, sender_id: str) -> bool:
        result = await self._session.execute(delete(SenderRow).where(SenderRow.id == sender_id))
        return bool(getattr(result, "rowcount", 0))
