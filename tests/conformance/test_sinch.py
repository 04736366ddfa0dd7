"""Sinch (seed 004): the media provider routes exactly as the page shows them, and the
send that uses a provider, over real HTTP on SQLite and PostgreSQL: the page's
requests get the page's responses, the file is fetched from the business's server
(on 127.0.0.1) with the provider's credentials and reaches each recipient's phone in
the emulator, Sinch-shaped delivery reports arrive (at the bot's callback URL, or at a
send's own `callback`), and every hostile request is answered in Sinch's error object,
never as problem+json."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.integration.callback_receiver import Receiver, verified
from tests.support import AppServer, LiveServer, eventually, make_key
from wafile.core.vendor_callbacks.sinch import message_id_for

BOT = "sandbox"  # the sandbox account's WhatsApp sender
BASE = f"/sinch/whatsapp/v1/{BOT}"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"s" * 3000 + b"\ntrailer<<>>\n%%EOF\n"
BASIC = "Basic " + base64.b64encode(b"user:AbCdEf123456").decode()
PHONES = ["+12015550101", "+12015550104"]  # delivered (then read) / delivered, never read
WA = "/_emulator/whatsapp/_control"
WAIT = 20.0

# The page's two request examples, as written.
BASIC_PROVIDER = {
    "name": "your-basic-provider",
    "type": "www",
    "config": {"basic": {"username": "user", "password": "AbCdEf123456"}},
}
BEARER_PROVIDER = {
    "name": "your-bearer-provider",
    "type": "www",
    "config": {"bearer": "AbCdEf123456"},
}


class Origin:
    """The business's file server: Basic auth required, every request recorded."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.auth: list[str | None] = []

        async def serve(request: Request) -> Response:
            with self.lock:
                self.auth.append(request.headers.get("authorization"))
            if request.headers.get("authorization") != BASIC:
                return Response("no", status_code=401)
            return Response(PDF, media_type="application/pdf")

        self.app = Starlette(routes=[Route("/{path:path}", serve)])


@pytest.fixture
def origin() -> Iterator[tuple[Origin, AppServer]]:
    made = Origin()
    with AppServer(made.app) as server:
        yield made, server


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_sinch_error(resp: httpx.Response, status: int, message_id: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"requestError"} and set(body["requestError"]) == {"serviceException"}
    exc = body["requestError"]["serviceException"]
    assert set(exc) == {"messageId", "text"} and exc["messageId"] == message_id, body
    assert isinstance(exc["text"], str) and exc["text"]


async def test_the_pages_provider_requests_get_the_pages_responses(
    live_server: LiveServer, sandbox_key: str
) -> None:
    auth = bearer(sandbox_key)
    async with live_server.client() as http:
        for doc in (BASIC_PROVIDER, BEARER_PROVIDER):
            made = await http.post(f"{BASE}/provision/provider", json=doc, headers=auth)
            assert made.status_code == 200 and made.content == b""  # "Empty response body"
        listed = await http.get(f"{BASE}/provision/provider", headers=auth)
        assert listed.status_code == 200
        assert listed.json() == {
            "settings": {
                "application": {
                    "media": {
                        "providers": [
                            {
                                "name": "your-basic-provider",
                                "type": "www",
                                "config": {"basic": {"username": "user", "password": "••••6"}},
                            },
                            {
                                "name": "your-bearer-provider",
                                "type": "www",
                                "config": {"bearer": "••••6"},
                            },
                        ]
                    }
                }
            }
        }
        # Reusing a name replaces the provider; the native API sees the same ones.
        again = {**BEARER_PROVIDER, "config": {"bearer": "another-token-7"}}
        assert (await http.post(f"{BASE}/provision/provider", json=again, headers=auth)).is_success
        native = (await http.get("/v1/providers/your-bearer-provider", headers=auth)).json()
        assert native["config"] == {"bearer": "••••7"}
        gone = await http.delete(f"{BASE}/provision/provider/your-bearer-provider", headers=auth)
        assert gone.status_code == 200 and gone.content == b""
        names = [
            p["name"]
            for p in (await http.get(f"{BASE}/provision/provider", headers=auth)).json()[
                "settings"
            ]["application"]["media"]["providers"]
        ]
        assert names == ["your-basic-provider"]


