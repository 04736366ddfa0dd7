"""Usage repository: the account's messages of a period with their event logs, read
for the usage report (services/usage.py counts them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.plan import Channel, Plan, PlanStep, make_plan, plan_from_json
from wafile.db.tables import MessageEventRow, MessageRow

__all__ = ["LoggedMessage", "UsageRepository"]


@dataclass(frozen=True, kw_only=True, slots=True)
class LoggedMessage:
    """A message as the report needs it: whom it went to, and its event log."""

    id: str
    sender_id: str
    to: str
    status: str
    created_at: datetime
    plan: Plan
    events: Sequence[dict[str, Any]]  # core.message_codec documents, in order


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def messages_created(
        self, account_id: str, *, start: datetime, end: datetime
    ) -> list[LoggedMessage]:
        """The account's messages created in [start, end), oldest first, with their logs."""
        period = (
            MessageRow.account_id == account_id,
            MessageRow.created_at >= start,
            MessageRow.created_at < end,
        )
        rows = list(
            await self._session.scalars(
                select(MessageRow).where(*period).order_by(MessageRow.created_at, MessageRow.id)
            )
        )
        if not rows:
            return []
        # One query for every log (by the same period, not a list of ids: no size limit).
        logs: dict[str, list[dict[str, Any]]] = {row.id: [] for row in rows}
        events = await self._session.execute(
            select(MessageEventRow.message_id, MessageEventRow.event)
            .join(MessageRow, MessageRow.id == MessageEventRow.message_id)
            .where(*period)
            .order_by(MessageEventRow.message_id, MessageEventRow.seq)
        )
        for message_id, event in events:
            if message_id in logs:  # created meanwhile: not in `rows`
                logs[message_id].append(event)
        return [
            LoggedMessage(
                id=row.id,
                sender_id=row.sender_id,
                to=row.to_number,
                status=row.status,
                created_at=row.created_at,
                plan=plan_from_json(row.plan) if row.plan else _whatsapp_only(row.sender_id),
                events=logs[row.id],
            )
            for row in rows
        ]


def _whatsapp_only(sender_id: str) -> Plan:
    """The plan of a message stored before plans existed (as db/messages.py reads it)."""
    return make_plan([PlanStep(channel=Channel.WHATSAPP, sender_id=sender_id)])
