"""Telesign (seed 001): `POST /telesign/v1/omnichannel` as the page shows it, over real
HTTP on SQLite and PostgreSQL: the page's request (its fictional number included, in
sandbox mode) gets the page's response, the file (fetched from the business's server
on 127.0.0.1) reaches the emulator phone, the fallback to SMS happens when WhatsApp
does not deliver within `fallback_time`, the Telesign-shaped callbacks arrive signed as
Telesign signs them (at the account's endpoint, or at a request's own `callback_url`),
and every hostile request is answered in Telesign's envelope, never as problem+json."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
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
from wafile.config import Settings
from wafile.core.vendor_callbacks.telesign import message_id_for

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"t" * 3000 + b"\ntrailer<<>>\n%%EOF\n"
FILE_PATH = "/346542/viatu/customer47325-order-history.xlsx"
PAGE_URL = "https://s3.amazonaws.com" + FILE_PATH
PAGE_PHONE = "15558675309"  # fictional (area code 555): the sandbox's ordinary user
ON_WHATSAPP = "12015550101"  # delivered ~0.5 s after sent, read ~2 s later
SILENT = "12015550102"  # WhatsApp: stays sent for ever
WA = "/_emulator/whatsapp/_control"
SMS = "/_emulator/sms/_control"
WAIT = 20.0
HEX32 = re.compile(r"^[0-9A-F]{32}$")

# The page's request example, as written.
PAGE_REQUEST: dict[str, Any] = {
    "channels": [{"channel": "whatsapp", "fallback_time": 600}, {"channel": "sms"}],
    "phone_number": "15558675309",
    "message": {
        "whatsapp": {
            "template": "file",
            "parameters": {"url": PAGE_URL, "file_name": "order history.pdf"},
        },
        "sms": {
            "template": "text",
            "parameters": {
                "text": "Your viatu.com order history is ready for download at "
                "https://s3.amazonaws.com/346542/viatu/customer47325-order-history.xlsx."
            },
        },
    },
    "message_type": "MKT",
}
CALLBACK_KEYS = {"reference_id", "external_id", "status", "channel_status"}
CHANNEL_KEYS = {"code", "description", "reference_id", "updated_on"}


@pytest.fixture
def origin() -> Iterator[AppServer]:
    """The business's file server (the page's S3 bucket), on 127.0.0.1."""

    async def serve(request: Request) -> Response:
        return Response(PDF, media_type="application/octet-stream")

    with AppServer(Starlette(routes=[Route("/{path:path}", serve)])) as server:
        yield server


def page_request(origin: AppServer, phone: str = PAGE_PHONE) -> dict[str, Any]:
    """The page's example with its file on the origin (the page's S3 link is not a real
    file), to the page's number or another one."""
    doc = copy.deepcopy(PAGE_REQUEST)
    doc["phone_number"] = phone
    doc["message"]["whatsapp"]["parameters"]["url"] = origin.url + FILE_PATH
    return doc


def basic(key: str, customer_id: str = "sandbox") -> dict[str, str]:
    """The page's header form: `Basic customer_id:api_key`, not base64-encoded."""
    return {"Authorization": f"Basic {customer_id}:{key}"}


def assert_telesign_error(resp: httpx.Response, http_status: int, code: int) -> None:
    assert resp.status_code == http_status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"reference_id", "external_id", "status"}
    assert HEX32.match(body["reference_id"])
    assert set(body["status"]) == {"code", "description", "updated_on"}
    assert body["status"]["code"] == code, body
    assert isinstance(body["status"]["description"], str) and body["status"]["description"]


def telesign_signature(body: bytes, secret: str) -> str:
    """What a Telesign receiver computes: base64(HMAC-SHA256(b64decode(key), body))."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


async def telesign_endpoint(http: httpx.AsyncClient, key: str, url: str) -> str:
    """The account's Telesign callback URL: a native endpoint in Telesign's format."""
    made = await http.post(
        "/v1/webhooks",
        json={"url": url, "format": "telesign"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["secret"])


async def callback_secret(http: httpx.AsyncClient, key: str) -> str:
    """The account's secret for per-send callback URLs (native and vendor alike)."""
    made = await http.post(
        "/v1/account/callback-secret", headers={"Authorization": f"Bearer {key}"}
    )
    assert made.status_code == 201, made.text
    return str(made.json()["secret"])


