"""Customer callbacks over real HTTP on SQLite and PostgreSQL: webhook endpoints (CRUD,
secrets shown once, tenant isolation), a message sent through the sandbox emulator
producing signed events in sequence order at an endpoint and at its callback_url, a
receiver that is down and then up, a redirect that is not followed, the delivery log,
failing endpoints and manual redelivery; a user's messages (text, and a file from the
emulator) as `inbound.received` events; a vendor format's own retry schedule."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.integration.callback_receiver import Receiver, verified
from tests.integration.test_messages import CONTROL, PHONE, open_window, setup, until_status
from tests.integration.test_whatsapp_webhooks import (
    CREDS,
    HOOK,
    NOW,
    PDF,
    PDF_B64,
    envelope,
    sandbox_sender,
    signed,
)
from tests.support import (
    AppServer,
    LiveServer,
    assert_problem,
    eventually,
    free_port,
    make_key,
    make_settings,
)
from wafile.config import Settings
from wafile.core import callback_formats
from wafile.core.accounts import Account
from wafile.core.callback_formats import CallbackFormat
from wafile.db.engine import session_factory, transaction
from wafile.db.tables import WebhookReceiptRow

# Fast retries, so a receiver outage and a used-up schedule fit in a test.
SCHEDULE = (0.0, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3)
WAIT = 20.0
CALLBACK_TABLES = re.compile(r"\b(FROM|INTO|UPDATE|JOIN) (callback_\w+|webhook_endpoints)\b")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, callback_retry_schedule=SCHEDULE)


async def send(http: httpx.AsyncClient, media_id: str, **extra: Any) -> str:
    resp = await http.post("/v1/messages", json={"to": PHONE, "media_id": media_id, **extra})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


async def test_endpoints_crud_secrets_once_and_other_accounts_see_404(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key, other = await make_key(engine, "acme"), await make_key(engine, "other")
    async with (
        live_server.client(headers={"Authorization": f"Bearer {key}"}) as http,
        live_server.client(headers={"Authorization": f"Bearer {other}"}) as stranger,
    ):
        made = await http.post(
            "/v1/webhooks",
            json={"url": "https://example.com/hooks", "events": ["message.*"], "description": "a"},
        )
        assert made.status_code == 201, made.text
        endpoint = made.json()
        secret = endpoint["secret"]
        assert secret.startswith("whsec_") and len(secret) > 40
        assert (endpoint["events"], endpoint["enabled"], endpoint["failing"]) == (
            ["message.*"],
            True,
            False,
        )
        eid = endpoint["id"]

        listed = await http.get("/v1/webhooks")
        assert [e["id"] for e in listed.json()["data"]] == [eid]
        one = await http.get(f"/v1/webhooks/{eid}")
        assert one.status_code == 200 and "secret" not in one.json()
        assert secret not in listed.text + one.text

        patched = await http.patch(
            f"/v1/webhooks/{eid}", json={"enabled": False, "events": ["*"], "description": ""}
        )
        assert patched.status_code == 200, patched.text
        assert (patched.json()["enabled"], patched.json()["events"]) == (False, ["*"])
        assert patched.json()["description"] is None

        rotated = await http.post(f"/v1/webhooks/{eid}/rotate-secret")
        assert rotated.status_code == 200
        assert rotated.json()["secret"].startswith("whsec_") and rotated.json()["secret"] != secret

        # Refused: plain http to another host, unknown filters, credentials in the URL.
        for body in (
            {"url": "http://example.com/hooks"},
            {"url": "https://example.com/x", "events": ["message.status"]},
            {"url": "https://u:p@example.com/x"},
            {"url": "https://example.com/x", "events": []},
        ):
            assert_problem(await http.post("/v1/webhooks", json=body), 422, "validation_error")

        # Another account sees nothing of it.
        assert (await stranger.get("/v1/webhooks")).json()["data"] == []
        for method, path in (
            ("GET", f"/v1/webhooks/{eid}"),
            ("PATCH", f"/v1/webhooks/{eid}"),
            ("DELETE", f"/v1/webhooks/{eid}"),
            ("POST", f"/v1/webhooks/{eid}/rotate-secret"),
            ("GET", f"/v1/webhooks/{eid}/deliveries"),
        ):
            resp = await stranger.request(method, path, json={} if method == "PATCH" else None)
            assert_problem(resp, 404, "not_found")

        assert (await http.delete(f"/v1/webhooks/{eid}")).status_code == 204
        assert_problem(await http.get(f"/v1/webhooks/{eid}"), 404, "not_found")


async def test_a_sent_message_calls_back_signed_and_in_sequence_order(
    live_server: LiveServer,
    engine: AsyncEngine,
    receiver: tuple[Receiver, AppServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    rec, server = receiver
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        await open_window(http, PHONE)
        every = (await http.post("/v1/webhooks", json={"url": f"{server.url}/all"})).json()
        only = await http.post(
            "/v1/webhooks", json={"url": f"{server.url}/final", "events": ["message.*"]}
        )
        only_message = only.json()
        made = await http.post("/v1/account/callback-secret")
        assert made.status_code == 201
        account_secret = made.json()["secret"]

        message_id = await send(http, media_id, callback_url=f"{server.url}/cb?ref=42")
        await until_status(http, message_id, {"read"}, "the message read")

        async def all_read() -> bool:
            paths = ("/all", "/final", "/cb")
            return all(
                any(b'"type":"message.read"' in body for _, body in rec.at(p)) for p in paths
            )

        await eventually(all_read, "message.read at every target", seconds=WAIT)

        events = verified(every["secret"], rec.at("/all"))
        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
        assert [e["type"] for e in events] == [
            "attempt.queued",
            "attempt.sent",
            "message.in_progress",
            "attempt.delivered",
            "message.delivered",
            "attempt.read",
            "message.read",
        ]
        assert len({e["id"] for e in events}) == len(events)
        assert all(e["id"].startswith("evt_") for e in events)
        # Each carries the message as it was then; the last one the final message.
        delivered = events[4]
        assert (delivered["previous"], delivered["status"], delivered["late"]) == (
            "in_progress",
            "delivered",
            False,
        )
        assert delivered["message"]["status"] == "delivered"
        assert delivered["message"]["attempts"][0]["delivered_at"] is not None
        assert delivered["message"]["attempts"][0]["read_at"] is None
        final = events[-1]["message"]
        [attempt] = final["attempts"]
        assert final["id"] == message_id and final["status"] == "read"
        assert attempt["channel"] == "whatsapp" and attempt["status"] == "read"
        assert attempt["provider_message_id"].startswith("wamid.")
        assert events[1]["subject"] == "attempt" and events[1]["attempt"] == 0

        # The filter: message events only, still signed with that endpoint's secret.
        filtered = verified(only_message["secret"], rec.at("/final"))
        assert [e["type"] for e in filtered] == [
            "message.in_progress",
            "message.delivered",
            "message.read",
        ]
        assert [e["id"] for e in filtered] == [events[i]["id"] for i in (2, 4, 6)]

        # callback_url: the same events, signed with the account's callback secret.
        per_message = verified(account_secret, rec.at("/cb"))
        assert [e["id"] for e in per_message] == [e["id"] for e in events]
        headers, _ = rec.at("/cb")[0]
        assert headers["user-agent"].startswith("wafile/")
        assert headers["webhook-id"] == per_message[0]["id"]

        # The delivery log of an endpoint. A receiver has an event before its attempt
        # is recorded (with the other jobs' attempts of its batch): wait for that.
        async def recorded() -> bool:
            log = await http.get(f"/v1/webhooks/{every['id']}/deliveries", params={"limit": 50})
            return all(d["status"] != "pending" for d in log.json()["data"])

        await eventually(recorded, "the endpoint's attempts recorded", seconds=WAIT)
        log = await http.get(f"/v1/webhooks/{every['id']}/deliveries", params={"limit": 5})
        assert log.status_code == 200, log.text
        page = log.json()
        assert len(page["data"]) == 5 and page["next_cursor"]
        rest = await http.get(
            f"/v1/webhooks/{every['id']}/deliveries", params={"cursor": page["next_cursor"]}
        )
        logged = page["data"] + rest.json()["data"]
        assert sorted(d["sequence"] for d in logged) == list(range(1, 8))
        for d in logged:
            assert d["status"] == "delivered" and d["endpoint_id"] == every["id"]
            [try_] = d["attempts"]
            assert try_["status_code"] == 200 and try_["error"] is None
            assert try_["latency_ms"] >= 0 and try_["response"] == "ok"
        mine = await http.get("/v1/webhooks/deliveries", params={"message_id": message_id})
        assert len(mine.json()["data"]) == 7 + 3 + 7
        assert any(d["endpoint_id"] is None for d in mine.json()["data"])

        # No secret in any GET, nor in the logs.
        shown = [
            (await http.get(p)).text
            for p in (
                "/v1/webhooks",
                f"/v1/webhooks/{every['id']}",
                "/v1/webhooks/deliveries",
                f"/v1/messages/{message_id}",
            )
        ]
        for secret in (every["secret"], only_message["secret"], account_secret):
            assert all(secret not in text for text in shown)
            assert secret not in caplog.text
            assert secret.removeprefix("whsec_") not in caplog.text


async def test_down_receiver_is_retried_a_redirect_is_not_followed_failing_and_retry(
    live_server: LiveServer, engine: AsyncEngine, receiver: tuple[Receiver, AppServer]
) -> None:
    rec, server = receiver
    down_port = free_port()  # nothing listens here yet
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        await open_window(http, PHONE)
        late = await http.post(
            "/v1/webhooks",
            json={"url": f"http://127.0.0.1:{down_port}/hook", "events": ["message.delivered"]},
        )
        late_endpoint = late.json()
        rec.answers["/moved"] = Response(status_code=307, headers={"location": f"{server.url}/x"})
        moved = await http.post(
            "/v1/webhooks", json={"url": f"{server.url}/moved", "events": ["message.delivered"]}
        )
        moved_endpoint = moved.json()

        message_id = await send(http, media_id)
        await until_status(http, message_id, {"delivered", "read"}, "the message delivered")

        async def deliveries(endpoint_id: str) -> list[dict[str, Any]]:
            resp = await http.get(f"/v1/webhooks/{endpoint_id}/deliveries")
            return list(resp.json()["data"])

        async def tried_twice() -> bool:
            found = await deliveries(late_endpoint["id"])
            return bool(found) and len(found[0]["attempts"]) >= 2

        await eventually(tried_twice, "two failed attempts while the receiver is down")
        up = Receiver()
        with AppServer(up.app, port=down_port):

            async def arrived() -> bool:
                return bool(up.at("/hook"))

            await eventually(arrived, "the event delivered once the receiver is up", seconds=WAIT)
            [event] = verified(late_endpoint["secret"], up.at("/hook"))
            assert event["type"] == "message.delivered"

            async def settled() -> bool:
                found = await deliveries(late_endpoint["id"])
                return found[0]["status"] == "delivered"

            await eventually(settled, "the delivery recorded as delivered")
        [delivery] = await deliveries(late_endpoint["id"])
        *failed, ok = delivery["attempts"]
        assert failed and all(a["status_code"] is None and a["error"] for a in failed)
        assert ok["status_code"] == 200 and delivery["delivered_at"] is not None
        assert [a["number"] for a in delivery["attempts"]] == list(
            range(1, len(delivery["attempts"]) + 1)
        )
        healthy = (await http.get(f"/v1/webhooks/{late_endpoint['id']}")).json()
        assert healthy["failing"] is False and healthy["last_status_code"] == 200

        # The redirect: never followed, each attempt recorded, then failed for good.
        async def gave_up() -> bool:
            found = await deliveries(moved_endpoint["id"])
            return bool(found) and found[0]["status"] == "failed"

        await eventually(gave_up, "the redirected delivery failed", seconds=WAIT)
        [delivery] = await deliveries(moved_endpoint["id"])
        assert len(delivery["attempts"]) == len(SCHEDULE)
        assert all(a["status_code"] == 307 for a in delivery["attempts"])
        assert "not followed" in delivery["attempts"][0]["error"]
        assert rec.at("/x") == []
        failing = (await http.get(f"/v1/webhooks/{moved_endpoint['id']}")).json()
        assert failing["failing"] is True and failing["failing_since"] is not None
        listed = (await http.get("/v1/webhooks")).json()["data"]
        assert {e["id"]: e["failing"] for e in listed} == {
            late_endpoint["id"]: False,
            moved_endpoint["id"]: True,
        }

        # Fixed at the receiver; a manual redelivery gets it through and clears failing.
        del rec.answers["/moved"]
        other = await make_key(engine, "other")
        async with live_server.client(headers={"Authorization": f"Bearer {other}"}) as stranger:
            resp = await stranger.post(f"/v1/webhooks/deliveries/{delivery['id']}/retry")
            assert_problem(resp, 404, "not_found")
        retried = await http.post(f"/v1/webhooks/deliveries/{delivery['id']}/retry")
        assert retried.status_code == 202, retried.text

        async def redelivered() -> bool:
            found = (await deliveries(moved_endpoint["id"]))[0]
            return found["status"] == "delivered"

        await eventually(redelivered, "the manual redelivery", seconds=WAIT)
        [delivery] = await deliveries(moved_endpoint["id"])
        assert delivery["attempts"][-1]["manual"] is True
        assert delivery["attempts"][-1]["status_code"] == 200
        [event] = verified(moved_endpoint["secret"], rec.at("/moved")[-1:])
        assert event["id"] == delivery["event_id"]
        healed = (await http.get(f"/v1/webhooks/{moved_endpoint['id']}")).json()
        assert healed["failing"] is False and healed["failing_since"] is None


async def test_an_endpoint_in_a_vendor_format_gets_that_shape_and_signature(
    live_server: LiveServer,
    engine: AsyncEngine,
    receiver: tuple[Receiver, AppServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a dialect plugs in: a format shapes (or skips) each event and signs it, told
    the account; its endpoints get only the messages sent through its dialect, while a
    native endpoint gets them all."""

    def build(event: dict[str, Any]) -> dict[str, Any] | None:
        if event["subject"] != "message":
            return None  # this vendor reports the message only
        return {"ref": event["message"]["id"], "state": event["status"]}

    def sign(
        body: bytes, secret: str, event_id: str, at: datetime, account: Account
    ) -> dict[str, str]:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return {
            "X-Vendor-Signature": digest,
            "X-Vendor-Event": event_id,
            "X-Vendor-Customer": account.name,
        }

    # The Insider dialect's format, replaced by this one: its messages come through
    # /insider, its endpoints are in format "insider".
    monkeypatch.setitem(
        callback_formats._FORMATS, "insider", CallbackFormat(name="insider", build=build, sign=sign)
    )
    rec, server = receiver
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        await open_window(http, PHONE)
        unknown = await http.post("/v1/webhooks", json={"url": server.url, "format": "nope"})
        assert "format" in assert_problem(unknown, 422, "validation_error")["detail"]
        made = await http.post("/v1/webhooks", json={"url": f"{server.url}/v", "format": "insider"})
        assert made.status_code == 201 and made.json()["format"] == "insider"
        secret = made.json()["secret"]
        native = await http.post("/v1/webhooks", json={"url": f"{server.url}/n"})
        native_secret = native.json()["secret"]

        # A native send: the native endpoint hears of it, the vendor's endpoint does not.
        native_id = await send(http, media_id)
        await until_status(http, native_id, {"read"}, "the native message read")
        sent = await http.post(
            "/insider/v1/send",
            json={
                "messages": [
                    {
                        "phoneNumber": PHONE,
                        "message": {"type": "document", "document": {"id": media_id}},
                    }
                ]
            },
            headers={"X-INS-AUTH-KEY": key},
        )
        assert sent.status_code == 200, sent.text
        message_id = sent.json()["messages"][0]["key"].removeprefix("whatsapp-")
        await until_status(http, message_id, {"read"}, "the Insider message read")

        async def read_reported() -> bool:
            return any(b'"state":"read"' in body for _, body in rec.at("/v"))

        async def both_at_native() -> bool:
            refs = {e["message"]["id"] for e in verified(native_secret, rec.at("/n"))}
            return refs == {native_id, message_id}

        await eventually(read_reported, "the vendor's read callback", seconds=WAIT)
        await eventually(both_at_native, "both messages at the native endpoint", seconds=WAIT)
        origins = {
            e["message"]["id"]: e["message"]["origin"]
            for e in verified(native_secret, rec.at("/n"))
        }
        assert origins == {native_id: "native", message_id: "insider"}
        listed = (await http.get("/v1/messages")).json()["data"]
        assert {m["id"]: m["origin"] for m in listed} == origins
        got = rec.at("/v")
        assert [json.loads(b)["state"] for _, b in got] == ["in_progress", "delivered", "read"]
        for headers, body in got:
            assert json.loads(body)["ref"] == message_id  # never the native send's
            expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            assert headers["x-vendor-signature"] == expected
            assert headers["x-vendor-customer"] == "sandbox"
            assert "webhook-signature" not in headers


