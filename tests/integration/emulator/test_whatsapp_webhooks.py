"""Webhooks over real HTTP: signatures, order, retries with backoff, the delivery log,
inbound messages, and the verification handshake."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.integration.emulator.test_whatsapp_harness import (
    CLOSED_PHONE,
    DISPLAY,
    OPEN_PHONE,
    PNID,
    SECRET,
    VERIFY,
    Harness,
    Servers,
    emulator_running,
    eventually,
    pdf,
    running_servers,
    settle,
    signed_ok,
    world_document,
)
from tests.support import free_port
from wafile.core.meta_signature import verify_hub_signature


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    with running_servers() as s:
        yield s


@pytest.fixture
async def wa(servers: Servers) -> AsyncIterator[Harness]:
    async with emulator_running(servers) as h:
        yield h


def text(to: str, body: str = "hello") -> dict[str, Any]:
    return {"to": to, "type": "text", "text": {"body": body}}


async def log(wa: Harness, **filters: str) -> list[dict[str, Any]]:
    resp = await wa.control("GET", "/webhooks", params=filters)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["deliveries"])


async def test_posts_are_signed_with_the_app_secret(wa: Harness) -> None:
    wamid = await wa.sent_id(text(CLOSED_PHONE, "Grüße / ünïcode"))  # fails: 131047
    [post] = await wa.wait_statuses(wamid, ["failed"])
    header = post.headers["x-hub-signature-256"]
    expected = hmac.new(SECRET.encode(), post.body, hashlib.sha256).hexdigest()
    assert header == f"sha256={expected}"
    assert verify_hub_signature(SECRET, post.body, header)
    assert not verify_hub_signature("another-secret", post.body, header)
    assert post.headers["content-type"] == "application/json"
    # Meta's bytes: ASCII only, `/` escaped. Re-serialised JSON no longer verifies.
    assert b"\\/" in post.body and post.body.isascii()
    reserialised = json.dumps(post.json, separators=(",", ":")).encode()
    assert not verify_hub_signature(SECRET, reserialised, header)
    [entry] = await log(wa, message_id=wamid)
    assert entry["signature"] == header and entry["raw_body"].encode() == post.body


async def test_envelope_and_status_objects(wa: Harness) -> None:
    wamid = await wa.sent_id(text(OPEN_PHONE))
    sent, delivered, read = await wa.wait_statuses(wamid, ["sent", "delivered", "read"])
    body = sent.json
    assert body["object"] == "whatsapp_business_account"
    [entry] = body["entry"]
    assert entry["id"] == "2001"
    [change] = entry["changes"]
    assert change["field"] == "messages"
    assert change["value"]["metadata"] == {"display_phone_number": DISPLAY, "phone_number_id": PNID}
    for post in (sent, delivered, read):
        status = post.status
        assert status is not None
        assert status["id"] == wamid and status["recipient_id"] == OPEN_PHONE
        assert status["timestamp"].isdigit()
    assert sent.status and "expiration_timestamp" in sent.status["conversation"]
    assert sent.status["pricing"]["pricing_model"] == "PMP"
    assert delivered.status and delivered.status["conversation"]["origin"] == {"type": "service"}
    assert read.status and "pricing" not in read.status


async def test_order_holds_while_the_endpoint_fails_and_is_retried(wa: Harness) -> None:
    wa.receiver.fail_next = 2
    wa.receiver.fail_status = 503
    wamid = await wa.sent_id(text(OPEN_PHONE))
    await wa.wait_statuses(wamid, ["sent", "delivered", "read"])
    answered = [p.answered for p in wa.receiver.posts]
    assert answered == [503, 503, 200, 200, 200]
    entries = await log(wa, message_id=wamid)
    assert [e["status"] for e in entries] == ["sent", "delivered", "read"]
    sent = entries[0]
    assert [a["status_code"] for a in sent["attempts"]] == [503, 503, 200]
    assert sent["response_status"] == 200 and sent["outcome"] == "delivered"
    times = [a["at"] for a in sent["attempts"]]
    assert times == sorted(times)


async def test_gives_up_after_the_retry_delays(wa: Harness) -> None:
    wa.receiver.fail_next = 100
    wamid = await wa.sent_id(text(CLOSED_PHONE))  # one webhook only: failed 131047

    async def outcome() -> str:
        [entry] = await log(wa, message_id=wamid)
        return str(entry["outcome"])

    for _ in range(200):
        if await outcome() != "pending":
            break
        await settle(0.02)
    [entry] = await log(wa, message_id=wamid)
    assert entry["outcome"] == "gave_up"
    assert [a["status_code"] for a in entry["attempts"]] == [500, 500, 500, 500]  # 1 + 3 retries
    assert len(wa.receiver.posts) == 4


async def test_unreachable_endpoint_is_retried_and_logged(servers: Servers) -> None:
    doc = world_document(f"http://127.0.0.1:{free_port()}/hook")
    async with emulator_running(servers, doc) as wa:
        wamid = await wa.sent_id(text(OPEN_PHONE))
        entries: list[dict[str, Any]] = []
        for _ in range(300):
            entries = await log(wa, message_id=wamid)
            if [e["outcome"] for e in entries] == ["gave_up"] * 3:
                break
            await settle(0.02)
        assert [e["status"] for e in entries] == ["sent", "delivered", "read"]
        for entry in entries:
            assert entry["outcome"] == "gave_up" and entry["response_status"] is None
            assert len(entry["attempts"]) == 4
            assert all(a["error"] for a in entry["attempts"])


async def test_numbers_without_a_webhook_url_only_log(wa: Harness) -> None:
    resp = await wa.send(text(OPEN_PHONE), token="tok-1002", pnid="1002")
    wamid = resp.json()["messages"][0]["id"]
    entries: list[dict[str, Any]] = []
    for _ in range(200):
        entries = await log(wa, message_id=wamid)
        if entries:
            break
        await settle(0.02)
    assert entries[0]["url"] is None and entries[0]["outcome"] == "no_webhook_url"
    assert entries[0]["attempts"] == []


async def test_log_filters(wa: Harness) -> None:
    first = await wa.sent_id(text(OPEN_PHONE))
    second = await wa.sent_id(text(OPEN_PHONE, "again"))
    await wa.wait_statuses(first, ["sent", "delivered", "read"])
    await wa.wait_statuses(second, ["sent", "delivered", "read"])
    assert {e["message_id"] for e in await log(wa, status="read")} == {first, second}
    assert len(await log(wa, message_id=first, kind="status")) == 3
    assert len(await log(wa, phone_number_id="1002")) == 0
    resp = await wa.control("GET", "/webhooks", params={"colour": "red"})
    assert resp.status_code == 400 and "colour" in resp.json()["error"]["message"]


async def test_inbound_text_and_image(wa: Harness) -> None:
    resp = await wa.control(
        "POST", f"/phones/{CLOSED_PHONE}/messages", json={"to": PNID, "text": "Hallo"}
    )
    assert resp.status_code == 201, resp.text
    wamid = resp.json()["message"]["id"]
    image = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
    resp = await wa.control(
        "POST",
        f"/phones/+{CLOSED_PHONE}/messages",
        json={
            "to": "+1 555 000 1001",
            "type": "image",
            "mime_type": "image/png",
            "caption": "look",
            "content_base64": base64.b64encode(image).decode(),
            "context": {"message_id": "wamid.earlier"},
        },
    )
    assert resp.status_code == 201, resp.text
    await eventually(lambda: len(wa.receiver.inbound()) == 2)
    first, second = wa.receiver.inbound()
    assert signed_ok(first) and signed_ok(second)
    [message] = first.value["messages"]
    assert message == {
        "from": CLOSED_PHONE,
        "id": wamid,
        "timestamp": message["timestamp"],
        "type": "text",
        "text": {"body": "Hallo"},
    }
    assert first.value["contacts"] == [
        {"profile": {"name": "Closed Window"}, "wa_id": CLOSED_PHONE}
    ]
    [message] = second.value["messages"]
    assert message["context"] == {"from": DISPLAY, "id": "wamid.earlier"}
    assert message["image"]["caption"] == "look" and message["image"]["mime_type"] == "image/png"
    assert "filename" not in message["image"]
    sent = (await wa.control("GET", f"/phones/{CLOSED_PHONE}/sent")).json()["messages"]
    assert [m["type"] for m in sent] == ["text", "image"]


@pytest.mark.parametrize(
    ("phone", "body", "status"),
    [
        (OPEN_PHONE, {"to": "9999", "text": "hi"}, 404),
        ("12015550103", {"to": PNID, "text": "hi"}, 400),  # not on WhatsApp
        (OPEN_PHONE, {"to": PNID, "type": "text"}, 400),
        (OPEN_PHONE, {"to": PNID, "type": "document", "mime_type": "application/pdf"}, 400),
        (
            OPEN_PHONE,
            {"to": PNID, "type": "document", "mime_type": "x", "content_base64": "AA=="},
            400,
        ),
        (
            OPEN_PHONE,
            {"to": PNID, "type": "image", "mime_type": "image/png", "content_base64": "!!"},
            400,
        ),
        (OPEN_PHONE, {"to": PNID, "type": "location", "text": "hi"}, 400),
        (OPEN_PHONE, {"to": PNID, "text": "hi", "colour": "red"}, 400),
        ("not-a-phone", {"to": PNID, "text": "hi"}, 400),
    ],
)
async def test_phone_send_errors(
    wa: Harness, phone: str, body: dict[str, Any], status: int
) -> None:
    resp = await wa.control("POST", f"/phones/{phone}/messages", json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["message"]
    await settle(0.05)
    assert wa.receiver.posts == []


async def test_verification_handshake_on_configuration(wa: Harness) -> None:
    number = {
        "display_phone_number": "15550003003",
        "waba_id": "3003",
        "access_token": "tok-3003",
        "app_secret": "sec-3003",
        "webhook_url": wa.servers.hook_url,
        "verify_token": VERIFY,
    }
    resp = await wa.control("PUT", "/numbers/3003", json=number)
    result = resp.json()["webhook_verification"]
    assert result["ok"] is True and result["status_code"] == 200
    [handshake] = wa.receiver.handshakes
    assert handshake["hub.mode"] == "subscribe" and handshake["hub.verify_token"] == VERIFY
    assert handshake["hub.challenge"] == result["challenge"]

    resp = await wa.control("PUT", "/numbers/3003", json={**number, "verify_token": "wrong"})
    result = resp.json()["webhook_verification"]
    assert result["ok"] is False and result["status_code"] == 403

    wa.receiver.verify_token = "wrong"
    resp = await wa.control("POST", "/numbers/3003/verify-webhook")
    assert resp.json()["webhook_verification"]["ok"] is True

    dead = f"http://127.0.0.1:{free_port()}/hook"
    resp = await wa.control("PUT", "/numbers/3003", json={**number, "webhook_url": dead})
    result = resp.json()["webhook_verification"]
    assert result["ok"] is False and result["status_code"] is None
    assert result["detail"].startswith("unreachable")

    resp = await wa.control("PUT", "/numbers/3003", json={**number, "webhook_url": None})
    assert resp.json()["webhook_verification"] is None
    resp = await wa.control("POST", "/numbers/3003/verify-webhook")
    assert resp.status_code == 400


async def test_handshake_must_echo_the_challenge(servers: Servers) -> None:
    doc = world_document(servers.file_url("nothing-to-echo"))
    async with emulator_running(servers, doc) as wa:
        wa.receiver.files["nothing-to-echo"] = (b"ok", "text/plain", 200)
        resp = await wa.control("POST", f"/numbers/{PNID}/verify-webhook")
        result = resp.json()["webhook_verification"]
        assert result["ok"] is False and "challenge" in result["detail"]


async def test_status_webhooks_and_inbox_agree(wa: Harness) -> None:
    media = await wa.media_id(pdf())
    wamid = await wa.sent_id(
        {"to": OPEN_PHONE, "type": "document", "document": {"id": media, "filename": "a.pdf"}}
    )
    posts = await wa.wait_statuses(wamid, ["sent", "delivered", "read"])
    [item] = await wa.inbox(OPEN_PHONE)
    assert [s["status"] for s in item["statuses"]] == [
        p.status["status"] for p in posts if p.status
    ]
