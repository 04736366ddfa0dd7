"""Webhook ingestion over real HTTP, on SQLite and PostgreSQL: Meta's handshake, the
signature over the raw body, store-then-apply through the job queue, deduplication,
and the 24-hour window fed by inbound messages from the embedded emulator."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.support import TEST_SECRET, LiveServer, assert_problem, eventually, make_key
from wafile.api.context import AppContext
from wafile.config import Settings
from wafile.core.message_state import SendSucceeded
from wafile.crypto import Sealer
from wafile.db.engine import session_factory, transaction
from wafile.db.group_commit import GroupCommit
from wafile.db.tables import JobRow, ProviderStatusRow, WebhookReceiptRow
from wafile.errors import SenderNotFound
from wafile.services.messages import SentRecord, messages
from wafile.services.sandbox import (
    SANDBOX_ACCOUNT,
    SANDBOX_SENDER_ID,
    ensure_sandbox_sender,
    sandbox_credentials,
)
from wafile.services.webhooks import WEBHOOK_KIND, SignedBody, webhooks

CREDS = sandbox_credentials(TEST_SECRET)
HOOK = f"/webhooks/whatsapp/{SANDBOX_SENDER_ID}"
NOW = int(datetime.now(UTC).timestamp())
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PDF_B64 = base64.b64encode(PDF).decode()


async def sandbox_sender(engine: AsyncEngine, server: LiveServer) -> str:
    """The sandbox sender as `serve` makes it, and an API key of its account."""
    async with transaction(session_factory(engine)) as session:
        await ensure_sandbox_sender(
            session,
            Sealer(TEST_SECRET),
            secret_key=TEST_SECRET,
            public_url=server.url,
            now=datetime.now(UTC),
        )
    return await make_key(engine, SANDBOX_ACCOUNT)


def signed(body: bytes, secret: str = CREDS.whatsapp_app_secret) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def envelope(**value: Any) -> bytes:
    value.setdefault("metadata", {"phone_number_id": CREDS.whatsapp_phone_number_id})
    doc = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(doc).encode()


def inbound_image(wamid: str, *, media_id: str) -> dict[str, Any]:
    """A user's image message as Meta reports it (`messages[]` of a webhook)."""
    return {
        "from": "12015550101",
        "id": wamid,
        "timestamp": str(NOW),
        "type": "image",
        "image": {"id": media_id, "mime_type": "image/jpeg", "sha256": "x"},
    }


async def count(engine: AsyncEngine, table: Any) -> int:
    async with transaction(session_factory(engine)) as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_handshake(live_server: LiveServer, engine: AsyncEngine) -> None:
    await sandbox_sender(engine, live_server)
    async with live_server.client() as http:
        params = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
        ok = await http.get(
            HOOK, params={**params, "hub.verify_token": CREDS.whatsapp_verify_token}
        )
        assert ok.status_code == 200 and ok.text == "1158201444"
        wrong = await http.get(HOOK, params={**params, "hub.verify_token": "guess"})
        assert_problem(wrong, 403, "forbidden")
        unknown = await http.get("/webhooks/whatsapp/snd_nobody", params=params)
        assert_problem(unknown, 404, "sender_not_found")