async def _processed(engine: AsyncEngine) -> int:
    """Provider webhooks applied so far."""
    async with transaction(session_factory(engine)) as session:
        found = await session.scalar(
            select(func.count())
            .select_from(WebhookReceiptRow)
            .where(WebhookReceiptRow.processed_at.is_not(None))
        )
        return int(found or 0)


async def test_an_inbound_message_is_one_signed_event_with_its_file(
    live_server: LiveServer, engine: AsyncEngine, receiver: tuple[Receiver, AppServer]
) -> None:
    rec, server = receiver
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        endpoints = {}
        for path, events in (
            ("/in", ["inbound.received"]),
            ("/all", None),
            ("/msg", ["message.*"]),
        ):
            made = await http.post(
                "/v1/webhooks", json={"url": f"{server.url}{path}", "events": events}
            )
            assert made.status_code == 201, made.text
            endpoints[path] = made.json()
        # A user writes (Meta's webhook, signed, as the emulator would post it); Meta
        # redelivers it: one inbound message, one event.
        text = {
            "from": "4917612345678",
            "id": "wamid.HELLO",
            "timestamp": str(NOW),
            "type": "text",
            "text": {"body": "hello"},
            "context": {"id": "wamid.EARLIER"},
        }
        body = envelope(
            messages=[text], contacts=[{"wa_id": "4917612345678", "profile": {"name": "Ada"}}]
        )
        for _ in range(2):
            assert (await http.post(HOOK, content=body, headers=signed(body))).status_code == 200

        async def both_applied() -> bool:
            return await _processed(engine) == 2 and len(rec.at("/in")) == 1

        await eventually(both_applied, "the webhook and its redelivery applied", seconds=WAIT)
        [event] = verified(endpoints["/in"]["secret"], rec.at("/in"))
        [listed] = (await http.get("/v1/inbound")).json()["data"]
        assert event["type"] == "inbound.received" and event["inbound"] == listed
        assert (listed["text"], listed["reply_to"], listed["profile_name"]) == (
            "hello",
            "wamid.EARLIER",
            "Ada",
        )
        assert event["to"] == "+" + CREDS.whatsapp_display_number
        assert (event["media_url"], event["at"]) == (None, listed["received_at"])

        # A file: its event comes once the file is in the media store, with a link.
        sent = await http.post(
            f"{CONTROL}/phones/12015550101/messages",
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

        async def second() -> bool:
            return len(rec.at("/in")) == 2 and len(rec.at("/all")) == 2

        await eventually(second, "the document's event", seconds=WAIT)
        _, document = verified(endpoints["/in"]["secret"], rec.at("/in"))
        assert verified(endpoints["/all"]["secret"], rec.at("/all"))[1]["id"] == document["id"]
        item = document["inbound"]
        assert (item["type"], item["filename"], item["caption"]) == (
            "document",
            "Befund.pdf",
            "my results",
        )
        assert item["media_id"] and item["media_error"] is None
        content = await http.get(f"/v1/media/{item['media_id']}/content")
        assert content.content == PDF
        async with httpx.AsyncClient() as anyone:  # the link needs no key
            linked = await anyone.get(document["media_url"])
        assert linked.status_code == 200 and linked.content == PDF
        assert document["media_url_expires_at"] > document["at"]
        assert rec.at("/msg") == []  # its filter takes message events only

        # The delivery log names the inbound message, not a message.
        found = (await http.get(f"/v1/webhooks/{endpoints['/in']['id']}/deliveries")).json()
        assert [d["inbound_id"] for d in found["data"]] == [item["id"], listed["id"]]
        assert {(d["message_id"], d["sequence"], d["status"]) for d in found["data"]} == {
            (None, 0, "delivered")
        }
        assert found["data"][0]["event"] == document
        # Redelivered by hand like any delivery.
        again = await http.post(f"/v1/webhooks/deliveries/{found['data'][1]['id']}/retry")
        assert again.status_code == 202, again.text

        async def redelivered() -> bool:
            return len(rec.at("/in")) == 3

        await eventually(redelivered, "the manual redelivery", seconds=WAIT)
        assert verified(endpoints["/in"]["secret"], rec.at("/in"))[2] == event


async def test_a_vendor_format_retries_on_its_vendors_schedule(
    live_server: LiveServer, engine: AsyncEngine, receiver: tuple[Receiver, AppServer]
) -> None:
    """The configured (fast) schedule is wafile's: a 99digital webhook retries at once,
    then five minutes later, as 99digital does."""
    rec, server = receiver
    rec.answers["/99"] = rec.answers["/std"] = Response("down", status_code=503)
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        made = {}
        for path, fmt in (("/99", "99digital"), ("/std", "standard")):
            resp = await http.post(
                "/v1/webhooks",
                json={"url": f"{server.url}{path}", "format": fmt, "events": ["inbound.*"]},
            )
            made[fmt] = resp.json()
        await open_window(http, PHONE)

        async def log_of(fmt: str) -> dict[str, Any]:
            found = await http.get(f"/v1/webhooks/{made[fmt]['id']}/deliveries")
            data = found.json()["data"]
            return dict(data[0]) if data else {}

        async def standard_gave_up() -> bool:
            return (await log_of("standard")).get("status") == "failed"

        await eventually(standard_gave_up, "wafile's schedule used up", seconds=WAIT)
        assert len((await log_of("standard"))["attempts"]) == len(SCHEDULE)

        async def retried_once() -> bool:
            return len((await log_of("99digital")).get("attempts", [])) == 2

        await eventually(retried_once, "99digital's immediate retry", seconds=WAIT)
        delivery = await log_of("99digital")
        assert delivery["status"] == "pending" and len(rec.at("/99")) == 2
        hook = json.loads(rec.at("/99")[0][1])
        assert (hook["hook"], hook["from"]) == ("new", PHONE[1:])
        last = datetime.fromisoformat(delivery["last_attempt_at"])
        due = datetime.fromisoformat(delivery["next_attempt_at"])
        # Five minutes, shortened by up to 20 % of jitter.
        assert timedelta(minutes=4) <= due - last <= timedelta(minutes=5)


async def test_a_failed_event_holds_back_the_rest_of_its_transition_and_few_statements(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    """`attempt.sent` and `message.in_progress` come from one transition, so one job
    sends both, in order. The receiver refuses the first `attempt.sent`: then
    `message.in_progress` is not sent before `attempt.sent` got through on its retry.
    The whole message costs few statements on the callback tables (one job per
    transition; no read before each write; the endpoints read once), counted with a
    listener on every engine of this process."""
    got: list[dict[str, Any]] = []
    refused: list[str] = []

    async def receive(request: Request) -> Response:
        event = json.loads(await request.body())
        if event["type"] == "attempt.sent" and not refused:
            refused.append(event["id"])
            return Response("not yet", status_code=500)
        got.append(event)
        return Response("ok")

    app = Starlette(routes=[Route("/hook", receive, methods=["POST"])])
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if CALLBACK_TABLES.search(statement):
            statements.append(statement)

    key = await sandbox_sender(engine, live_server)
    with AppServer(app) as server:
        async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
            media_id = await setup(http)
            await open_window(http, PHONE)
            made = await http.post(
                "/v1/webhooks",
                json={"url": f"{server.url}/hook", "events": ["message.*", "attempt.*"]},
            )
            assert made.status_code == 201, made.text
            event.listen(Engine, "before_cursor_execute", count)
            try:
                message_id = await send(http, media_id)

                async def all_in() -> bool:
                    return any(e["type"] == "message.read" for e in got)

                await eventually(all_in, "message.read at the endpoint", seconds=WAIT)
            finally:
                event.remove(Engine, "before_cursor_execute", count)
            found = await http.get(f"/v1/webhooks/{made.json()['id']}/deliveries")
            log = {d["event_type"]: d for d in found.json()["data"]}
    assert [e["sequence"] for e in got] == list(range(1, 8))
    assert all(e["message"]["id"] == message_id for e in got)
    assert refused == [got[1]["id"]] and got[1]["type"] == "attempt.sent"
    assert len(log["attempt.sent"]["attempts"]) == 2
    # Held back, not tried: its only attempt is the one that worked.
    assert len(log["message.in_progress"]["attempts"]) == 1
    # 7 deliveries in 4 transitions, one retried: 28 counted on a quiet machine (a
    # job's successes are one UPDATE and one INSERT however many), more when timing
    # makes a job wait its turn (a second read) or record alone; about 70 before the
    # jobs were grouped and the reads folded into the writes. test_callback_batch
    # pins the batched recording itself.
    assert len(statements) <= 36, "\n".join(statements)


async def test_an_endpoint_changed_through_this_process_routes_the_next_event_at_once(
    live_server: LiveServer, engine: AsyncEngine, receiver: tuple[Receiver, AppServer]
) -> None:
    """The account's endpoints are remembered for a few seconds between events, and a
    change made through this process clears that at once: a message sent right after
    its endpoint was disabled makes no delivery for it."""
    rec, server = receiver
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        await open_window(http, PHONE)
        made = await http.post(
            "/v1/webhooks", json={"url": f"{server.url}/on", "events": ["message.*"]}
        )
        first = await send(http, media_id)
        await until_status(http, first, {"delivered", "read"}, "the first message delivered")

        async def arrived() -> bool:
            return bool(rec.at("/on"))

        await eventually(arrived, "the first message's events", seconds=WAIT)
        off = await http.patch(f"/v1/webhooks/{made.json()['id']}", json={"enabled": False})
        assert off.status_code == 200, off.text
        second = await send(http, media_id)
        await until_status(http, second, {"delivered", "read"}, "the second message delivered")
        log = await http.get("/v1/webhooks/deliveries", params={"message_id": second})
        assert log.json()["data"] == []
        first_log = await http.get("/v1/webhooks/deliveries", params={"message_id": first})
        assert first_log.json()["data"]
