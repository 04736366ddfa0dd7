"""Sending a file over WhatsApp, end to end over real HTTP on SQLite and PostgreSQL:
API → message + job → worker → Cloud API (the embedded emulator) → signed status
webhooks → state machine → `GET /v1/messages/{id}`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.test_whatsapp_webhooks import HOOK, envelope, sandbox_sender, signed
from tests.support import TEST_SECRET, LiveServer, assert_problem, eventually
from wafile.services.sandbox import sandbox_credentials

CREDS = sandbox_credentials(TEST_SECRET)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"r" * 5000 + b"\ntrailer<<>>\n%%EOF\n"
PHONE = "+12015550101"  # delivered ~0.5 s after sent, read ~2 s later
CONTROL = "/_emulator/whatsapp/_control"


WAIT = 20.0  # seconds any one expectation may take


async def until_status(
    http: httpx.AsyncClient, message_id: str, statuses: set[str], what: str
) -> dict[str, Any]:
    """Wait until the message's status is one of `statuses`; the message then."""

    async def reached() -> bool:
        return (await status_of(http, message_id))["status"] in statuses

    await eventually(reached, what, seconds=WAIT)
    return await status_of(http, message_id)


async def setup(http: httpx.AsyncClient) -> str:
    uploaded = await http.post(
        "/v1/media", files={"file": ("Rechnung.pdf", PDF, "application/pdf")}
    )
    assert uploaded.status_code == 201, uploaded.text
    # Several sends to one phone in a test: the pair rate limit (131056) is not the point.
    await http.patch(f"{CONTROL}/settings", json={"pair_rate_limit": False})
    return str(uploaded.json()["id"])


async def open_window(http: httpx.AsyncClient, phone: str) -> None:
    wrote = await http.post(
        f"{CONTROL}/phones/{phone.lstrip('+')}/messages",
        json={"to": CREDS.whatsapp_phone_number_id, "text": "hello"},
    )
    assert wrote.status_code == 201, wrote.text

    async def opened() -> bool:
        state = (await http.get(f"/v1/conversations/{phone}")).json()
        return bool(state["window_open"])

    await eventually(opened, "the window opened by the user's message", seconds=WAIT)


