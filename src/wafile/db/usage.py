"""Usage repository: the account's messages of a period with their states, read for
the usage report (services/usage.py counts them). A message's state is its stored
snapshot; only messages from before snapshots bring their event logs to replay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.message import Snapshot
from wafile.core.message_codec import snapshot_from_json
from wafile.core.plan import Channel, Plan, PlanStep, make_plan, plan_from_json
from wafile.db.tables import MessageEventRow, MessageRow

__all__ = ["LoggedMessage", "UsageRepository"]

LOG_CHUNK = 500  # ids per IN (...) list: well under every driver's parameter limit


@dataclass(frozen=True, kw_only=True, slots=True)
class LoggedMessage:
    """A message as the report needs it: whom it went to, and its state (the snapshot,
    or for a message from before snapshots its event log)."""

    id: str
    sender_id: str
    to: str
    status: str
    created_at: datetime
    plan: Plan
    snapshot: Snapshot | None
    events: Sequence[dict[str, Any]]  # core.message_codec documents, in order; () with a snapshot


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def messages_created(
        self, account_id: str, *, start: datetime, end: datetime, to: str | None = None
    ) -> list[LoggedMessage]:
        """The account's messages created in [start, end) (to `to` only, if given),
        oldest first, with their states."""
        period = (
            MessageRow.account_id == account_id,
            MessageRow.created_at >= start,
            MessageRow.created_at < end,
            *((MessageRow.to_number == to,) if to is not None else ()),
        )
        rows = list(
            await self._session.scalars(
                select(MessageRow).where(*period).order_by(MessageRow.created_at, MessageRow.id)
            )
        )
        plans = {
            row.id: plan_from_json(row.plan) if row.plan else _whatsapp_only(row.sender_id)
            for row in rows
        }
        logs = await self._logs([row.id for row in rows if not row.state])
        return [
            LoggedMessage(
                id=row.id,
                sender_id=row.sender_id,
                to=row.to_number,
                status=row.status,
                created_at=row.created_at,
                plan=plans[row.id],
                snapshot=snapshot_from_json(plans[row.id], row.state) if row.state else None,
                events=logs.get(row.id, ()),
            )
            for row in rows
        ]

    async def _logs(self, message_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The event logs of messages without a snapshot, a chunk of ids per query."""
        logs: dict[str, list[dict[str, Any]]] = {}
        for i in range(0, len(message_ids), LOG_CHUNK):
            events = await self._session.execute(
                select(MessageEventRow.message_id, MessageEventRow.event)
                .where(MessageEventRow.message_id.in_(message_ids[i : i + LOG_CHUNK]))
                .order_by(MessageEventRow.message_id, MessageEventRow.seq)
            )
            for message_id, event in events:
                logs.setdefault(message_id, []).append(event)
        return logs


def _whatsapp_only(sender_id: str) -> Plan:
    """The plan of a message stored before plans existed (as db/messages.py reads it)."""
    return make_plan([PlanStep(channel=Channel.WHATSAPP, sender_id=sender_id)])
