"""Telesign (seed 001): `POST /telesign/v1/omnichannel` as the page shows it, over real
HTTP on SQLite and PostgreSQL: the page's request gets the page's response, the file
(fetched from the business's server on 127.0.0.1) reaches the emulator phone, the
fallback to SMS happens when WhatsApp does not deliver within `fallback_time`, the
Telesign-shaped callbacks arrive signed as Telesign signs them, and every hostile
request is answered in Telesign's envelope, never as problem+json."""

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

from tests.integration.callback_receiver import Receiver
from tests.support import AppServer, LiveServer, eventually, make_key

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"t" * 3000 + b"\ntrailer<<>>\n%%EOF\n"
FILE_PATH = "/346542/viatu/customer47325-order-history.xlsx"
PAGE_URL = "https://s3.amazonaws.com" + FILE_PATH
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


def page_request(origin: AppServer, phone: str) -> dict[str, Any]:
    """The page's example with its file on the origin and a number the sandbox has."""
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


def callbacks(rec: Receiver, path: str, secret: str) -> list[dict[str, Any]]:
    """Every Telesign callback received at `path`, each signature checked."""
    found = []
    for headers, body in rec.at(path):
        mac = telesign_signature(body, secret)
        assert headers["x-ts-authorization"] == mac
        assert headers["authorization"] == f"TSA wafile:{mac}"
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
        resp = await http.post(
            "/telesign/v1/omnichannel",
            json=page_request(origin, ON_WHATSAPP),
            headers=basic(sandbox_key),
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert set(body) == {"status", "reference_id", "external_id"}
        assert body["status"] == {"code": 3001, "description": "Message in progress"}
        assert HEX32.match(body["reference_id"]) and body["external_id"] is None
        ref = body["reference_id"]

        async def arrived() -> bool:
            got = await http.get(f"{WA}/phones/{ON_WHATSAPP}/inbox")
            return any(m.get("filename") == "order history.pdf" for m in got.json()["messages"])

        await eventually(arrived, "the file in the phone's inbox", seconds=WAIT)
        [got] = (await http.get(f"{WA}/phones/{ON_WHATSAPP}/inbox")).json()["messages"]
        file = await http.get(f"{WA}/phones/{ON_WHATSAPP}/inbox/{got['id']}/file")
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
        assert (await http.get(f"{SMS}/phones/{ON_WHATSAPP}/inbox")).json()["messages"] == []


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


async def test_the_pages_fictional_number_is_refused_as_telesign_refuses_a_bad_number(
    live_server: LiveServer, sandbox_key: str
) -> None:
    """+1 555 867 5309 is not in use (area code 555 is not assigned): wafile refuses it
    before anything is fetched, sent or paid for, with Telesign's code for it."""
    async with live_server.client() as http:
        resp = await http.post(
            "/telesign/v1/omnichannel", json=PAGE_REQUEST, headers=basic(sandbox_key)
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
            (changed("https://example.com/cb", "callback_url"), 3203),
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