async def status_of(http: httpx.AsyncClient, message_id: str) -> dict[str, Any]:
    resp = await http.get(f"/v1/messages/{message_id}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_a_pdf_reaches_the_phone_and_is_read(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        await open_window(http, PHONE)
        accepted = await http.post(
            "/v1/messages",
            json={
                "to": "+1 (201) 555-0101",
                "media_id": media_id,
                "caption": "Ihre Rechnung",
                "filename": "Rechnung März.pdf",
                "reference": "inv-42",
            },
        )
        assert accepted.status_code == 202, accepted.text
        message = accepted.json()
        assert (message["to"], message["status"], message["reference"]) == (
            PHONE,
            "accepted",
            "inv-42",
        )
        assert [a["status"] for a in message["attempts"]] == ["queued"]

        await until_status(http, message["id"], {"read"}, "the message read")
        final = await status_of(http, message["id"])
        [attempt] = final["attempts"]
        assert attempt["channel"] == "whatsapp" and attempt["status"] == "read"
        assert attempt["provider_message_id"].startswith("wamid.")
        assert attempt["sent_at"] <= attempt["delivered_at"] <= attempt["read_at"]
        kinds = [e["event"]["kind"] for e in final["events"]]
        assert kinds[:2] == ["accepted", "send_succeeded"]
        assert {e["event"].get("status") for e in final["events"]} >= {"delivered", "read"}

        inbox = (await http.get(f"{CONTROL}/phones/{PHONE[1:]}/inbox")).json()["messages"]
        [got] = [m for m in inbox if m["id"] == attempt["provider_message_id"]]
        assert (got["type"], got["filename"], got["caption"]) == (
            "document",
            "Rechnung März.pdf",
            "Ihre Rechnung",
        )
        file = await http.get(f"{CONTROL}/phones/{PHONE[1:]}/inbox/{got['id']}/file")
        assert file.content == PDF


async def test_closed_window_uses_the_default_template_or_fails_before_meta(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        # The sandbox sender's default templates: the PDF goes as file_delivery's header,
        # its body parameter the filename (no caption given).
        accepted = await http.post(
            "/v1/messages", json={"to": "+12015550104", "media_id": media_id}
        )
        message_id = accepted.json()["id"]

        await until_status(
            http, message_id, {"delivered"}, "the default-template message delivered"
        )
        inbox = (await http.get(f"{CONTROL}/phones/12015550104/inbox")).json()["messages"]
        [got] = inbox
        assert got["type"] == "template" and got["filename"] == "Rechnung.pdf"
        assert (got["template"]["name"], got["template"]["header"]) == (
            "file_delivery",
            {"type": "document"},
        )
        assert got["template"]["body"] == ["Rechnung.pdf"]

        # A sender without default templates: refused before Meta is called.
        plain = await http.post(
            "/v1/senders",
            json={
                "name": "plain",
                "phone_number_id": CREDS.whatsapp_phone_number_id,
                "waba_id": CREDS.whatsapp_waba_id,
                "display_phone_number": CREDS.whatsapp_display_number,
                "access_token": CREDS.whatsapp_access_token,
                "app_secret": CREDS.whatsapp_app_secret,
                "graph_url": f"{live_server.url}/_emulator/whatsapp",
            },
        )
        assert plain.status_code == 201, plain.text
        refused = await http.post(
            "/v1/messages", json={"to": "+12015550102", "media_id": media_id, "sender": "plain"}
        )
        refused_id = refused.json()["id"]

        await until_status(http, refused_id, {"failed"}, "the message failed")
        final = await status_of(http, refused_id)
        assert "24-hour window is closed" in final["reason"]
        assert (await http.get(f"{CONTROL}/phones/12015550102/inbox")).json()["messages"] == []

        # An explicit template carries the file too, with its own parameters.
        templated = await http.post(
            "/v1/messages",
            json={
                "to": "+12015550102",
                "media_id": media_id,
                "sender": "plain",
                "template": {"name": "file_delivery", "parameters": ["Rechnung"]},
            },
        )
        tid = templated.json()["id"]

        async def sent() -> bool:
            return (await status_of(http, tid))["attempts"][0]["status"] == "sent"

        await eventually(sent, "the template message sent (102 is never delivered)", seconds=WAIT)
        [got] = (await http.get(f"{CONTROL}/phones/12015550102/inbox")).json()["messages"]
        assert got["template"]["body"] == ["Rechnung"]


async def test_not_on_whatsapp_fails_with_the_code(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        template = {"name": "file_delivery", "parameters": ["x"]}
        sent = await http.post(
            "/v1/messages", json={"to": "+12015550103", "media_id": media_id, "template": template}
        )
        message_id = sent.json()["id"]

        await until_status(http, message_id, {"failed"}, "failed 131026")
        [attempt] = (await status_of(http, message_id))["attempts"]
        assert attempt["status"] == "failed" and attempt["error_code"] == 131026


async def test_idempotency_and_bad_requests(live_server: LiveServer, engine: AsyncEngine) -> None:
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        body = {"to": PHONE, "media_id": media_id, "reference": "once"}
        first = await http.post("/v1/messages", json=body, headers={"Idempotency-Key": "k-1"})
        again = await http.post("/v1/messages", json=body, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == again.status_code == 202
        assert first.json()["id"] == again.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"
        other = await http.post(
            "/v1/messages", json={**body, "reference": "twice"}, headers={"Idempotency-Key": "k-1"}
        )
        assert_problem(other, 409, "conflict")

        assert_problem(
            await http.post("/v1/messages", json={**body, "to": "12345"}), 422, "validation_error"
        )
        assert_problem(
            await http.post("/v1/messages", json={**body, "media_id": "med_nope"}),
            404,
            "media_not_found",
        )
        too_long = await http.post("/v1/messages", json={**body, "caption": "x" * 1025})
        assert "caption" in assert_problem(too_long, 422, "validation_error")["detail"]
        for channels, why in (
            ([{"channel": "sms"}, {"channel": "sms"}], "twice"),
            ([{"channel": "sms", "text": "{url}"}], "placeholders"),
            ([{"channel": "whatsapp", "text": "hi"}], "only an SMS step"),
            ([{"channel": "whatsapp", "fallback_time": 0.5}], "fallback_time"),
            ([{"channel": "sms", "success": "read"}], "no reads"),
            ([{"channel": "fax"}], "channel"),
            ([], "channels"),
        ):
            bad = await http.post("/v1/messages", json={**body, "channels": channels})
            assert why in assert_problem(bad, 422, "validation_error")["detail"], channels
        # A callback URL wafile would never call is refused now, not at the first event.
        for url in ("http://example.com/hook", "ftp://example.com/", "https://u:p@example.com/"):
            bad_url = await http.post("/v1/messages", json={**body, "callback_url": url})
            assert "callback_url" in assert_problem(bad_url, 422, "validation_error")["detail"]
        assert_problem(await http.get("/v1/messages/msg_nope"), 404, "message_not_found")


async def test_listing_filters_and_pages(live_server: LiveServer, engine: AsyncEngine) -> None:
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        ids = []
        for phone in ("+12015550102", "+12015550102", "+12015550104"):
            sent = await http.post("/v1/messages", json={"to": phone, "media_id": media_id})
            ids.append(sent.json()["id"])
        first = (await http.get("/v1/messages", params={"limit": 2})).json()
        second = (
            await http.get("/v1/messages", params={"limit": 2, "cursor": first["next_cursor"]})
        ).json()
        assert [m["id"] for m in first["data"] + second["data"]] == ids[::-1]
        assert second["next_cursor"] is None
        to_102 = (await http.get("/v1/messages", params={"to": "1 201 555 0102"})).json()
        assert [m["id"] for m in to_102["data"]] == ids[1::-1]
        failed = (await http.get("/v1/messages", params={"status": "failed"})).json()
        assert failed["data"] == []
        future = (await http.get("/v1/messages", params={"since": "2100-01-01T00:00:00Z"})).json()
        assert future["data"] == []
        bad = await http.get("/v1/messages", params={"status": "teleported"})
        assert_problem(bad, 422, "validation_error")
        assert_problem(
            await http.get("/v1/messages", params={"cursor": "!!"}), 422, "validation_error"
        )


async def test_a_file_is_uploaded_once_per_sender_and_again_when_meta_lost_it(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await sandbox_sender(engine, live_server)
    graph = "/_emulator/whatsapp/v23.0"
    token = {"Authorization": f"Bearer {CREDS.whatsapp_access_token}"}
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        await open_window(http, PHONE)

        async def send_and_wait() -> dict[str, Any]:
            sent = await http.post("/v1/messages", json={"to": PHONE, "media_id": media_id})
            message_id = sent.json()["id"]

            await until_status(http, message_id, {"delivered", "read"}, "delivered")
            return await status_of(http, message_id)

        async def uploads() -> list[str]:
            listed = (await http.get(f"{CONTROL}/media")).json()
            return [m["id"] for m in listed["media"]]

        await send_and_wait()
        await send_and_wait()
        [uploaded] = await uploads()  # the same content went up once

        # Meta lost it (expired, deleted): the next send fails once, re-uploads, succeeds.
        gone = await http.delete(f"{graph}/{uploaded}", headers=token)
        assert gone.status_code == 200, gone.text
        third = await send_and_wait()
        assert third["attempts"][0]["status"] in {"delivered", "read"}
        [again] = await uploads()
        assert again != uploaded


async def test_throttled_once_then_sent(live_server: LiveServer, engine: AsyncEngine) -> None:
    """+12015550106 answers the first send with 130429: retried after Meta's pause."""
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        await open_window(http, "+12015550106")
        sent = await http.post("/v1/messages", json={"to": "+12015550106", "media_id": media_id})
        message_id = sent.json()["id"]

        await until_status(http, message_id, {"delivered", "read"}, "delivered after the throttle")
        final = await status_of(http, message_id)
        [attempt] = final["attempts"]  # the retry stayed on the same attempt
        assert attempt["provider_message_id"].startswith("wamid.")


@pytest.mark.parametrize("snapshot", ["kept", "none"])
async def test_duplicate_and_reordered_reports_never_move_a_message_back(
    live_server: LiveServer, engine: AsyncEngine, snapshot: str
) -> None:
    """With `snapshot=none` the message looks stored before state snapshots (migration
    0016): its log is replayed, and the next event stores a snapshot again."""
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        # +12015550102 is never delivered: the only reports are the ones posted here.
        template = {"name": "file_delivery", "parameters": ["x"]}
        sent = await http.post(
            "/v1/messages", json={"to": "+12015550102", "media_id": media_id, "template": template}
        )
        message_id = sent.json()["id"]

        async def sent_state() -> bool:
            return (await status_of(http, message_id))["attempts"][0]["status"] == "sent"

        await eventually(sent_state, "sent", seconds=WAIT)
        wamid = (await status_of(http, message_id))["attempts"][0]["provider_message_id"]
        if snapshot == "none":
            async with engine.begin() as conn:
                await conn.execute(
                    text("UPDATE messages SET state = NULL WHERE id = :id"), {"id": message_id}
                )

        def report(status: str, at: int) -> bytes:
            return envelope(
                statuses=[
                    {
                        "id": wamid,
                        "status": status,
                        "timestamp": str(at),
                        "recipient_id": "12015550102",
                    }
                ]
            )

        now = int(datetime.now(UTC).timestamp())
        for body in (
            report("read", now + 20),
            report("delivered", now + 10),
            report("read", now + 20),
        ):
            assert (await http.post(HOOK, content=body, headers=signed(body))).status_code == 200

        async def read() -> bool:
            state = await status_of(http, message_id)
            return state["status"] == "read" and any(
                e["event"].get("status") == "delivered" for e in state["events"]
            )

        await eventually(read, "read, with the late delivered recorded", seconds=WAIT)
        final = await status_of(http, message_id)
        assert final["attempts"][0]["status"] == "read"
        late = [e for e in final["events"] if e["event"].get("status") == "delivered"]
        assert [e["applied"] for e in late] == [False] and late[0]["note"]
        async with engine.connect() as conn:
            kept = await conn.scalar(
                text("SELECT state FROM messages WHERE id = :id"), {"id": message_id}
            )
        kept = json.loads(kept) if isinstance(kept, str) else kept
        assert kept["status"] == "read" and kept["seq"] == len(final["events"])
