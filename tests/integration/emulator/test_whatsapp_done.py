"""Issue 5's "done" scenario for the WhatsApp emulator, end to end over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.integration.emulator.test_whatsapp_harness import (
    Harness,
    Servers,
    auth,
    emulator_running,
    eventually,
    graph_error,
    pdf,
    running_servers,
    signed_ok,
)

PHONE_A = "+4915100000011"
PHONE_B = "+4915100000012"


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    with running_servers() as s:
        yield s


@pytest.fixture
async def wa(servers: Servers) -> AsyncIterator[Harness]:
    async with emulator_running(servers, {}) as h:  # an empty world: set up over HTTP
        yield h


async def test_done_scenario(wa: Harness) -> None:
    hook = wa.servers.hook_url
    number = {
        "display_phone_number": "+1 555 000 1001",
        "waba_id": "2001",
        "access_token": "tok",
        "app_secret": "sec",
        "webhook_url": hook,
        "verify_token": "vt",
    }
    wa.receiver.verify_token = "vt"
    resp = await wa.control("PUT", "/numbers/1001", json=number)
    assert resp.status_code == 201, resp.text
    assert resp.json()["webhook_verification"]["ok"] is True
    assert wa.receiver.handshakes[-1]["hub.mode"] == "subscribe"

    for phone, script in (
        (PHONE_A, {"window_open": True, "deliver_after": 0.1, "read_after": 0.2}),
        (PHONE_B, {"name": "Bea"}),
    ):
        resp = await wa.control("PUT", f"/phones/{phone}", json=script)
        assert resp.status_code == 201, resp.text

    # Upload a PDF and send it as a document with caption and filename.
    data = pdf(2000)
    up = await wa.upload(data, "application/pdf", "ignored.pdf", token="tok")
    assert up.status_code == 200, up.text
    media_id = up.json()["id"]
    sent = await wa.send(
        {
            "to": PHONE_A,
            "type": "document",
            "document": {"id": media_id, "caption": "Invoice 42", "filename": "invoice-42.pdf"},
        },
        token="tok",
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["contacts"] == [{"input": PHONE_A, "wa_id": PHONE_A.lstrip("+")}]
    wamid = sent.json()["messages"][0]["id"]
    assert wamid.startswith("wamid.")

    posts = await wa.wait_statuses(wamid, ["sent", "delivered", "read"])
    for post in posts:
        assert signed_ok(post, "sec")
        expected = hmac.new(b"sec", post.body, hashlib.sha256).hexdigest()
        assert post.headers["x-hub-signature-256"] == f"sha256={expected}"
        assert post.value["metadata"] == {
            "display_phone_number": "15550001001",
            "phone_number_id": "1001",
        }

    [item] = await wa.inbox(PHONE_A)
    assert item["id"] == wamid and item["type"] == "document"
    assert item["filename"] == "invoice-42.pdf" and item["caption"] == "Invoice 42"
    assert item["mime_type"] == "application/pdf" and item["status"] == "read"
    assert [s["status"] for s in item["statuses"]] == ["sent", "delivered", "read"]
    got = await wa.client.get(item["file_url"])
    assert got.status_code == 200 and got.content == data
    assert "invoice-42.pdf" in got.headers["content-disposition"]

    # Outside the 24-hour window a free-form message is accepted, then fails 131047.
    late = await wa.sent_id(
        {"to": PHONE_B, "type": "text", "text": {"body": "hello?"}}, token="tok"
    )
    assert (await wa.failed_error(late))["code"] == 131047

    # Phone B sends a document: the inbound webhook carries a media id to fetch.
    scan = pdf(500)
    resp = await wa.control(
        "POST",
        f"/phones/{PHONE_B}/messages",
        json={
            "to": "1001",
            "type": "document",
            "filename": "scan.pdf",
            "mime_type": "application/pdf",
            "caption": "my scan",
            "content_base64": base64.b64encode(scan).decode(),
        },
    )
    assert resp.status_code == 201, resp.text
    await eventually(lambda: len(wa.receiver.inbound()) == 1)
    [inbound] = wa.receiver.inbound()
    assert signed_ok(inbound, "sec")
    value = inbound.value
    assert value["contacts"] == [{"profile": {"name": "Bea"}, "wa_id": "4915100000012"}]
    [message] = value["messages"]
    assert message["from"] == "4915100000012" and message["type"] == "document"
    document = message["document"]
    assert document["filename"] == "scan.pdf" and document["mime_type"] == "application/pdf"
    assert document["caption"] == "my scan"
    assert document["sha256"] == base64.b64encode(hashlib.sha256(scan).digest()).decode()

    info = await wa.client.get(f"/v23.0/{document['id']}", headers=auth("tok"))
    assert info.status_code == 200, info.text
    assert info.json()["mime_type"] == "application/pdf"
    download = await wa.client.get(info.json()["url"], headers=auth("tok"))
    assert download.status_code == 200 and download.content == scan

    # The inbound message opened B's window: a document now goes through.
    reply = await wa.sent_id(
        {
            "to": PHONE_B,
            "type": "document",
            "document": {"id": media_id, "filename": "invoice-42.pdf"},
            "context": {"message_id": message["id"]},
        },
        token="tok",
    )
    await wa.wait_statuses(reply, ["sent", "delivered", "read"])

    # Throughput: with mps 1, the second message within one second gets 130429.
    resp = await wa.control("PUT", "/numbers/1001", json={**number, "mps": 1})
    assert resp.status_code == 200, resp.text
    wa.clock.advance(5)
    first = await wa.send({"to": PHONE_A, "type": "text", "text": {"body": "one"}}, token="tok")
    assert first.status_code == 200, first.text
    second = await wa.send({"to": PHONE_A, "type": "text", "text": {"body": "two"}}, token="tok")
    error = graph_error(second, 400, 130429)
    assert error["error_data"]["details"]