async def test_forged_or_unsigned_bodies_are_refused_and_nothing_is_stored(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    await sandbox_sender(engine, live_server)
    body = envelope(statuses=[])
    async with live_server.client() as http:
        assert_problem(await http.post(HOOK, content=body), 401, "unauthorized")
        forged = await http.post(HOOK, content=body, headers=signed(body, "not-the-secret"))
        assert_problem(forged, 401, "unauthorized")
        # Signed over other bytes (re-serialised JSON): refused too.
        other = json.dumps(json.loads(body), indent=1).encode()
        assert_problem(
            await http.post(HOOK, content=other, headers=signed(body)), 401, "unauthorized"
        )
    assert await count(engine, WebhookReceiptRow) == 0


@pytest.mark.no_embedded_worker  # the stored jobs stay to be counted
async def test_concurrent_deliveries_share_commits_and_each_is_stored_with_its_job(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    """Bodies POSTed at once are stored together (db/group_commit.py): fewer commits
    than requests, every body with its job, each answered 200 only after the commit."""
    await sandbox_sender(engine, live_server)
    ctx: AppContext = live_server.server.config.app.state.ctx
    bodies = [
        envelope(statuses=[{"id": f"wamid.G{i}", "status": "sent", "timestamp": str(NOW)}])
        for i in range(16)
    ]
    before = ctx.webhook_bodies.commits
    async with live_server.client() as http:
        answers = await asyncio.gather(
            *(http.post(HOOK, content=b, headers=signed(b)) for b in bodies)
        )
    assert [a.status_code for a in answers] == [200] * len(bodies)
    assert 1 <= ctx.webhook_bodies.commits - before < len(bodies)
    async with transaction(session_factory(engine)) as session:
        stored = list(await session.scalars(select(WebhookReceiptRow.body)))
        jobs = list(
            await session.scalars(select(JobRow.payload).where(JobRow.kind == WEBHOOK_KIND))
        )
    assert sorted(stored) == sorted(b.decode() for b in bodies)
    assert len(jobs) == len(bodies)


async def test_a_body_whose_sender_goes_before_it_is_stored_is_a_404_alone(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    """Checked, then its sender removed before the group's commit: that body gets a
    404 (Meta retries, and finds the sender gone), the others are stored."""
    await sandbox_sender(engine, live_server)
    sessions = session_factory(engine)
    bodies = [envelope(statuses=[]) for _ in range(3)]
    async with transaction(sessions) as reads:
        checked = [
            await webhooks.check(
                reads,
                Sealer(TEST_SECRET),
                sender_id=SANDBOX_SENDER_ID,
                body=b,
                signature=signed(b)["X-Hub-Signature-256"],
            )
            for b in bodies
        ]
    gone = replace(checked[1], sender_id="snd_gone")
    now = datetime.now(UTC)

    async def store(session: AsyncSession, batch: list[SignedBody]) -> list[str | Exception]:
        return list(await webhooks.store(session, batch, now=now))

    group: GroupCommit[SignedBody, str] = GroupCommit(store, what="webhook bodies")
    outcomes = await asyncio.gather(
        *(group.submit(sessions, b) for b in (checked[0], gone, checked[2])),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], SenderNotFound)
    assert all(isinstance(o, str) for o in (outcomes[0], outcomes[2]))
    assert await count(engine, WebhookReceiptRow) == 2


async def test_statuses_are_recorded_once_however_often_and_in_whatever_order(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    await sandbox_sender(engine, live_server)

    def status(name: str, at: int, **extra: Any) -> dict[str, Any]:
        return {
            "id": "wamid.X1",
            "status": name,
            "timestamp": str(at),
            "recipient_id": "4915112345678",
            **extra,
        }

    read_first = envelope(statuses=[status("read", NOW + 5)])
    both = envelope(statuses=[status("sent", NOW), status("delivered", NOW + 2)])
    async with live_server.client() as http:
        for body in (read_first, both, both, read_first):  # reordered and redelivered
            resp = await http.post(HOOK, content=body, headers=signed(body))
            assert resp.status_code == 200, resp.text

    async def applied() -> bool:
        async with transaction(session_factory(engine)) as session:
            pending = select(func.count()).where(WebhookReceiptRow.processed_at.is_(None))
            return await session.scalar(pending) == 0

    await eventually(applied, "all four deliveries applied")
    async with transaction(session_factory(engine)) as session:
        rows = (
            await session.scalars(select(ProviderStatusRow).order_by(ProviderStatusRow.at))
        ).all()
        receipts = (await session.scalars(select(WebhookReceiptRow))).all()
    assert [r.status for r in rows] == ["sent", "delivered", "read"]
    assert len(receipts) == 4 and all(r.processed_at is not None for r in receipts)


async def test_inbound_document_from_the_emulator_opens_the_window(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await sandbox_sender(engine, live_server)
    phone = "+12015550101"
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        closed = (await http.get(f"/v1/conversations/{phone}")).json()
        assert closed["window_open"] is False and closed["minutes_left"] == 0

        # The virtual phone sends a PDF: the emulator signs and posts Meta's webhook to us.
        sent = await http.post(
            f"/_emulator/whatsapp/_control/phones/{phone[1:]}/messages",
            json={
                "to": CREDS.whatsapp_phone_number_id,
                "type": "document",
                "filename": "Befund.pdf",
                "mime_type": "application/pdf",
                "caption": "my results",
                "content_base64": PDF_B64,
            },
        )
        assert sent.status_code in (200, 201), sent.text

        async def arrived() -> bool:
            return bool((await http.get("/v1/inbound")).json()["data"])

        await eventually(arrived, "the inbound document listed")
        [item] = (await http.get("/v1/inbound")).json()["data"]
        assert (item["from_number"], item["type"], item["filename"]) == (
            phone,
            "document",
            "Befund.pdf",
        )
        assert item["mime_type"] == "application/pdf" and item["provider_media_id"]

        # The file itself is fetched from WhatsApp into wafile's media store.
        async def fetched() -> bool:
            [item] = (await http.get("/v1/inbound")).json()["data"]
            return bool(item["media_id"] or item["media_error"])

        await eventually(fetched, "the inbound file fetched")
        [item] = (await http.get("/v1/inbound")).json()["data"]
        assert item["media_error"] is None
        stored = (await http.get(f"/v1/media/{item['media_id']}")).json()
        assert (stored["filename"], stored["mime_type"]) == ("Befund.pdf", "application/pdf")
        content = await http.get(f"/v1/media/{item['media_id']}/content")
        assert content.content == base64.b64decode(PDF_B64)
        opened = (await http.get(f"/v1/conversations/{phone}", params={"sender": "sandbox"})).json()
        assert opened["window_open"] is True and 1430 <= opened["minutes_left"] <= 1440
        bad = await http.get("/v1/conversations/12345")
        assert_problem(bad, 422, "validation_error")
        missing = await http.get(f"/v1/conversations/{phone}", params={"sender": "nope"})
        assert_problem(missing, 404, "sender_not_found")
    async with httpx.AsyncClient(base_url=live_server.url) as anonymous:
        assert_problem(await anonymous.get("/v1/inbound"), 401, "unauthorized")


async def test_a_file_whatsapp_will_not_hand_over_is_an_error_not_a_wait(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await sandbox_sender(engine, live_server)
    body = envelope(messages=[inbound_image("wamid.GONE", media_id="999999999")])
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        assert (await http.post(HOOK, content=body, headers=signed(body))).status_code == 200

        async def settled() -> bool:
            data = (await http.get("/v1/inbound")).json()["data"]
            return bool(data and (data[0]["media_id"] or data[0]["media_error"]))

        await eventually(settled, "the unknown media id settled")
        [item] = (await http.get("/v1/inbound")).json()["data"]
        assert item["media_id"] is None
        assert "WhatsApp would not hand over the file" in item["media_error"]


async def test_events_go_to_the_sender_of_the_number_they_name(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    """Meta posts every number of an app to the app's one webhook URL."""
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        second = await http.post(
            "/v1/senders",
            json={
                "name": "second",
                "phone_number_id": "200000000000001",
                "waba_id": "2",
                "display_phone_number": "15550002222",
                "access_token": "other-token",
                "app_secret": CREDS.whatsapp_app_secret,  # the same Meta app
            },
        )
        assert second.status_code == 201, second.text
        message = {
            "from": "4917612345678",
            "id": "wamid.TWO",
            "timestamp": str(NOW),
            "type": "text",
            "text": {"body": "for the second number"},
        }
        body = envelope(metadata={"phone_number_id": "200000000000001"}, messages=[message])
        assert (await http.post(HOOK, content=body, headers=signed(body))).status_code == 200

        async def arrived() -> bool:
            return bool((await http.get("/v1/inbound")).json()["data"])

        await eventually(arrived, "the message listed")
        [item] = (await http.get("/v1/inbound")).json()["data"]
        assert item["sender_id"] == second.json()["id"]
        to_second = await http.get("/v1/conversations/+4917612345678", params={"sender": "second"})
        to_sandbox = await http.get(
            "/v1/conversations/+4917612345678", params={"sender": "sandbox"}
        )
        assert to_second.json()["window_open"] is True
        assert to_sandbox.json()["window_open"] is False


async def test_a_status_processed_before_its_send_committed_is_applied_by_the_send(
    settings: Settings, engine: AsyncEngine
) -> None:
    """Meta can report `delivered` before the send job has recorded the wamid (its
    commit stalled): the status is stored, found no message, and the send's commit
    applies it. Without that, the message would wait for a report that never comes."""
    with LiveServer(settings.with_overrides(embedded_worker=False)) as server:
        key = await sandbox_sender(engine, server)
        async with server.client(headers={"Authorization": f"Bearer {key}"}) as http:
            uploaded = await http.post("/v1/media", files={"file": ("a.pdf", PDF)})
            assert uploaded.status_code == 201, uploaded.text
            body = {"to": "+4915112345678", "media_id": uploaded.json()["id"]}
            accepted = await http.post("/v1/messages", json=body)
            assert accepted.status_code == 202, accepted.text
            message_id = accepted.json()["id"]

            early = envelope(
                statuses=[
                    {
                        "id": "wamid.EARLY",
                        "status": status,
                        "timestamp": str(NOW + i),
                        "recipient_id": "4915112345678",
                    }
                    for i, status in enumerate(("sent", "delivered"))
                ]
            )
            resp = await http.post(HOOK, content=early, headers=signed(early))
            assert resp.status_code == 200, resp.text
            sessions = session_factory(engine)
            async with transaction(sessions) as session:
                [receipt_id] = await session.scalars(select(WebhookReceiptRow.id))
                await webhooks.process(session, receipt_id=receipt_id, now=datetime.now(UTC))
            assert (await http.get(f"/v1/messages/{message_id}")).json()["status"] == "accepted"

            # The send job's commit, late.
            async with transaction(sessions) as session:
                at = datetime.now(UTC)
                record = SentRecord(
                    message_id=message_id,
                    attempt=0,
                    sender_id=SANDBOX_SENDER_ID,
                    provider_id="wamid.EARLY",
                    event=SendSucceeded(at=at, attempt=0, provider_id="wamid.EARLY"),
                )
                await messages.sent(session, [record], now=at)
            shown = (await http.get(f"/v1/messages/{message_id}")).json()
    assert shown["status"] == "delivered"
    assert shown["attempts"][0]["status"] == "delivered"
    assert [e["source"] for e in shown["events"]] == ["api", "send", "whatsapp", "whatsapp"]


async def test_a_webhook_whose_client_goes_away_mid_body_stores_nothing_and_is_no_error(
    live_server: LiveServer, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Under load a provider may time out while it still sends its body: it retries."""
    caplog.set_level(logging.INFO)
    await sandbox_sender(engine, live_server)
    host, port = live_server.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST /webhooks/whatsapp/{SANDBOX_SENDER_ID} HTTP/1.1\r\nHost: {host}\r\n"
        'Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"object":'.encode()
    )
    await writer.drain()
    await asyncio.sleep(0.3)  # the server is reading the body now
    writer.close()
    await writer.wait_closed()

    async def noted() -> bool:
        return "client went away" in caplog.text

    await eventually(noted, "the disconnect noted", seconds=10)
    assert "unhandled error" not in caplog.text
    async with transaction(session_factory(engine)) as session:
        assert await session.scalar(select(func.count()).select_from(WebhookReceiptRow)) == 0
