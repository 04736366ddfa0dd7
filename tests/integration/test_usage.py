"""`GET /v1/usage` on SQLite and PostgreSQL: messages sent through the API on a fixed
clock, their attempts moved through the services as the channels would (no worker
runs), then the report over real HTTP: messages, attempts per channel, and 24-hour
conversations per recipient, one running into the period counted before it; another
account sees none of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.test_whatsapp_webhooks import sandbox_sender
from tests.support import LiveServer, assert_problem, make_key
from wafile.clock import FixedClock
from wafile.config import Settings
from wafile.core.message_state import (
    AttemptStatus,
    DeadlineReached,
    Event,
    SendFailed,
    SendSucceeded,
    StatusReport,
)
from wafile.core.provider_errors import Disposition
from wafile.db.engine import session_factory, transaction
from wafile.services.messages import messages
from wafile.services.usage import usage as usage_service

T0 = datetime(2026, 3, 1, tzinfo=UTC)  # the period: [T0, T0 + 3 days)
END = T0 + timedelta(days=3)
A = "+12015550101"
B = "+12015550104"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"u" * 2000 + b"\ntrailer<<>>\n%%EOF\n"
PLAN = [{"channel": "whatsapp", "fallback_time": 600}, {"channel": "sms"}]
H = timedelta(hours=1)


def sent(attempt: int, at: datetime) -> SendSucceeded:
    return SendSucceeded(at=at, attempt=attempt, provider_id=f"p-{attempt}-{at.timestamp()}")


def report(attempt: int, status: AttemptStatus, at: datetime) -> StatusReport:
    if status is AttemptStatus.FAILED:
        return StatusReport(
            at=at, attempt=attempt, status=status, disposition=Disposition.FALL_BACK
        )
    return StatusReport(at=at, attempt=attempt, status=status)


def refused(attempt: int, at: datetime) -> SendFailed:
    return SendFailed(
        at=at, attempt=attempt, disposition=Disposition.FALL_BACK, code=131026, reason="no"
    )


@pytest.mark.parametrize("snapshots", ["kept", "none"])
async def test_usage_counts_messages_channels_and_conversations(
    settings: Settings, engine: AsyncEngine, snapshots: str
) -> None:
    """`snapshots=none`: the messages look stored before state snapshots (migration
    0016), so the report replays their logs; the figures are the same."""
    clock = FixedClock(T0 - 20 * H)
    with LiveServer(settings.with_overrides(embedded_worker=False), clock=clock) as server:
        key = await sandbox_sender(engine, server)
        async with server.client(headers={"Authorization": f"Bearer {key}"}) as http:
            media = await http.post("/v1/media", files={"file": ("a.pdf", PDF)})
            assert media.status_code == 201, media.text

            async def send(to: str, at: datetime, *events: Event) -> str:
                clock.advance(at - clock.now())
                resp = await http.post(
                    "/v1/messages",
                    json={"to": to, "media_id": media.json()["id"], "channels": PLAN},
                )
                assert resp.status_code == 202, resp.text
                message_id = str(resp.json()["id"])
                async with transaction(session_factory(engine)) as session:
                    for event in events:
                        await messages.apply(
                            session, message_id, event, source="test", now=event.at
                        )
                return message_id

            D = AttemptStatus.DELIVERED
            # A: a conversation opened 20 h before the period runs into it, so the send
            # at +1 h opens none; +5 h opens one, which +27 h is still in. (Counted from
            # the period's start instead, +1 h and +27 h would open two.)
            await send(A, T0 - 20 * H, sent(0, T0 - 20 * H), report(0, D, T0 - 19 * H))
            await send(A, T0 + 1 * H, sent(0, T0 + 1 * H), report(0, D, T0 + 2 * H))
            await send(
                A,
                T0 + 5 * H,
                sent(0, T0 + 5 * H),
                report(0, AttemptStatus.READ, T0 + 6 * H),
            )
            await send(
                A,
                T0 + 27 * H,
                sent(0, T0 + 27 * H),
                report(0, AttemptStatus.FAILED, T0 + 28 * H),  # falls back to SMS
                sent(1, T0 + 28 * H),
                report(1, D, T0 + 29 * H),
            )
            # B: WhatsApp refuses at once (no conversation), the SMS fails too; then a
            # WhatsApp send whose deadline passes: SMS queued, no outcome yet.
            await send(
                B,
                T0 + 2 * H,
                refused(0, T0 + 2 * H),
                sent(1, T0 + 2 * H),
                report(1, AttemptStatus.FAILED, T0 + 3 * H),
            )
            await send(
                B, T0 + 48 * H, sent(0, T0 + 48 * H), DeadlineReached(at=T0 + 49 * H, attempt=0)
            )
            # Created at the end of the period: not in it.
            await send(A, END, sent(0, END))
            if snapshots == "none":
                async with engine.begin() as conn:
                    await conn.execute(text("UPDATE messages SET state = NULL"))

            resp = await http.get(
                "/v1/usage", params={"from": T0.isoformat(), "to": END.isoformat()}
            )
            assert resp.status_code == 200, resp.text
            got = resp.json()
            assert datetime.fromisoformat(got["from"]) == T0
            assert datetime.fromisoformat(got["to"]) == END
            assert got["messages"] == {"total": 5, "delivered": 3, "failed": 1, "in_progress": 1}
            assert got["channels"] == [
                {
                    "channel": "sms",
                    "attempts": 3,
                    "delivered": 1,
                    "failed": 1,
                    "timed_out": 0,
                    "pending": 1,
                },
                {
                    "channel": "whatsapp",
                    "attempts": 5,
                    "delivered": 2,
                    "failed": 2,
                    "timed_out": 1,
                    "pending": 0,
                },
            ]
            conversations = got["conversations"]
            assert conversations["total"] == 2
            assert [(c["to"], c["conversations"]) for c in conversations["by_recipient"]] == [
                (A, 1),
                (B, 1),
            ]
            assert all(c["sender_id"] for c in conversations["by_recipient"])

            # A day of its own: A's +5 h conversation, nothing of the day before.
            first_day = await usage(http, T0, T0 + 24 * H)
            assert first_day["conversations"]["total"] == 1
            assert first_day["messages"]["total"] == 3

            # Dates without a zone are UTC; the default `to` is now (the fixed clock).
            naive = await http.get("/v1/usage", params={"from": "2026-03-01T00:00:00"})
            assert naive.status_code == 200, naive.text
            assert datetime.fromisoformat(naive.json()["from"]) == T0
            assert datetime.fromisoformat(naive.json()["to"]) == clock.now()

        # Another account's report holds none of it.
        other = await make_key(engine, "other")
        async with server.client(headers={"Authorization": f"Bearer {other}"}) as http:
            theirs = await usage(http, T0, END)
            assert theirs["messages"]["total"] == 0 and theirs["conversations"]["total"] == 0


async def usage(http: httpx.AsyncClient, start: datetime, end: datetime) -> dict[str, Any]:
    resp = await http.get("/v1/usage", params={"from": start.isoformat(), "to": end.isoformat()})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_usage_needs_a_key_and_a_sound_period(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await make_key(engine, "empty")
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        got = await usage(http, T0, END)
        assert got["messages"] == {"total": 0, "delivered": 0, "failed": 0, "in_progress": 0}
        assert got["channels"] == [] and got["conversations"] == {"total": 0, "by_recipient": []}
        backwards = {"from": END.isoformat(), "to": T0.isoformat()}
        assert_problem(await http.get("/v1/usage", params=backwards), 422, "validation_error")
        too_long = {"from": T0.isoformat(), "to": (T0 + timedelta(days=400)).isoformat()}
        assert_problem(await http.get("/v1/usage", params=too_long), 422, "validation_error")
        bad = await http.get("/v1/usage", params={"from": "yesterday"})
        assert_problem(bad, 422, "validation_error")
    async with live_server.client() as anonymous:
        assert_problem(await anonymous.get("/v1/usage"), 401, "unauthorized")


async def test_minutes_left_in_the_open_conversation(
    settings: Settings, engine: AsyncEngine
) -> None:
    """What a 99digital incoming-message hook says as `conversationTimeLeft` (and an
    `inbound.received` event as `conversation_minutes_left`)."""
    clock = FixedClock(T0)
    with LiveServer(settings.with_overrides(embedded_worker=False), clock=clock) as server:
        key = await sandbox_sender(engine, server)
        async with server.client(headers={"Authorization": f"Bearer {key}"}) as http:
            media = await http.post("/v1/media", files={"file": ("a.pdf", PDF)})
            assert media.status_code == 201, media.text
            sessions = session_factory(engine)

            async def send(to: str, at: datetime, *, taken: bool = True) -> str:
                clock.advance(at - clock.now())
                resp = await http.post(
                    "/v1/messages", json={"to": to, "media_id": media.json()["id"]}
                )
                assert resp.status_code == 202, resp.text
                if taken:
                    async with transaction(sessions) as session:
                        message_id = resp.json()["id"]
                        await messages.apply(session, message_id, sent(0, at), source="t", now=at)
                return str(resp.json()["channels"][0]["sender_id"])

            async def left(to: str, at: datetime) -> int:
                async with transaction(sessions) as session:
                    return await usage_service.conversation_minutes_left(
                        session, account_id=account_id, sender_id=sender_id, to=to, now=at
                    )

            sender_id = await send(A, T0)  # opens a conversation until T0 + 24 h
            account_id = (await http.get("/v1/account")).json()["id"]
            await send(A, T0 + 5 * H)  # inside it: opens none
            await send(A, T0 + 6 * H, taken=False)  # refused at once: never reached A
            assert await left(A, T0 + 10 * H) == 14 * 60
            assert await left(A, T0 + 10 * H + timedelta(seconds=30)) == 14 * 60 - 1
            assert await left(B, T0 + 10 * H) == 0  # nothing sent to B
            assert await left(A, T0 + 24 * H) == 0  # it ended
            await send(A, T0 + 30 * H)  # the next send opens the next one
            assert await left(A, T0 + 31 * H) == 23 * 60
