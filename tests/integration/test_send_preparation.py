"""What a send job reads before it calls the channel (`messages.prepare_send`): the
message, its file, the recipient's 24-hour window and the file's earlier upload, for
the sender of the attempt being made: read in one query when that is the message's own
sender (its first step's), looked up apart when WhatsApp comes later in the plan."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.test_whatsapp_webhooks import sandbox_sender
from tests.support import TEST_SECRET, LiveServer
from wafile.core.message_state import SendFailed
from wafile.core.provider_errors import Disposition
from wafile.crypto import Sealer
from wafile.db.batch_read import BatchRead
from wafile.db.engine import session_factory, transaction
from wafile.db.messages import ForSend, MessageRepository
from wafile.db.webhooks import WebhookRepository
from wafile.services.messages import SendPlan, SmsSendPlan, messages
from wafile.services.sandbox import sandbox_credentials

CREDS = sandbox_credentials(TEST_SECRET)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"p" * 2000 + b"\ntrailer<<>>\n%%EOF\n"
TO = "+12015550101"


# No embedded worker: the test reads what a send would, and sends nothing.
pytestmark = pytest.mark.no_embedded_worker


async def test_the_window_and_the_upload_are_those_of_the_attempts_sender(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        uploaded = await http.post("/v1/media", files={"file": ("a.pdf", PDF, "application/pdf")})
        assert uploaded.status_code == 201, uploaded.text
        sha256 = uploaded.json()["sha256"]
        file = {"to": TO, "media_id": uploaded.json()["id"]}
        plain = await http.post("/v1/messages", json=file)
        assert plain.status_code == 202, plain.text
        # SMS first: the message's own sender is the SMS one, WhatsApp's comes second.
        sms_first = [{"channel": "sms", "fallback_time": 60}, {"channel": "whatsapp"}]
        later = await http.post("/v1/messages", json={**file, "channels": sms_first})
        assert later.status_code == 202, later.text
    whatsapp = plain.json()["channels"][0]["sender_id"]
    assert later.json()["channels"][1]["sender_id"] == whatsapp
    sessions, sealer = session_factory(engine), Sealer(TEST_SECRET)
    now = datetime.now(UTC)

    reads = BatchRead(messages.read_for_send, what="messages to send")

    async def for_send_of(message_id: str) -> ForSend | None:
        return await reads.get(sessions, message_id)

    async def prepare(message_id: str, attempt: int) -> SendPlan | SmsSendPlan:
        async with transaction(sessions) as session:
            got = await messages.prepare_send(
                session, sealer, message_id=message_id, attempt=attempt, now=now
            )
        # A worker's batched read (db/batch_read.py) prepares the very same send.
        async with transaction(sessions) as session:
            batched = await messages.prepare_send(
                session,
                sealer,
                message_id=message_id,
                attempt=attempt,
                now=now,
                for_send_of=for_send_of,
            )
        assert batched == got
        assert isinstance(got, SendPlan | SmsSendPlan)
        return got

    fresh = await prepare(plain.json()["id"], 0)
    assert isinstance(fresh, SendPlan)
    assert (fresh.sender.id, fresh.window_open, fresh.uploaded_media_id) == (whatsapp, False, None)
    assert fresh.media.sha256 == sha256 and fresh.message.id == plain.json()["id"]

    # An upload too old to reuse (Meta keeps media 30 days) is not offered.
    async with transaction(sessions) as session:
        await messages.remember_upload(
            session, sender_id=whatsapp, sha256=sha256, media_id="old", now=now - timedelta(days=40)
        )
    stale = await prepare(plain.json()["id"], 0)
    assert isinstance(stale, SendPlan)
    assert (stale.window_open, stale.uploaded_media_id) == (False, None)

    async with transaction(sessions) as session:
        await WebhookRepository(session).saw_user(whatsapp, TO.removeprefix("+"), now)
        await messages.remember_upload(
            session, sender_id=whatsapp, sha256=sha256, media_id="meta-1", now=now
        )
    own = await prepare(plain.json()["id"], 0)
    assert isinstance(own, SendPlan)
    assert (own.window_open, own.uploaded_media_id) == (True, "meta-1")

    # Several messages read in one query: each as read alone; an unknown id is absent.
    ids = [plain.json()["id"], later.json()["id"]]
    async with transaction(sessions) as session:
        repo = MessageRepository(session)
        together = await repo.for_send([*ids, "msg_nope"])
        alone = {i: (await repo.for_send([i]))[i] for i in ids}
    assert together == alone
    assert sorted(await asyncio.gather(*(for_send_of(i) for i in ids)), key=str) == sorted(
        alone.values(), key=str
    )

    # SMS first, then WhatsApp: its window and upload are the WhatsApp sender's.
    assert isinstance(await prepare(later.json()["id"], 0), SmsSendPlan)
    async with transaction(sessions) as session:
        failed = SendFailed(
            at=now, attempt=0, disposition=Disposition.FALL_BACK, code=None, reason="test"
        )
        await messages.apply(session, later.json()["id"], failed, source="send", now=now)
    second = await prepare(later.json()["id"], 1)
    assert isinstance(second, SendPlan)
    assert (second.sender.id, second.window_open, second.uploaded_media_id) == (
        whatsapp,
        True,
        "meta-1",
    )
