"""Two sends of one message recorded at the same moment (a WhatsApp send recorded late
while its SMS fallback is recorded too) wait for each other instead of deadlocking.

Each records its provider id (a row that refers to the message) and then applies its
event under the message's row lock. Inserting the referring row first took a
key-share lock on the message; two such transactions then each waited for the other's
to take the row lock, PostgreSQL killed one, and its job's retry sent its message a
second time. The row lock now comes first."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.test_whatsapp_webhooks import sandbox_sender
from tests.support import LiveServer
from wafile.core.message_state import SendSucceeded
from wafile.core.plan import Channel
from wafile.db.engine import session_factory, transaction
from wafile.services.messages import SentRecord, messages

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"l" * 2000 + b"\ntrailer<<>>\n%%EOF\n"
ROUNDS = 12


# No embedded worker: the test records the sends itself.
pytestmark = pytest.mark.no_embedded_worker


async def test_two_sends_of_one_message_recorded_at_once_both_commit(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await sandbox_sender(engine, live_server)
    plan = [{"channel": "whatsapp", "fallback_time": 60}, {"channel": "sms"}]
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        uploaded = await http.post("/v1/media", files={"file": ("a.pdf", PDF, "application/pdf")})
        assert uploaded.status_code == 201, uploaded.text
        ids = []
        for _ in range(ROUNDS):
            body = {"to": "+12015550101", "media_id": uploaded.json()["id"], "channels": plan}
            sent = await http.post("/v1/messages", json=body)
            assert sent.status_code == 202, sent.text
            ids.append((sent.json()["id"], [s["sender_id"] for s in sent.json()["channels"]]))
    sessions = session_factory(engine)

    async def record(message_id: str, attempt: int, sender_id: str) -> None:
        now = datetime.now(UTC)
        channel = Channel.WHATSAPP if attempt == 0 else Channel.SMS
        async with transaction(sessions) as session:
            record = SentRecord(
                message_id=message_id,
                attempt=attempt,
                sender_id=sender_id,
                provider_id=f"p-{message_id}-{attempt}",
                event=SendSucceeded(at=now, attempt=attempt, provider_id=f"p-{attempt}"),
                channel=channel,
            )
            await messages.sent(session, [record], now=now)

    for message_id, senders in ids:
        # Both at once; a deadlock raises here (PostgreSQL kills one of the two).
        await asyncio.gather(record(message_id, 0, senders[0]), record(message_id, 1, senders[1]))
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        for message_id, _ in ids:
            got = (await http.get(f"/v1/messages/{message_id}")).json()
            sources = [e["source"] for e in got["events"]]
            assert sources.count("send") == 2, got["events"]