async def test_a_send_with_a_provider_reaches_every_recipient_and_reports_back(
    live_server: LiveServer,
    sandbox_key: str,
    origin: tuple[Origin, AppServer],
    receiver: tuple[Receiver, AppServer],
) -> None:
    files, server = origin
    rec, rec_server = receiver
    auth = bearer(sandbox_key)
    async with live_server.client() as http:
        made = await http.post(
            "/v1/webhooks", json={"url": rec_server.url + "/sinch", "format": "sinch"}, headers=auth
        )
        assert made.status_code == 201, made.text
        secret = made.json()["secret"]
        await http.post(f"{BASE}/provision/provider", json=BASIC_PROVIDER, headers=auth)
        sent = await http.post(
            f"{BASE}/messages",
            json={
                "to": PHONES,
                "message": {
                    "type": "document",
                    "url": f"{server.url}/exports/statement.pdf",
                    "caption": "Your statement",
                    "filename": "statement.pdf",
                    "provider": "your-basic-provider",
                },
            },
            headers=auth,
        )
        assert sent.status_code == 201, sent.text
        body = sent.json()
        assert set(body) == {"type", "statuses"} and body["type"] == "whatsapp"
        assert [s["recipient"] for s in body["statuses"]] == PHONES
        for status in body["statuses"]:
            assert set(status) == {"message_id", "recipient", "status", "state"}
            assert (status["status"], status["state"]) == ("success", "queued")
            assert len(status["message_id"]) == 26 and status["message_id"].isupper()

        for phone in PHONES:

            async def arrived(phone: str = phone) -> bool:
                got = (await http.get(f"{WA}/phones/{phone[1:]}/inbox")).json()["messages"]
                return any(m.get("filename") == "statement.pdf" for m in got)

            await eventually(arrived, f"the file at {phone}", seconds=WAIT)
            [got] = (await http.get(f"{WA}/phones/{phone[1:]}/inbox")).json()["messages"]
            file = await http.get(f"{WA}/phones/{phone[1:]}/inbox/{got['id']}/file")
            assert file.content == PDF
        assert files.auth == [BASIC, BASIC]  # each fetched with the provider's credentials

        ids = {s["message_id"]: s["recipient"] for s in body["statuses"]}

        def reports() -> list[dict[str, Any]]:
            return [
                item
                for doc in (json.loads(b) for _, b in rec.at("/sinch"))
                for item in doc["statuses"]
            ]

        async def delivered_to_all() -> bool:
            done = {r["message_id"] for r in reports() if r["state"] in ("delivered", "read")}
            return done == set(ids)

        await eventually(delivered_to_all, "delivery reports for every recipient", seconds=WAIT)
        # Each signed (Standard Webhooks, with the endpoint's secret), in Sinch's shape.
        for doc in verified(secret, rec.at("/sinch")):
            assert set(doc) == {"type", "statuses"} and doc["type"] == "whatsapp"
            [item] = doc["statuses"]
            assert set(item) == {"message_id", "recipient", "status", "state"}
            assert ids[item["message_id"]] == item["recipient"] and item["status"] == "success"
        for message_id in ids:
            states = [r["state"] for r in reports() if r["message_id"] == message_id]
            assert states[:2] == ["dispatched", "delivered"]


async def test_a_sends_callback_gets_its_reports_instead_of_the_bots_callback_url(
    live_server: LiveServer,
    sandbox_key: str,
    origin: tuple[Origin, AppServer],
    receiver: tuple[Receiver, AppServer],
) -> None:
    """`callback` overrides the bot's callback URL for that send, as Sinch documents:
    its reports arrive there in Sinch's shape, signed the Standard Webhooks way with the
    account's callback secret; the bot's (the account's `sinch` endpoint) gets only the
    other sends, and never a native send's."""
    _, server = origin
    rec, rec_server = receiver
    auth = bearer(sandbox_key)
    async with live_server.client() as http:
        made = await http.post(
            "/v1/webhooks", json={"url": rec_server.url + "/bot", "format": "sinch"}, headers=auth
        )
        bot_secret = made.json()["secret"]
        secret = (await http.post("/v1/account/callback-secret", headers=auth)).json()["secret"]
        await http.post(f"{BASE}/provision/provider", json=BASIC_PROVIDER, headers=auth)
        document = {
            "type": "document",
            "url": f"{server.url}/exports/statement.pdf",
            "filename": "statement.pdf",
            "provider": "your-basic-provider",
        }
        own = await http.post(
            f"{BASE}/messages",
            json={"to": PHONES, "message": document, "callback": rec_server.url + "/mine"},
            headers=auth,
        )
        assert own.status_code == 201, own.text
        mine = {s["message_id"] for s in own.json()["statuses"]}
        plain = await http.post(
            f"{BASE}/messages", json={"to": PHONES[:1], "message": document}, headers=auth
        )
        assert plain.status_code == 201, plain.text
        [theirs] = [s["message_id"] for s in plain.json()["statuses"]]
        native = await http.post(
            "/v1/messages",
            json={
                "to": PHONES[0],
                "media_url": f"{server.url}/exports/statement.pdf",
                "provider": "your-basic-provider",
            },
            headers=auth,
        )
        assert native.status_code == 202, native.text

        def reports(path: str, secret: str) -> list[dict[str, Any]]:
            found = []
            for doc in verified(secret, rec.at(path)):
                assert set(doc) == {"type", "statuses"} and doc["type"] == "whatsapp"
                [item] = doc["statuses"]
                assert set(item) == {"message_id", "recipient", "status", "state"}
                found.append(item)
            return found

        async def delivered(path: str, secret: str, ids: set[str]) -> bool:
            done = {
                r["message_id"]
                for r in reports(path, secret)
                if r["state"] in ("delivered", "read")
            }
            return done == ids

        await eventually(
            lambda: delivered("/mine", secret, mine), "reports at the send's callback", seconds=WAIT
        )
        await eventually(
            lambda: delivered("/bot", bot_secret, {theirs}), "the bot's reports", seconds=WAIT
        )

        async def native_done() -> bool:
            got = await http.get(f"/v1/messages/{native.json()['id']}", headers=auth)
            return bool(got.json()["status"] in ("delivered", "read"))

        await eventually(native_done, "the native send delivered", seconds=WAIT)
        for r in reports("/mine", secret):
            assert r["message_id"] in mine and r["status"] == "success"
        for message_id in mine:
            states = [r["state"] for r in reports("/mine", secret) if r["message_id"] == message_id]
            assert states[:2] == ["dispatched", "delivered"]
        # The bot's URL heard only of the send without a callback of its own: nothing
        # was even queued for it of the others (deliveries are made with the event).
        assert {r["message_id"] for r in reports("/bot", bot_secret)} == {theirs}
        log = await http.get(f"/v1/webhooks/{made.json()['id']}/deliveries", headers=auth)
        assert {d["message_id"] for d in log.json()["data"]} == {message_id_for(theirs)}


