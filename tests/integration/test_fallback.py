"""WhatsApp → SMS fallback end to end over real HTTP on SQLite and PostgreSQL: the
sandbox's embedded WhatsApp and SMS emulators, the worker, signed status webhooks of
both providers, deadlines as jobs, and the callbacks the business gets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.callback_receiver import Receiver, verified
from tests.integration.test_messages import setup, until_status
from tests.integration.test_whatsapp_webhooks import sandbox_sender
from tests.support import TEST_SECRET, AppServer, LiveServer, assert_problem, eventually, make_key
from wafile.core.jobs import Priority
from wafile.core.twilio_signature import twilio_signature
from wafile.crypto import Sealer
from wafile.db.engine import session_factory
from wafile.db.tables import JobRow
from wafile.services.sandbox import SANDBOX_SMS_SENDER_ID, sandbox_credentials
from wafile.services.sms_webhooks import SMS_WEBHOOK_KIND, sms_webhooks

CREDS = sandbox_credentials(TEST_SECRET)
WA = "/_emulator/whatsapp/_control"
SMS = "/_emulator/sms/_control"
ON_WHATSAPP = "+12015550101"  # delivered ~0.5 s after sent
SILENT = "+12015550102"  # WhatsApp: stays sent for ever
NOT_ON_WHATSAPP = "+12015550103"  # WhatsApp: failed 131026
SMS_UNDELIVERED = "+12015550111"  # SMS: undelivered 30003
WAIT = 20.0
PLAN = [{"channel": "whatsapp", "fallback_time": 2}, {"channel": "sms"}]


async def send(http: httpx.AsyncClient, to: str, media_id: str, **extra: Any) -> dict[str, Any]:
    resp = await http.post("/v1/messages", json={"to": to, "media_id": media_id, **extra})
    assert resp.status_code == 202, resp.text
    return dict(resp.json())


async def sms_inbox(http: httpx.AsyncClient, number: str) -> list[dict[str, Any]]:
    resp = await http.get(f"{SMS}/phones/{number.lstrip('+')}/inbox")
    assert resp.status_code == 200, resp.text
    return list(resp.json()["messages"] if isinstance(resp.json(), dict) else resp.json())


async def test_delivered_on_whatsapp_sends_no_sms(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        # Delivery comes ~0.5 s after the send; a busy machine can take longer than
        # PLAN's 2 s to get there, so this plan waits 6 s before it would fall back.
        roomy = [{**PLAN[0], "fallback_time": 6}, PLAN[1]]
        sent = await send(http, ON_WHATSAPP, media_id, channels=roomy)
        assert [c["channel"] for c in sent["channels"]] == ["whatsapp", "sms"]
        assert sent["channels"][1]["sender_id"] == SANDBOX_SMS_SENDER_ID
        done = await until_status(http, sent["id"], {"delivered", "read"}, "delivered")
        [attempt] = done["attempts"]
        assert attempt["channel"] == "whatsapp" and attempt["status"] in {"delivered", "read"}
        # Past the deadline: it fired, found the message final, and started nothing.
        await eventually(
            lambda: _deadline_logged(http, sent["id"]), "the deadline ran", seconds=WAIT
        )
        again = (await http.get(f"/v1/messages/{sent['id']}")).json()
        assert len(again["attempts"]) == 1
        assert await sms_inbox(http, ON_WHATSAPP) == []


async def _deadline_logged(http: httpx.AsyncClient, message_id: str) -> bool:
    doc = (await http.get(f"/v1/messages/{message_id}")).json()
    return any(e["source"] == "deadline" for e in doc["events"])


async def test_not_on_whatsapp_falls_back_to_sms_at_once(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        plan = [{"channel": "whatsapp", "fallback_time": 600}, {"channel": "sms"}]
        sent = await send(http, NOT_ON_WHATSAPP, media_id, channels=plan, caption="Invoice")
        done = await until_status(http, sent["id"], {"delivered"}, "delivered by SMS")
        wa, sms = done["attempts"]
        assert (wa["channel"], wa["status"], wa["error_code"]) == ("whatsapp", "failed", 131026)
        assert (sms["channel"], sms["status"], sms["late"]) == ("sms", "delivered", False)
        assert sms["provider_message_id"].startswith("SM") and sms["segments"] == 1
        # Long before the 600 s deadline: the failure moved on at once.
        [text] = await sms_inbox(http, NOT_ON_WHATSAPP)
        assert text["body"].startswith("Invoice\nRechnung.pdf: http")
        link = text["body"].split(": ", 1)[1]
        got = await http.get(link, headers={"Authorization": ""})
        assert got.status_code == 200 and got.content.startswith(b"%PDF")


async def test_silence_times_out_then_sms_and_a_late_whatsapp_delivery_changes_nothing(
    live_server: LiveServer, engine: AsyncEngine, receiver: tuple[Receiver, AppServer]
) -> None:
    rec, server = receiver
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        secret = (await http.post("/v1/account/callback-secret")).json()["secret"]
        # WhatsApp delivers after 4 s: late for a 2 s fallback time.
        declared = await http.put(
            f"{WA}/phones/{SILENT.lstrip('+')}", json={"deliver_after": 4.0, "window_open": True}
        )
        assert declared.status_code in (200, 201), declared.text
        sent = await send(http, SILENT, media_id, channels=PLAN, callback_url=f"{server.url}/cb")
        done = await until_status(http, sent["id"], {"delivered"}, "delivered by SMS")
        wa, sms = done["attempts"]
        assert wa["status"] == "timed_out" and "within 2 s" in wa["error"]
        assert sms["status"] == "delivered"

        async def late_delivery() -> bool:
            doc = (await http.get(f"/v1/messages/{sent['id']}")).json()
            return bool(doc["attempts"][0]["status"] == "delivered")

        await eventually(late_delivery, "WhatsApp's late delivery recorded", seconds=WAIT)
        final = (await http.get(f"/v1/messages/{sent['id']}")).json()
        wa = final["attempts"][0]
        assert wa["late"] is True and wa["delivered_at"] is not None
        assert final["status"] == "delivered" and len(final["attempts"]) == 2

        async def late_callback() -> bool:
            return any(b'"late":true' in body for _, body in rec.at("/cb"))

        await eventually(late_callback, "the late delivery called back", seconds=WAIT)
        events = verified(secret, rec.at("/cb"))
        events.sort(key=lambda e: e["sequence"])
        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
        kinds = [(e["type"], e["attempt"]) for e in events]
        timed_out = kinds.index(("attempt.timed_out", 0))
        assert kinds[timed_out + 1] == ("attempt.queued", 1)
        assert kinds.index(("message.delivered", None)) > kinds.index(("attempt.delivered", 1))
        assert kinds[-1] == ("attempt.delivered", 0) and events[-1]["late"] is True
        assert events[-1]["message"]["status"] == "delivered"


async def test_undelivered_sms_fails_the_message_with_both_reasons(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        phone = SMS_UNDELIVERED.lstrip("+")
        declared = await http.put(f"{WA}/phones/{phone}", json={"on_whatsapp": False})
        assert declared.status_code in (200, 201), declared.text
        sent = await send(http, SMS_UNDELIVERED, media_id, channels=PLAN)
        done = await until_status(http, sent["id"], {"failed"}, "failed on both channels")
        wa, sms = done["attempts"]
        assert (wa["status"], wa["error_code"]) == ("failed", 131026)
        assert (sms["status"], sms["error_code"]) == ("failed", 30003)
        assert wa["error"] and sms["error"] and done["reason"] == sms["error"]


async def test_the_account_default_plan_applies_when_a_send_gives_none(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        assert (await http.get("/v1/account")).json()["default_channels"] is None
        bad = await http.patch(
            "/v1/account", json={"default_channels": [{"channel": "sms", "sender": "nope"}]}
        )
        assert_problem(bad, 404, "sender_not_found")
        plan = [{"channel": "whatsapp", "fallback_time": 30}, {"channel": "sms", "text": "{link}"}]
        patched = await http.patch("/v1/account", json={"default_channels": plan})
        assert patched.status_code == 200, patched.text
        shown = (await http.get("/v1/account")).json()["default_channels"]
        assert [(c["channel"], c.get("fallback_time"), c.get("text")) for c in shown] == [
            ("whatsapp", 30, None),
            ("sms", None, "{link}"),
        ]
        sent = await send(http, NOT_ON_WHATSAPP, media_id)
        assert [c["channel"] for c in sent["channels"]] == ["whatsapp", "sms"]
        assert sent["channels"][0]["fallback_time"] == 30
        done = await until_status(http, sent["id"], {"delivered"}, "delivered by SMS")
        assert done["attempts"][1]["channel"] == "sms"
        cleared = await http.patch("/v1/account", json={"default_channels": None})
        assert cleared.json()["default_channels"] is None
        only = await send(http, ON_WHATSAPP, media_id)
        assert [c["channel"] for c in only["channels"]] == ["whatsapp"]


async def test_sms_status_callbacks_need_the_provider_signature(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    await sandbox_sender(engine, live_server)
    url = f"{live_server.url}/webhooks/sms/{SANDBOX_SMS_SENDER_ID}"
    form = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    body = urlencode(form)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with httpx.AsyncClient() as http:
        missing = await http.post(url, content=body, headers=headers)
        assert_problem(missing, 401, "unauthorized")
        wrong = twilio_signature("not-the-token", url, form)
        forged = await http.post(
            url, content=body, headers={**headers, "X-Twilio-Signature": wrong}
        )
        assert_problem(forged, 401, "unauthorized")
        right = twilio_signature(CREDS.sms_auth_token, url, form)
        ok = await http.post(url, content=body, headers={**headers, "X-Twilio-Signature": right})
        assert ok.status_code == 204, ok.text
        # Stored with its job, which goes before a backlog of sends (it finishes messages).
        # Seen inside the receiving transaction: once committed, a worker may run it at once.
        async with session_factory(engine)() as session:
            await sms_webhooks.receive(
                session,
                Sealer(TEST_SECRET),
                live_server.settings,
                sender_id=SANDBOX_SMS_SENDER_ID,
                body=body.encode(),
                signature=right,
                now=datetime.now(UTC),
            )
            kinds = (await session.execute(select(JobRow.kind, JobRow.priority))).all()
            await session.rollback()
        assert (SMS_WEBHOOK_KIND, Priority.REPORT) in [tuple(k) for k in kinds]
        unknown = await http.post(
            f"{live_server.url}/webhooks/sms/snd_nope",
            content=body,
            headers={**headers, "X-Twilio-Signature": right},
        )
        assert unknown.status_code == 404


async def test_sms_senders_keep_their_token_and_their_account(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await make_key(engine, "shop")
    other = await make_key(engine, "clinic")
    token = "tok-" + "x" * 28
    body = {
        "name": "twilio",
        "account_sid": "AC" + "a" * 32,
        "auth_token": token,
        "from_number": "+15550002000",
    }
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        made = await http.post("/v1/sms-senders", json=body)
        assert made.status_code == 201, made.text
        doc = made.json()
        assert doc["default"] is True and doc["channel"] == "sms"
        assert doc["status_callback_url"].endswith(f"/webhooks/sms/{doc['id']}")
        assert token not in made.text
        listed = await http.get("/v1/sms-senders")
        assert [s["name"] for s in listed.json()["data"]] == ["twilio"]
        assert token not in listed.text
        # WhatsApp senders and SMS senders are listed apart; names are shared.
        assert (await http.get("/v1/senders")).json()["data"] == []
        again = await http.post("/v1/sms-senders", json=body)
        assert_problem(again, 409, "sender_exists")
        both = await http.post(
            "/v1/sms-senders", json={**body, "name": "x", "messaging_service_sid": "MG" + "b" * 32}
        )
        assert "exactly one" in assert_problem(both, 422, "validation_error")["detail"]
    async with live_server.client(headers={"Authorization": f"Bearer {other}"}) as http:
        assert (await http.get("/v1/sms-senders/twilio")).status_code == 404
        assert (await http.delete("/v1/sms-senders/twilio")).status_code == 404
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        assert (await http.delete("/v1/sms-senders/twilio")).status_code == 204
        assert (await http.get("/v1/sms-senders")).json()["data"] == []