def callbacks(rec: Receiver, path: str, secret: str) -> list[dict[str, Any]]:
    """Every Telesign callback received at `path`, each signature checked as a Telesign
    receiver checks it, the customer id being the one the client authenticates with."""
    found = []
    for headers, body in rec.at(path):
        mac = telesign_signature(body, secret)
        assert headers["x-ts-authorization"] == mac
        assert headers["authorization"] == f"TSA sandbox:{mac}"
        assert "webhook-signature" not in headers
        found.append(json.loads(body))
    return found


async def test_the_pages_request_gets_the_pages_response_and_the_file_arrives(
    live_server: LiveServer,
    sandbox_key: str,
    origin: AppServer,
    receiver: tuple[Receiver, AppServer],
) -> None:
    rec, rec_server = receiver
    async with live_server.client() as http:
        secret = await telesign_endpoint(http, sandbox_key, rec_server.url + "/ts")
        # The page's request, its number as written: sandbox mode takes a number of the
        # right length (Telesign's own check); the emulator's unknown numbers behave as
        # its ordinary user (delivered, then read).
        resp = await http.post(
            "/telesign/v1/omnichannel", json=page_request(origin), headers=basic(sandbox_key)
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert set(body) == {"status", "reference_id", "external_id"}
        assert body["status"] == {"code": 3001, "description": "Message in progress"}
        assert HEX32.match(body["reference_id"]) and body["external_id"] is None
        ref = body["reference_id"]

        async def arrived() -> bool:
            got = await http.get(f"{WA}/phones/{PAGE_PHONE}/inbox")
            return any(m.get("filename") == "order history.pdf" for m in got.json()["messages"])

        await eventually(arrived, "the file in the phone's inbox", seconds=WAIT)
        [got] = (await http.get(f"{WA}/phones/{PAGE_PHONE}/inbox")).json()["messages"]
        file = await http.get(f"{WA}/phones/{PAGE_PHONE}/inbox/{got['id']}/file")
        assert file.content == PDF  # fetched from the origin, re-hosted, sent

        async def read() -> bool:
            resp = await http.get(f"/telesign/v1/omnichannel/{ref}", headers=basic(sandbox_key))
            return bool(resp.json()["status"]["code"] == 3005)

        await eventually(read, "the status lookup says read", seconds=WAIT)

        async def read_callback() -> bool:
            return any(c["status"]["code"] == 3005 for c in callbacks(rec, "/ts", secret))

        await eventually(read_callback, "the read callback", seconds=WAIT)
        seen = callbacks(rec, "/ts", secret)
        for doc in seen:
            assert set(doc) == CALLBACK_KEYS and doc["reference_id"] == ref
            assert doc["status"]["last_channel"] == "whatsapp"
            [item] = doc["channel_status"]
            assert set(item["whatsapp"]) == CHANNEL_KEYS
        assert [c["status"]["code"] for c in seen] == [3002, 3000, 3005]
        # Only one channel was needed: the SMS step never sent anything.
        assert (await http.get(f"{SMS}/phones/{PAGE_PHONE}/inbox")).json()["messages"] == []
        listed = await http.get("/v1/messages", headers={"Authorization": f"Bearer {sandbox_key}"})
        assert [m["to"] for m in listed.json()["data"]] == ["+15558675309"]


async def test_whatsapp_not_delivered_in_fallback_time_cascades_to_sms(
    live_server: LiveServer,
    sandbox_key: str,
    origin: AppServer,
    receiver: tuple[Receiver, AppServer],
) -> None:
    rec, rec_server = receiver
    async with live_server.client() as http:
        secret = await telesign_endpoint(http, sandbox_key, rec_server.url + "/ts")
        doc = page_request(origin, SILENT)
        doc["channels"][0]["fallback_time"] = 1  # the page's 600, shortened for the test
        doc["external_id"] = "order-47325"
        resp = await http.post("/telesign/v1/omnichannel", json=doc, headers=basic(sandbox_key))
        assert resp.status_code == 200, resp.text
        assert resp.json()["external_id"] == "order-47325"
        ref = resp.json()["reference_id"]

        async def sms_delivered() -> bool:
            return any(
                c["status"]["code"] == 3000 and c["status"]["last_channel"] == "sms"
                for c in callbacks(rec, "/ts", secret)
            )

        await eventually(sms_delivered, "the SMS delivered callback", seconds=WAIT)
        last = callbacks(rec, "/ts", secret)[-1]
        # The page's callback example, field for field.
        assert set(last) == CALLBACK_KEYS
        assert (last["reference_id"], last["external_id"]) == (ref, "order-47325")
        assert set(last["status"]) == {"code", "description", "last_channel", "updated_on"}
        assert last["status"]["description"] == "Delivered"
        wa, sms = last["channel_status"]
        assert wa["whatsapp"]["code"] == 3056
        assert wa["whatsapp"]["description"] == (
            "Message failed to deliver in specified fallback time"
        )
        assert sms["sms"]["code"] == 3000 and set(sms["sms"]) == CHANNEL_KEYS
        assert HEX32.match(wa["whatsapp"]["reference_id"])
        assert wa["whatsapp"]["reference_id"] != sms["sms"]["reference_id"] != ref
        # The SMS carries the page's text as written.
        [text] = (await http.get(f"{SMS}/phones/{SILENT}/inbox")).json()["messages"]
        assert text["body"] == PAGE_REQUEST["message"]["sms"]["parameters"]["text"]


async def test_a_requests_callback_url_gets_telesign_callbacks_instead_of_the_endpoint(
    live_server: LiveServer,
    sandbox_key: str,
    origin: AppServer,
    receiver: tuple[Receiver, AppServer],
) -> None:
    """`callback_url` in the request: this transaction's callbacks go there, in
    Telesign's shape, signed as Telesign signs (keyed with the account's callback
    secret); it overrides the account's Telesign endpoint for this transaction only."""
    rec, rec_server = receiver
    async with live_server.client() as http:
        endpoint_secret = await telesign_endpoint(http, sandbox_key, rec_server.url + "/ts")
        secret = await callback_secret(http, sandbox_key)
        doc = {**page_request(origin), "callback_url": rec_server.url + "/mine"}
        resp = await http.post("/telesign/v1/omnichannel", json=doc, headers=basic(sandbox_key))
        assert resp.status_code == 200, resp.text
        ref = resp.json()["reference_id"]
        # Another transaction without one: the account's endpoint hears of that one.
        other = await http.post(
            "/telesign/v1/omnichannel",
            json=page_request(origin, ON_WHATSAPP),
            headers=basic(sandbox_key),
        )
        assert other.status_code == 200, other.text

        async def read_at(path: str, secret: str, ref: str) -> bool:
            return any(
                c["status"]["code"] == 3005 and c["reference_id"] == ref
                for c in callbacks(rec, path, secret)
            )

        await eventually(
            lambda: read_at("/mine", secret, ref), "the read callback at the URL", seconds=WAIT
        )
        await eventually(
            lambda: read_at("/ts", endpoint_secret, other.json()["reference_id"]),
            "the other transaction's read callback at the endpoint",
            seconds=WAIT,
        )
        mine = callbacks(rec, "/mine", secret)
        assert [c["status"]["code"] for c in mine] == [3002, 3000, 3005]
        for doc in mine:
            assert set(doc) == CALLBACK_KEYS and doc["reference_id"] == ref
            [item] = doc["channel_status"]
            assert set(item["whatsapp"]) == CHANNEL_KEYS
        at_endpoint = {c["reference_id"] for c in callbacks(rec, "/ts", endpoint_secret)}
        assert at_endpoint == {other.json()["reference_id"]}
        log = await http.get(
            "/v1/webhooks/deliveries", headers={"Authorization": f"Bearer {sandbox_key}"}
        )
        per_send = [d for d in log.json()["data"] if d["endpoint_id"] is None]
        assert per_send and all(d["message_id"] == message_id_for(ref) for d in per_send)
        assert all(d["url"] == rec_server.url + "/mine" for d in per_send)


async def test_a_native_send_does_not_reach_the_telesign_endpoint(
    live_server: LiveServer,
    sandbox_key: str,
    origin: AppServer,
    receiver: tuple[Receiver, AppServer],
) -> None:
    """The account's Telesign endpoint reports Telesign transactions, not messages sent
    through the native API (a native endpoint gets those)."""
    rec, rec_server = receiver
    async with live_server.client() as http:
        secret = await telesign_endpoint(http, sandbox_key, rec_server.url + "/ts")
        auth = {"Authorization": f"Bearer {sandbox_key}"}
        native = await http.post(
            "/v1/webhooks", json={"url": rec_server.url + "/native"}, headers=auth
        )
        native_secret = native.json()["secret"]
        sent = await http.post(
            "/v1/messages",
            json={"to": "+" + ON_WHATSAPP, "media_url": origin.url + FILE_PATH},
            headers=auth,
        )
        assert sent.status_code == 202, sent.text
        ts = await http.post(
            "/telesign/v1/omnichannel",
            json=page_request(origin, ON_WHATSAPP),
            headers=basic(sandbox_key),
        )
        ref = ts.json()["reference_id"]

        async def telesign_read() -> bool:
            return any(c["status"]["code"] == 3005 for c in callbacks(rec, "/ts", secret))

        async def native_read() -> bool:
            events = verified(native_secret, rec.at("/native"))
            return any(
                e["type"] == "message.read" and e["message"]["id"] == sent.json()["id"]
                for e in events
            )

        await eventually(telesign_read, "the Telesign transaction's read callback", seconds=WAIT)
        await eventually(native_read, "the native message's read event", seconds=WAIT)
        assert {c["reference_id"] for c in callbacks(rec, "/ts", secret)} == {ref}
        # Nothing was even queued for it of the native send (deliveries are made with
        # the event, before the native endpoint heard of it).
        endpoints = (await http.get("/v1/webhooks", headers=auth)).json()["data"]
        [ts_endpoint] = [e["id"] for e in endpoints if e["format"] == "telesign"]
        log = await http.get(f"/v1/webhooks/{ts_endpoint}/deliveries", headers=auth)
        assert {d["message_id"] for d in log.json()["data"]} == {message_id_for(ref)}


async def test_the_pages_fictional_number_is_refused_outside_the_sandbox(
    settings: Settings, engine: AsyncEngine
) -> None:
    """+1 555 867 5309 is not in use (area code 555 is not assigned): outside sandbox
    mode wafile refuses it before anything is fetched, sent or paid for, with Telesign's
    code for it."""
    key = await make_key(engine, "viatu")
    with LiveServer(settings.with_overrides(sandbox=False)) as server:
        async with server.client() as http:
            resp = await http.post(
                "/telesign/v1/omnichannel", json=PAGE_REQUEST, headers=basic(key, "viatu")
            )
            assert_telesign_error(resp, 400, 3101)
            assert "15558675309" in resp.json()["status"]["description"]


async def test_hostile_requests_get_telesign_errors(
    live_server: LiveServer, sandbox_key: str
) -> None:
    url = "/telesign/v1/omnichannel"
    good = {**PAGE_REQUEST, "phone_number": ON_WHATSAPP}
    encoded = base64.b64encode(f"sandbox:{sandbox_key}".encode()).decode()
    async with live_server.client() as http:
        # Authentication.
        assert_telesign_error(await http.post(url, json=good), 401, 3405)
        for header, code in (
            (f"Bearer {sandbox_key}", 3412),
            ("Basic", 3412),
            ("Basic bm90LWEtcGFpcg==", 3412),  # base64 of "not-a-pair"
            ("Basic sandbox:wfk_000000000000_nope", 3411),
            ("Basic 12345678-9ABC-DEF0-1234-56789ABCDEF0:vjE/ZDfPvDkuGNsuqCFFO4neYIs=", 3411),
            (f"Basic someone-else:{sandbox_key}", 3410),
        ):
            resp = await http.post(url, json=good, headers={"Authorization": header})
            assert_telesign_error(resp, 401, code)
        # HTTP Basic's own form (base64) works as well as the page's.
        ok = await http.post(url, json=good, headers={"Authorization": f"Basic {encoded}"})
        assert ok.status_code == 200, ok.text

        auth = basic(sandbox_key)

        def without(*path: str) -> dict[str, Any]:
            doc = copy.deepcopy(good)
            here = doc
            for step in path[:-1]:
                here = here[step]
            del here[path[-1]]
            return doc

        def changed(value: Any, *path: str) -> dict[str, Any]:
            doc = copy.deepcopy(good)
            here = doc
            for step in path[:-1]:
                here = here[step]
            here[path[-1]] = value
            return doc

        for doc, code in (
            (without("channels"), 3300),
            (changed([{"fallback_time": 5}], "channels"), 3301),
            (changed([], "channels"), 3113),
            (changed("whatsapp", "channels"), 3113),
            (changed([{"channel": "whatsapp"}, {"channel": "whatsapp"}], "channels"), 3113),
            (changed([{"channel": "whatsapp", "fallback_time": "soon"}], "channels"), 3113),
            (changed([{"channel": "whatsapp", "fallback_time": 0}], "channels"), 3113),
            (changed([{"channel": "viber"}], "channels"), 3100),
            (without("phone_number"), 3302),
            (changed(["15558675309"], "phone_number"), 3101),
            (changed("not a number", "phone_number"), 3101),
            (changed("999", "phone_number"), 3101),
            (without("message"), 3303),
            (changed("hello", "message"), 3110),
            (without("message_type"), 3304),
            (changed("SPAM", "message_type"), 3102),
            (changed("x" * 101, "external_id"), 3103),
            (changed(42, "external_id"), 3103),
            (changed("http://example.com/cb", "callback_url"), 3106),
            (changed("https://user:pw@example.com/cb", "callback_url"), 3106),
            (changed("not a url", "callback_url"), 3106),
            (changed("", "callback_url"), 3106),
            (changed(42, "callback_url"), 3106),
            (changed(["https://example.com/cb"], "callback_url"), 3106),
            (changed("https://example.com/" + "x" * 2100, "callback_url"), 3106),
            (without("message", "whatsapp"), 3306),
            (changed("image", "message", "whatsapp", "template"), 3112),
            (without("message", "whatsapp", "parameters", "url"), 3305),
            (changed(7, "message", "whatsapp", "parameters", "url"), 3305),
            (
                changed(
                    "ftp://files.example.com/a.pdf", "message", "whatsapp", "parameters", "url"
                ),
                3110,
            ),
            (changed("http://10.0.0.1/a.pdf", "message", "whatsapp", "parameters", "url"), 3110),
            (changed("otp", "message", "sms", "template"), 3112),
            (without("message", "sms", "parameters", "text"), 3305),
        ):
            resp = await http.post(url, json=doc, headers=auth)
            assert_telesign_error(resp, 400, code)
        for raw in (b"{not json", b"[1, 2]", b"x" * 20_000):
            resp = await http.post(url, content=raw, headers=auth)
            assert_telesign_error(resp, 400, 3116 if len(raw) > 10_000 else 3110)

        # Unknown transactions, routes and methods.
        for ref in ("0" * 32, "F" * 32, "not-a-reference"):
            resp = await http.get(f"{url}/{ref}", headers=auth)
            assert_telesign_error(resp, 404, 3110)
        assert_telesign_error(await http.get(f"{url}/{'0' * 32}"), 401, 3405)
        assert_telesign_error(await http.get("/telesign/v1/nothing-here", headers=auth), 404, 3110)
        assert_telesign_error(await http.delete(url, headers=auth), 405, 3110)


async def test_another_accounts_transaction_is_not_found(
    live_server: LiveServer, engine: AsyncEngine, sandbox_key: str, origin: AppServer
) -> None:
    other = await make_key(engine, "acme")
    async with live_server.client() as http:
        sent = await http.post(
            "/telesign/v1/omnichannel",
            json=page_request(origin, ON_WHATSAPP),
            headers=basic(sandbox_key),
        )
        ref = sent.json()["reference_id"]
        mine = await http.get(f"/telesign/v1/omnichannel/{ref}", headers=basic(sandbox_key))
        assert mine.status_code == 200 and mine.json()["reference_id"] == ref
        theirs = await http.get(f"/telesign/v1/omnichannel/{ref}", headers=basic(other, "acme"))
        assert_telesign_error(theirs, 404, 3110)
