"""The control API over real HTTP: the world, numbers, phones, templates, settings, the
control token, reset, error answers, and URLs when mounted under a prefix."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.integration.emulator.test_whatsapp_harness import (
    CLOSED_PHONE,
    OPEN_PHONE,
    PNID,
    TOKEN,
    FakeClock,
    Harness,
    Servers,
    auth,
    emulator_running,
    eventually,
    graph_error,
    pdf,
    running_servers,
    world_document,
)
from tests.support import AppServer
from wafile.emulator.whatsapp import WhatsAppEmulator, create_whatsapp_app, parse_world
from wafile.emulator.whatsapp.world import Timing


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    with running_servers() as s:
        yield s


@pytest.fixture
async def wa(servers: Servers) -> AsyncIterator[Harness]:
    async with emulator_running(servers) as h:
        yield h


NUMBER = {
    "display_phone_number": "15550003003",
    "waba_id": "3003",
    "access_token": "tok-3003",
    "app_secret": "sec-3003",
}


def text(to: str) -> dict[str, Any]:
    return {"to": to, "type": "text", "text": {"body": "hi"}}


async def test_get_world(wa: Harness) -> None:
    resp = await wa.control("GET", "/world")
    assert resp.status_code == 200
    world = resp.json()
    assert [n["phone_number_id"] for n in world["numbers"]] == [PNID, "1002"]
    assert [p["number"] for p in world["phones"]] == [OPEN_PHONE, CLOSED_PHONE]
    assert {t["name"] for t in world["templates"]} >= {"invoice_ready", "draft", "tired"}
    assert world["settings"]["pair_rate_limit"] is True
    assert world["timing"]["scale"] == 0.01
    assert world["control_token_set"] is False and "control_token" not in world
    assert len(world["magic_phones"]) == 6


async def test_numbers(wa: Harness) -> None:
    resp = await wa.control("PUT", "/numbers/3003", json=NUMBER)
    assert resp.status_code == 201, resp.text
    assert resp.json()["number"]["mps"] == 80 and resp.json()["created"] is True
    assert (await wa.upload(pdf(), token="tok-3003", pnid="3003")).status_code == 200

    resp = await wa.control("PUT", "/numbers/3003", json={**NUMBER, "access_token": "new"})
    assert resp.status_code == 200 and resp.json()["created"] is False
    graph_error(await wa.upload(pdf(), token="tok-3003", pnid="3003"), 401, 190)
    assert (await wa.upload(pdf(), token="new", pnid="3003")).status_code == 200
    numbers = (await wa.control("GET", "/numbers")).json()["numbers"]
    assert [n["phone_number_id"] for n in numbers] == [PNID, "1002", "3003"]

    assert (await wa.control("DELETE", "/numbers/3003")).status_code == 200
    graph_error(await wa.upload(pdf(), token="new", pnid="3003"), 401, 190)
    assert (await wa.control("DELETE", "/numbers/3003")).status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/numbers/3003", {**NUMBER, "mps": 0}, "number.mps"),
        ("/numbers/3003", {**NUMBER, "webhook_url": "ftp://x"}, "number.webhook_url"),
        ("/numbers/3003", {**NUMBER, "phone_number_id": "4"}, "phone_number_id"),
        (
            "/numbers/3003",
            {**NUMBER, "display_phone_number": "15550001001"},
            "display_phone_number",
        ),
        (
            "/numbers/3003",
            {k: v for k, v in NUMBER.items() if k != "app_secret"},
            "number.app_secret",
        ),
        ("/numbers/3003", {**NUMBER, "colour": "red"}, "number.colour"),
        ("/numbers/abc", NUMBER, "phone_number_id"),
        ("/numbers/3003", [1, 2], "number"),
        ("/phones/4915100000040", {"deliver_after": -1}, "phone.deliver_after"),
        ("/phones/4915100000040", {"fail_with": "soon"}, "phone.fail_with"),
        ("/phones/4915100000040", {"on_whatsapp": "yes"}, "phone.on_whatsapp"),
        ("/phones/12", {}, "number"),
        ("/templates/ok/en_US", {"header": "gif"}, "template.header"),
        ("/templates/ok/en_US", {"status": "MAYBE"}, "template.status"),
        ("/templates/Not-OK/en_US", {}, "template.name"),
        ("/templates/ok/english", {}, "template.language"),
        ("/templates/ok/en_US", {"body_params": -1}, "template.body_params"),
    ],
)
async def test_bad_changes_name_the_field(wa: Harness, path: str, body: Any, field: str) -> None:
    resp = await wa.control("PUT", path, json=body)
    assert resp.status_code == 400, resp.text
    assert field in resp.json()["error"]["message"]
    assert (await wa.control("GET", "/world")).json()["numbers"][0]["phone_number_id"] == PNID


async def test_phones(wa: Harness) -> None:
    view = (await wa.control("GET", "/phones/+12015550102")).json()
    assert view["source"] == "magic" and view["deliver_after"] is None
    view = (await wa.control("GET", "/phones/4930000000")).json()
    assert view["source"] == "default" and view["windows"][PNID]["open"] is False

    resp = await wa.control("PUT", "/phones/+4930000000", json={"on_whatsapp": False})
    assert resp.status_code == 201 and resp.json()["phone"]["number"] == "4930000000"
    view = (await wa.control("GET", "/phones/4930000000")).json()
    assert view["source"] == "declared" and view["on_whatsapp"] is False
    wamid = await wa.sent_id(text("4930000000"))
    assert (await wa.failed_error(wamid))["code"] == 131026

    resp = await wa.control("PUT", "/phones/4930000000", json={"window_open": True})
    assert resp.status_code == 200
    view = (await wa.control("GET", "/phones/4930000000")).json()
    assert view["windows"][PNID]["open"] is True
    assert (await wa.control("DELETE", "/phones/4930000000")).status_code == 200
    assert (await wa.control("DELETE", "/phones/4930000000")).status_code == 404
    listing = (await wa.control("GET", "/phones")).json()
    assert [p["number"] for p in listing["phones"]] == [OPEN_PHONE, CLOSED_PHONE]

    # Declaring a magic number overrides its magic.
    await wa.control("PUT", "/phones/12015550103", json={"window_open": True})
    ok = await wa.sent_id(text("12015550103"))
    await wa.wait_statuses(ok, ["sent", "delivered", "read"])


async def test_templates(wa: Harness) -> None:
    body = {
        "components": [
            {"type": "HEADER", "format": "DOCUMENT"},
            {"type": "BODY", "text": "Hello {{1}}, your file {{2}} is ready ({{1}})."},
            {"type": "FOOTER", "text": "wafile"},
        ]
    }
    resp = await wa.control("PUT", "/templates/file_ready/de", json=body)
    assert resp.status_code == 201, resp.text
    assert resp.json()["template"] == {
        "name": "file_ready",
        "language": "de",
        "header": "document",
        "header_params": 0,
        "body_params": 2,
        "status": "APPROVED",
        "category": "UTILITY",
    }
    media_id = await wa.media_id(pdf())
    message = {
        "to": OPEN_PHONE,
        "type": "template",
        "template": {
            "name": "file_ready",
            "language": {"code": "de"},
            "components": [
                {
                    "type": "header",
                    "parameters": [{"type": "document", "document": {"id": media_id}}],
                },
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Ana"},
                        {"type": "text", "text": "a.pdf"},
                    ],
                },
            ],
        },
    }
    assert (await wa.send(message)).status_code == 200
    await wa.control("PUT", "/templates/file_ready/de", json={**body, "status": "REJECTED"})
    graph_error(await wa.send(message), 404, 132001)
    await wa.control("PUT", "/templates/file_ready/de", json={**body, "status": "DISABLED"})
    graph_error(await wa.send(message), 400, 132016)
    assert (await wa.control("DELETE", "/templates/file_ready/de")).status_code == 200
    graph_error(await wa.send(message), 404, 132001)
    assert (await wa.control("DELETE", "/templates/file_ready/de")).status_code == 404
    names = [t["name"] for t in (await wa.control("GET", "/templates")).json()["templates"]]
    assert "file_ready" not in names and "invoice_ready" in names


async def test_settings(wa: Harness) -> None:
    resp = await wa.control(
        "PATCH",
        "/settings",
        json={"pair_interval": 2.5, "timing": {"scale": 0.02, "retry_delays": [1, 1]}},
    )
    assert resp.status_code == 200, resp.text
    settings = (await wa.control("GET", "/settings")).json()
    assert settings["pair_interval"] == 2.5 and settings["pair_burst"] == 45
    assert settings["timing"]["scale"] == 0.02 and settings["timing"]["retry_delays"] == [1, 1]
    assert settings["timing"]["webhook_timeout"] == 2.0  # unchanged

    for bad, field in (
        ({"pair_interval": 0}, "settings.pair_interval"),
        ({"timing": {"scale": "fast"}}, "timing.scale"),
        ({"timing": {"retry_delays": [1, -1]}}, "timing.retry_delays[1]"),
        ({"mps": 3}, "settings.mps"),
        ([], "settings"),
    ):
        resp = await wa.control("PATCH", "/settings", json=bad)
        assert resp.status_code == 400 and field in resp.json()["error"]["message"], resp.text
    assert (await wa.control("GET", "/settings")).json() == settings


async def test_reset_restores_the_world_and_forgets_everything(wa: Harness) -> None:
    await wa.control("PUT", "/numbers/3003", json=NUMBER)
    await wa.control("PATCH", "/settings", json={"pair_rate_limit": False})
    await wa.control("POST", f"/phones/{CLOSED_PHONE}/messages", json={"to": PNID, "text": "hi"})
    media_id = await wa.media_id(pdf())
    wamid = await wa.sent_id(text(OPEN_PHONE))
    await wa.wait_statuses(wamid, ["sent", "delivered", "read"])

    resp = await wa.control("POST", "/reset")
    assert resp.status_code == 200
    world = (await wa.control("GET", "/world")).json()
    assert [n["phone_number_id"] for n in world["numbers"]] == [PNID, "1002"]
    assert world["settings"]["pair_rate_limit"] is True
    assert await wa.inbox(OPEN_PHONE) == []
    assert (await wa.control("GET", "/webhooks")).json()["deliveries"] == []
    assert (await wa.control("GET", "/media")).json()["media"] == []
    graph_error(await wa.client.get(f"/v23.0/{media_id}", headers=auth(TOKEN)), 400, 100)
    # The window CLOSED_PHONE opened is closed again.
    closed = await wa.sent_id(text(CLOSED_PHONE))
    assert (await wa.failed_error(closed))["code"] == 131047


async def test_reset_cancels_pending_work(wa: Harness) -> None:
    await wa.control("PATCH", "/settings", json={"timing": {"scale": 10}})  # 5 s to deliver
    wamid = await wa.sent_id(text(OPEN_PHONE))
    await eventually(lambda: wa.receiver.statuses(wamid) == ["sent"])
    assert wa.emulator.pending_tasks == 1
    await wa.control("POST", "/reset")
    await eventually(lambda: wa.emulator.pending_tasks == 0)


async def test_control_token(servers: Servers) -> None:
    doc = {**world_document(servers.hook_url), "control_token": "letmein"}
    async with emulator_running(servers, doc) as wa:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "letmein"}):
            resp = await wa.control("GET", "/world", headers=headers)
            assert resp.status_code == 401 and resp.json()["error"]["message"]
        resp = await wa.control("POST", "/reset", headers={"Authorization": "Bearer letmein"})
        assert resp.status_code == 200
        resp = await wa.control("GET", "/world", headers={"Authorization": "bearer letmein"})
        assert resp.json()["control_token_set"] is True
        # The Graph routes are not behind the control token.
        assert (await wa.upload(pdf())).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "content"),
    [
        ("PUT", "/numbers/3003", b"{not json"),
        ("PUT", "/numbers/3003", b"\xff\xfe"),
        ("PUT", "/phones/4915100000040", b"[]"),
        ("PUT", "/templates/a/en", b'"text"'),
        ("PATCH", "/settings", b"null"),
        ("POST", f"/phones/{OPEN_PHONE}/messages", b"[1]"),
        ("GET", "/nowhere", b""),
        ("POST", "/world", b""),
        ("GET", f"/phones/{OPEN_PHONE}/inbox/wamid.none/file", b""),
        ("GET", "/phones/bogus/inbox", b""),
    ],
)
async def test_errors_are_json_never_500(
    wa: Harness, method: str, path: str, content: bytes
) -> None:
    resp = await wa.control(method, path, content=content)
    assert 400 <= resp.status_code < 500, resp.text
    error = resp.json()["error"]
    assert error["status"] == resp.status_code and error["message"]


async def test_inbox_file_needs_a_file(wa: Harness) -> None:
    wamid = await wa.sent_id(text(OPEN_PHONE))
    resp = await wa.control("GET", f"/phones/{OPEN_PHONE}/inbox/{wamid}/file")
    assert resp.status_code == 404 and "no file" in resp.json()["error"]["message"]


async def test_media_listing(wa: Harness) -> None:
    media_id = await wa.media_id(pdf(5))
    await wa.control(
        "POST",
        f"/phones/{OPEN_PHONE}/messages",
        json={
            "to": PNID,
            "type": "audio",
            "mime_type": "audio/ogg",
            "content_base64": base64.b64encode(b"OggS-voice").decode(),
        },
    )
    media = (await wa.control("GET", "/media")).json()["media"]
    assert [m["origin"] for m in media] == ["upload", "inbound"]
    assert media[0]["id"] == media_id and media[0]["file_size"] == len(pdf(5))
    await eventually(lambda: len(wa.receiver.inbound()) == 1)
    audio = wa.receiver.inbound()[0].value["messages"][0]["audio"]
    assert audio["voice"] is True and audio["id"] == media[1]["id"]


async def test_mounted_under_a_prefix(servers: Servers) -> None:
    async with emulator_running(servers, mount="/_emulator/whatsapp") as wa:
        assert wa.base.endswith("/_emulator/whatsapp")
        data = pdf(7)
        media_id = await wa.media_id(data)
        info = (await wa.client.get(f"/v23.0/{media_id}", headers=auth(TOKEN))).json()
        assert info["url"].startswith(wa.base + "/whatsapp_business/attachments/?")
        got = await wa.client.get(info["url"], headers=auth(TOKEN))
        assert got.status_code == 200 and got.content == data

        wamid = await wa.sent_id(
            {
                "to": OPEN_PHONE,
                "type": "document",
                "document": {"id": media_id, "filename": "m.pdf"},
            }
        )
        await wa.wait_statuses(wamid, ["sent", "delivered", "read"])
        [item] = await wa.inbox(OPEN_PHONE)
        assert item["file_url"].startswith(wa.base + "/_control/phones/")
        assert (await wa.client.get(item["file_url"])).content == data
        resp = await wa.control("GET", "/missing")
        assert resp.status_code == 404 and "/_control/missing" in resp.json()["error"]["message"]
        graph_error(await wa.client.get("/nothing"), 400, 2500)


async def test_standalone_app_closes_the_emulator_at_shutdown(servers: Servers) -> None:
    """Run on its own (not through the harness), the app's lifespan closes the emulator:
    pending timelines are cancelled when the server stops."""
    doc = world_document(servers.hook_url)
    emulator = WhatsAppEmulator(parse_world(doc), timing=Timing(scale=100.0), now=FakeClock())
    with AppServer(create_whatsapp_app(emulator)) as server:
        async with server.client() as http:
            resp = await http.post(
                f"/v23.0/{PNID}/messages",
                headers=auth(TOKEN),
                json={"messaging_product": "whatsapp", **text(OPEN_PHONE)},
            )
            assert resp.status_code == 200, resp.text
            wamid = resp.json()["messages"][0]["id"]
            await eventually(lambda: servers.receiver.statuses(wamid) == ["sent"])
            assert emulator.pending_tasks == 1  # waiting 20 s to deliver
    assert emulator.pending_tasks == 0
    assert servers.receiver.statuses(wamid) == ["sent"]