async def test_hostile_requests_get_sinch_errors(
    live_server: LiveServer, engine: AsyncEngine, sandbox_key: str
) -> None:
    auth = bearer(sandbox_key)
    other = await make_key(engine, "acme")  # an account without this bot
    send = {"to": ["+12015550101"], "message": {"type": "document", "url": "https://e.com/a.pdf"}}
    async with live_server.client() as http:
        provider = f"{BASE}/provision/provider"
        for headers in (
            {},
            {"Authorization": "Basic dXNlcjpwdw=="},
            bearer("wfk_0_nope"),
            bearer(other),
        ):
            assert_sinch_error(await http.get(provider, headers=headers), 401, "unauthorized")
            resp = await http.post(f"{BASE}/messages", json=send, headers=headers)
            assert_sinch_error(resp, 401, "unauthorized")
        unknown_bot = "/sinch/whatsapp/v1/no-such-bot/provision/provider"
        assert_sinch_error(await http.get(unknown_bot, headers=auth), 401, "unauthorized")

        for doc in (
            {"type": "www", "config": {"bearer": "x"}},  # no name
            {**BEARER_PROVIDER, "name": "spaces are not allowed"},
            {**BEARER_PROVIDER, "name": "x" * 201},
            {**BEARER_PROVIDER, "type": "s3"},
            {**BEARER_PROVIDER, "config": {}},
            {
                **BEARER_PROVIDER,
                "config": {"bearer": "x", "basic": {"username": "u", "password": "p"}},
            },
            {**BEARER_PROVIDER, "config": {"basic": {"username": "u"}}},
            {**BEARER_PROVIDER, "config": "AbCdEf123456"},
        ):
            resp = await http.post(provider, json=doc, headers=auth)
            assert_sinch_error(resp, 400, "validation_error")
        resp = await http.post(provider, content=b"{not json", headers=auth)
        assert_sinch_error(resp, 400, "validation_error")
        assert_sinch_error(
            await http.delete(f"{provider}/never-made", headers=auth), 404, "provider_not_found"
        )

        def message(**changes: Any) -> dict[str, Any]:
            return {**send, "message": {**send["message"], **changes}}

        for doc, status, code in (
            ({**send, "to": []}, 400, "validation_error"),
            ({**send, "to": ["+12015550101"] * 21}, 400, "validation_error"),
            ({**send, "to": "+12015550101"}, 400, "validation_error"),
            ({"to": ["+12015550101"]}, 400, "validation_error"),
            ({**send, "to": ["+1555"]}, 400, "validation_error"),
            (message(type="text"), 400, "validation_error"),
            (message(url=None), 400, "validation_error"),
            (message(url="ftp://e.com/a.pdf"), 400, "outbound_refused"),
            (message(provider="nobody"), 404, "provider_not_found"),
            ({**send, "callback": "http://example.com/cb"}, 400, "validation_error"),
            ({**send, "callback": "https://u:p@example.com/cb"}, 400, "validation_error"),
            ({**send, "callback": "ftp://example.com/cb"}, 400, "validation_error"),
            ({**send, "callback": ""}, 400, "validation_error"),
            ({**send, "callback": 42}, 400, "validation_error"),
            ({**send, "callback": "https://e.com/" + "x" * 2100}, 400, "validation_error"),
        ):
            resp = await http.post(f"{BASE}/messages", json=doc, headers=auth)
            assert_sinch_error(resp, status, code)
        # One bad recipient refuses the whole request: nothing was sent to the others.
        resp = await http.post(
            f"{BASE}/messages", json={**send, "to": ["+12015550101", "+1555"]}, headers=auth
        )
        assert_sinch_error(resp, 400, "validation_error")
        assert (await http.get("/v1/messages", headers=auth)).json()["data"] == []

        assert_sinch_error(await http.get("/sinch/whatsapp/v2/x", headers=auth), 404, "not_found")
        assert_sinch_error(
            await http.put(f"{BASE}/messages", json=send, headers=auth), 405, "method_not_allowed"
        )
