"""99digital (seed 002) under `/99digital`, over real HTTP on SQLite and PostgreSQL: the
page's sendFile request (its body link served by a test origin on 127.0.0.1) refused
while the client has not written, then, once getTimers shows the window open, answered
in the page's response shape with the file in the emulator phone's inbox; sendTemplate
for a client outside the window; hostile variants, each a FAIL with its reason, never
problem+json; the webhook: the client's messages from the emulator as the incoming
hook (`"hook": "new"`) whatever `readStatus` says, and the status hooks with it on."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.integration.callback_receiver import Receiver
from tests.integration.test_messages import CONTROL, CREDS, open_window
from tests.support import AppServer, LiveServer, eventually, make_key

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"d" * 3000 + b"\ntrailer<<>>\n%%EOF\n"
FROM = CREDS.whatsapp_display_number  # the sandbox sender, as digits
TO = "972507654321"  # a number on the page (its "to" example, 972501234567, is not in use)
OTHER = "972523456789"  # a client who never wrote
READER = "12015550101"  # an emulator phone that reads what it gets
WAIT = 20.0
SEND_FILE_KEYS = {
    "status",
    "unique",
    "body",
    "caption",
    "timestamp",
    "from",
    "to",
    "templateTimeLeft",
    "conversationTimeLeft",
    "reason",
}


@pytest.fixture
def origin() -> Iterator[AppServer]:
    """The business's file server (the page's pubs.usgs.gov)."""

    async def serve(request: Request) -> Response:
        return Response(PDF, media_type="application/pdf")

    with AppServer(Starlette(routes=[Route("/{path:path}", serve)])) as server:
        yield server


def fail(resp: httpx.Response, reason: int, status: int = 200) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["status"] == "FAIL" and body["reason"] == reason, body
    assert isinstance(body["message"], str)


async def timers(http: httpx.AsyncClient, key: str, number: str) -> dict[str, Any]:
    resp = await http.post(
        "/99digital/whatsapp/v2/getTimers", json={"apiKey": key, "from": FROM, "number": number}
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def inbox(http: httpx.AsyncClient, number: str) -> list[dict[str, Any]]:
    return list((await http.get(f"{CONTROL}/phones/{number}/inbox")).json()["messages"])


async def test_send_file_inside_the_window_and_a_template_outside(
    live_server: LiveServer, sandbox_key: str, origin: AppServer
) -> None:
    link = f"{origin.url}/dds/dds-057/ReadMe.pdf"
    async with live_server.client() as http:
        await http.patch(f"{CONTROL}/settings", json={"pair_rate_limit": False})
        page_request = {
            "apiKey": sandbox_key,
            "from": FROM,
            "to": TO,
            "body": link,
            "caption": "The text you sent",
            "showRequest": 1,
            "localStorage": 1,
        }
        closed = await timers(http, sandbox_key, TO)
        assert closed == {
            "status": "OK",
            "number": TO,
            "templateTimeLeft": "0",
            "conversationTimeLeft": 0,
            "reason": 1,
        }
        refused = await http.post("/99digital/whatsapp/v2/sendFile", json=page_request)
        fail(refused, 5)

        wrote = await http.post(
            f"{CONTROL}/phones/{TO}/messages", json={"to": FROM, "text": "hello"}
        )
        assert wrote.status_code == 201, wrote.text

        async def opened() -> bool:
            return int((await timers(http, sandbox_key, TO))["templateTimeLeft"]) > 1400

        await eventually(opened, "getTimers showing the open window", seconds=WAIT)
        sent = await http.post("/99digital/whatsapp/v2/sendFile", json=page_request)
        assert sent.status_code == 200, sent.text
        out = sent.json()
        assert set(out) == SEND_FILE_KEYS | {"originalRequest"}
        assert (out["status"], out["reason"], out["conversationTimeLeft"]) == ("OK", 1, 0)
        assert isinstance(out["unique"], str) and isinstance(out["timestamp"], int)
        assert (out["body"], out["caption"], out["from"], out["to"]) == (
            link,
            "The text you sent",
            FROM,
            TO,
        )
        assert 1400 < int(out["templateTimeLeft"]) <= 1440
        assert out["originalRequest"] == {k: v for k, v in page_request.items() if k != "apiKey"}

        async def arrived(number: str) -> bool:
            return bool(await inbox(http, number))

        await eventually(lambda: arrived(TO), "the file in the client's inbox", seconds=WAIT)
        [got] = await inbox(http, TO)
        assert got["type"] == "document" and got["caption"] == "The text you sent"
        assert got["sha256"] == hashlib.sha256(PDF).hexdigest()

        # Without showRequest: no originalRequest. Outside the window: sendTemplate.
        template = await http.post(
            "/99digital/whatsapp/v2/sendTemplate",
            json={
                "apiKey": sandbox_key,
                "from": FROM,
                "to": OTHER,
                "name": "file_delivery",
                "headerType": 5,
                "headerLink": link,
                "bodyVariable1": "ReadMe",
            },
        )
        assert template.status_code == 200, template.text
        shaped = template.json()
        assert set(shaped) == SEND_FILE_KEYS - {"caption"}
        assert shaped["status"] == "OK" and shaped["templateTimeLeft"] == "0"
        await eventually(lambda: arrived(OTHER), "the template in the inbox", seconds=WAIT)
        [got] = await inbox(http, OTHER)
        assert got["type"] == "template" and got["sha256"] == hashlib.sha256(PDF).hexdigest()


async def test_hostile_requests_fail_with_their_reason(
    live_server: LiveServer, engine: AsyncEngine, sandbox_key: str, origin: AppServer
) -> None:
    stranger = await make_key(engine, "other")
    link = f"{origin.url}/ReadMe.pdf"
    good = {"apiKey": sandbox_key, "from": FROM, "to": TO, "body": link}
    async with live_server.client() as http:

        async def send_file(**change: Any) -> httpx.Response:
            body = {**good, **change}
            body = {k: v for k, v in body.items() if v is not None}
            return await http.post("/99digital/whatsapp/v2/sendFile", json=body)

        fail(await send_file(apiKey=None), 3)  # missing
        fail(await send_file(apiKey="wrong"), 3)
        fail(await send_file(apiKey=stranger), 2)  # a key of an account without that number
        fail(await send_file(**{"from": "972771234567"}), 2)
        fail(await send_file(**{"from": None}), 2)
        fail(await send_file(to="12"), 4)
        fail(await send_file(to=None), 4)
        fail(await send_file(to="972501234567-1600000000@g.us"), 8)
        fail(await send_file(body=None), 6)
        fail(await send_file(body="ftp://example.com/ReadMe.pdf"), 6)
        fail(await send_file(body=f"{origin.url}/setup.exe"), 7)
        fail(await send_file(showRequest="yes"), 9)
        fail(await send_file(to=12), 4)  # wrong type
        fail(await http.post("/99digital/whatsapp/v2/sendFile", content=b"{not json"), 9)

        async def send_template(**change: Any) -> httpx.Response:
            body = {**good, "name": "file_delivery", "headerType": 5, "headerLink": link}
            body.pop("body")
            return await http.post("/99digital/whatsapp/v2/sendTemplate", json={**body, **change})

        fail(await send_template(headerType=1), 9)  # no header: no file
        fail(await send_template(headerLink=None), 6)
        fail(await send_template(bodyVariable2="b"), 9)  # bodyVariable1 missing
        resp = await http.post(
            "/99digital/whatsapp/v2/getTimers", json={"apiKey": sandbox_key, "from": FROM}
        )
        fail(resp, 4)
        fail(await http.post("/99digital/whatsapp/v2/nowhere", json=good), 1 + 8, 404)
        fail(await http.get("/99digital/whatsapp/v2/sendFile"), 9, 405)
        listed = await http.get("/v1/messages", headers={"Authorization": f"Bearer {sandbox_key}"})
        assert listed.json()["data"] == []


WEBHOOK_KEYS = {"status", "url", "system", "systemPhoneAlert", "retry", "readStatus", "reason"}


async def test_set_webhook_gets_sent_delivered_and_read_hooks(
    live_server: LiveServer,
    sandbox_key: str,
    origin: AppServer,
    receiver: tuple[Receiver, AppServer],
) -> None:
    rec, hooks = receiver
    url = f"{hooks.url}/99digital"
    auth = {"apiKey": sandbox_key, "from": FROM}
    native = {"Authorization": f"Bearer {sandbox_key}"}
    async with live_server.client(headers=native) as http:

        async def call(path: str, **body: Any) -> dict[str, Any]:
            resp = await http.post(f"/99digital/whatsapp/v2/{path}", json={**auth, **body})
            assert resp.status_code == 200, resp.text
            assert resp.headers["content-type"] == "application/json"
            out = dict(resp.json())
            assert out["status"] == "OK", out
            return out

        assert await call("getWebhook") == {
            "status": "OK",
            "url": "",
            "system": 0,
            "systemPhoneAlert": "",
            "retry": 1,
            "readStatus": 0,
            "reason": 1,
        }
        set_off = await call("setWebhook", url=url, system=1, systemPhoneAlert=TO)
        assert set(set_off) == WEBHOOK_KEYS
        assert (set_off["url"], set_off["readStatus"], set_off["retry"]) == (url, 0, 1)
        on = await call("setWebhook", url=url, readStatus=1, retry=1)
        assert on == {**set_off, "readStatus": 1}
        assert await call("getWebhook") == on
        # One 99digital endpoint per account, a native endpoint in that format.
        [endpoint] = (await http.get("/v1/webhooks")).json()["data"]
        assert (endpoint["format"], endpoint["url"], endpoint["enabled"]) == (
            "99digital",
            url,
            True,
        )

        await open_window(http, "+" + READER)
        sent = await call(
            "sendFile", to=READER, body=f"{origin.url}/ReadMe.pdf", caption="your invoice"
        )
        assert sent["status"] == "OK"

        def received() -> list[dict[str, Any]]:
            return [json.loads(body) for _, body in rec.at("/99digital")]

        async def read() -> bool:
            return any(h["hook"] == "read" for h in received())

        await eventually(read, "the read hook at the webhook URL", seconds=WAIT)
        # The client's message that opened the window first, then the send's statuses.
        new, *got = received()
        assert (new["hook"], new["from"], new["body"]) == ("new", READER, "hello")
        assert [h["hook"] for h in got] == ["sent", "delivered", "read"]
        for hook in got:
            assert set(hook) == {"status", "hook", "unique", "to", "timestamp"}
            assert (hook["status"], hook["unique"], hook["to"]) == ("OK", sent["unique"], READER)
            assert hook["timestamp"].isdigit()

        # A blank url clears the webhook (and removes the endpoint).
        cleared = await call("setWebhook", url=" ")
        assert (cleared["url"], cleared["readStatus"]) == ("", 0)
        assert (await http.get("/v1/webhooks")).json()["data"] == []


async def test_set_webhook_refusals_are_fails(
    live_server: LiveServer, engine: AsyncEngine, sandbox_key: str
) -> None:
    stranger = await make_key(engine, "other")
    good = {"apiKey": sandbox_key, "from": FROM, "url": "https://example.com/hook"}
    async with live_server.client() as http:

        async def set_webhook(**change: Any) -> httpx.Response:
            body = {k: v for k, v in {**good, **change}.items() if v is not None}
            return await http.post("/99digital/whatsapp/v2/setWebhook", json=body)

        fail(await set_webhook(apiKey="wrong"), 3)
        fail(await set_webhook(apiKey=stranger), 2)
        fail(await set_webhook(url=None), 6)
        fail(await set_webhook(url="ftp://example.com/hook"), 6)
        fail(await set_webhook(readStatus=2), 9)
        fail(await set_webhook(systemPhoneAlert=",".join([TO] * 6)), 9)
        fail(await set_webhook(systemPhoneAlert="12"), 4)
        fail(await http.post("/99digital/whatsapp/v2/getWebhook", json={"from": FROM}), 3)
        fail(await http.get("/99digital/whatsapp/v2/getWebhook"), 9, 405)
        listed = await http.get("/v1/webhooks", headers={"Authorization": f"Bearer {sandbox_key}"})
        assert listed.json()["data"] == []


# The webhook page's incoming-message payload (vendors.md), every field of it.
NEW_KEYS = {
    "status", "hook", "unique", "from", "from_id", "username", "country", "phone", "to",
    "senderName", "type", "body", "caption", "isForwarded", "timestamp", "media", "quote",
    "quoteUnique", "profilePic", "conversationTimeLeft",
}  # fmt: skip


async def test_incoming_messages_reach_the_webhook_as_the_new_hook(
    live_server: LiveServer,
    sandbox_key: str,
    origin: AppServer,
    receiver: tuple[Receiver, AppServer],
) -> None:
    rec, hooks = receiver
    url = f"{hooks.url}/incoming"
    async with live_server.client(headers={"Authorization": f"Bearer {sandbox_key}"}) as http:
        # readStatus 0 (the default): incoming messages only, no status hooks.
        set_off = await http.post(
            "/99digital/whatsapp/v2/setWebhook",
            json={"apiKey": sandbox_key, "from": FROM, "url": url},
        )
        assert set_off.json()["readStatus"] == 0, set_off.text
        [endpoint] = (await http.get("/v1/webhooks")).json()["data"]
        assert (endpoint["enabled"], endpoint["events"]) == (True, ["inbound.received"])

        wrote = await http.post(
            f"{CONTROL}/phones/{TO}/messages",
            json={"to": CREDS.whatsapp_phone_number_id, "text": "hello"},
        )
        assert wrote.status_code == 201, wrote.text
        document = await http.post(
            f"{CONTROL}/phones/{TO}/messages",
            json={
                "to": CREDS.whatsapp_phone_number_id,
                "type": "document",
                "filename": "ReadMe.pdf",
                "mime_type": "application/pdf",
                "caption": "the contract",
                "content_base64": base64.b64encode(PDF).decode(),
            },
        )
        assert document.status_code == 201, document.text

        def received() -> list[dict[str, Any]]:
            return [json.loads(body) for _, body in rec.at("/incoming")]

        async def both() -> bool:
            return len(received()) == 2

        await eventually(both, "two incoming hooks", seconds=WAIT)
        by_type = {h["type"]: h for h in received()}
        text, file = by_type["text"], by_type["document"]
        inbound = {i["type"]: i for i in (await http.get("/v1/inbound")).json()["data"]}
        for hook in (text, file):
            assert set(hook) == NEW_KEYS
            assert (hook["status"], hook["hook"], hook["from"], hook["phone"], hook["to"]) == (
                "OK",
                "new",
                TO,
                TO,
                FROM,
            )
            assert hook["country"] == "IL" and hook["from_id"].startswith("IL.")
            assert hook["timestamp"].isdigit() and isinstance(hook["conversationTimeLeft"], str)
            # `unique` is WhatsApp's message id: what sendFile's replyTo takes.
            assert hook["unique"] == inbound[hook["type"]]["provider_message_id"]
        assert (text["body"], text["media"], text["quote"]) == ("hello", False, False)
        assert text["from_id"] == file["from_id"]  # stable per client
        assert (file["caption"], file["media"]) == ("the contract", True)
        async with httpx.AsyncClient() as anyone:  # the body is a link to wafile's copy
            linked = await anyone.get(file["body"])
        assert linked.status_code == 200 and linked.content == PDF

        # readStatus 0: a send that is read reports nothing.
        await open_window(http, "+" + READER)
        sent = await http.post(
            "/99digital/whatsapp/v2/sendFile",
            json={"apiKey": sandbox_key, "from": FROM, "to": READER, "body": f"{origin.url}/a.pdf"},
        )
        unique = sent.json()["unique"]

        async def read() -> bool:
            return (await http.get(f"/v1/messages/{unique}")).json()["status"] == "read"

        await eventually(read, "the send read", seconds=WAIT)
        # Its statuses made no delivery: the endpoint's log holds the three hellos only.
        log = f"/v1/webhooks/{endpoint['id']}/deliveries"

        async def settled() -> bool:
            found = (await http.get(log)).json()["data"]
            return len(found) == 3 and all(d["status"] == "delivered" for d in found)

        await eventually(settled, "the reader's hello delivered", seconds=WAIT)
        assert {d["event_type"] for d in (await http.get(log)).json()["data"]} == {
            "inbound.received"
        }
        assert [h["hook"] for h in received()] == ["new", "new", "new"]

        on = await http.post(
            "/99digital/whatsapp/v2/setWebhook",
            json={"apiKey": sandbox_key, "from": FROM, "url": url, "readStatus": 1},
        )
        assert on.json()["readStatus"] == 1
        [endpoint] = (await http.get("/v1/webhooks")).json()["data"]
        assert endpoint["events"] == ["inbound.received", "attempt.*"]
