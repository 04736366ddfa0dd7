"""Lost SMS status callbacks over real HTTP on SQLite and PostgreSQL: the provider's
callbacks go nowhere (wafile's public URL names a closed port), and the poll jobs read
the message from the provider (the sandbox's SMS emulator) and finish it anyway."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.test_messages import setup, until_status
from tests.integration.test_whatsapp_webhooks import sandbox_sender
from tests.support import LiveServer, free_port, make_settings
from wafile.config import Settings

SMS = "/_emulator/sms/_control"
PHONE = "+12015550101"
SMS_UNDELIVERED = "+12015550111"  # the SMS emulator: undelivered 30003


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # Nothing listens there: every StatusCallback the SMS provider posts is lost.
    lost = f"http://127.0.0.1:{free_port()}"
    return make_settings(tmp_path, database_url, public_url=lost, sms_poll_schedule=(1.0, 1.0))


async def test_a_sent_sms_whose_callbacks_are_lost_is_finished_by_polling(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await sandbox_sender(engine, live_server)  # its senders point at the live server
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        plan = [{"channel": "sms"}]  # WhatsApp's webhooks would be lost too
        sent = await http.post(
            "/v1/messages", json={"to": PHONE, "media_id": media_id, "channels": plan}
        )
        assert sent.status_code == 202, sent.text
        done = await until_status(http, sent.json()["id"], {"delivered"}, "delivered by a poll")
        [sms] = done["attempts"]
        assert sms["status"] == "delivered"
        assert any(e["source"] == "sms" for e in done["events"])
        callbacks = (await http.get(f"{SMS}/callbacks", params={"outcome": "failed"})).json()
        assert callbacks  # the emulator did try, and failed: the poll is what worked

        failed = await http.post(
            "/v1/messages", json={"to": SMS_UNDELIVERED, "media_id": media_id, "channels": plan}
        )
        gone = await until_status(http, failed.json()["id"], {"failed"}, "undelivered by a poll")
        assert gone["attempts"][-1]["error_code"] == 30003
