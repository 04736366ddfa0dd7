"""Insider (seed 000) under `/insider`, over real HTTP on SQLite and PostgreSQL: the
page's two curl examples sent as curl sends them (a form under the page's
`Content-Type: application/json`), answered in the page's shapes; then the send that
completes the job (files by uploaded id, one free-form and one template, both in the
emulator phones' inboxes) with Insider-shaped status events at the callback URL; and
hostile variants, each in the Graph error shape and never as problem+json."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.callback_receiver import Receiver
from tests.integration.test_messages import CONTROL, open_window
from tests.support import AppServer, LiveServer, eventually, make_key

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x11" * 600
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"i" * 3000 + b"\ntrailer<<>>\n%%EOF\n"
PHONE = "+12015550101"  # delivered ~0.5 s after sent, read ~2 s later
OTHER_PHONE = "+12015550104"  # delivered, never read
BOUNDARY = "------------------------ca32bd7e423ce8c1"
WAIT = 20.0


def curl_form(filename: str, content: bytes, fields: dict[str, str]) -> tuple[bytes, str]:
    """The body and Content-Type curl sends for the page's `--header 'Content-Type:
    application/json' --form 'file=@...' --form ...`: it keeps the given type, appends
    the boundary and marks each part `attachment` rather than `form-data`."""
    mime = "image/jpeg" if filename.endswith(".jpeg") else "application/pdf"
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: attachment; name="file"; '
        f'filename="{filename}"\r\nContent-Type: {mime}\r\n\r\n'.encode()
        + content
        + b"\r\n"
    ]
    for name, value in fields.items():
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: attachment; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    return b"".join(
        parts
    ) + f"--{BOUNDARY}--\r\n".encode(), f"application/json; boundary={BOUNDARY}"


async def upload(
    http: httpx.AsyncClient, key: str | None, filename: str = "test.jpeg", content: bytes = JPEG
) -> httpx.Response:
    mime = "image/jpeg" if filename.endswith(".jpeg") else "application/pdf"
    body, ctype = curl_form(filename, content, {"type": mime, "messaging_product": "whatsapp"})
    headers = {"Content-Type": ctype}
    if key is not None:
        headers["x-ins-auth-key"] = key
    return await http.post("/insider/v1/media/upload", content=body, headers=headers)


def graph_error(resp: httpx.Response, status: int) -> dict[str, Any]:
    """Insider's error shape (Meta's Graph error object); never problem+json."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["code"] == status
    return dict(error)


async def test_upload_then_get_url_as_the_page_shows(
    live_server: LiveServer, sandbox_key: str
) -> None:
    async with live_server.client() as http:
        made = await upload(http, sandbox_key)
        assert made.status_code == 200, made.text
        assert set(made.json()) == {"id"} and isinstance(made.json()["id"], str)
        file_id = made.json()["id"]

        got = await http.get(
            f"/insider/v1/media/{file_id}",
            headers={"x-ins-auth-key": sandbox_key, "Content-Type": "application/json"},
        )
        assert got.status_code == 200, got.text
        doc = got.json()
        assert set(doc) == {
            "url",
            "mime_type",
            "sha256",
            "file_size",
            "File_size",
            "id",
            "messaging_product",
        }
        assert doc["id"] == file_id and doc["messaging_product"] == "whatsapp"
        assert doc["mime_type"] == "image/jpeg"
        assert doc["sha256"] == hashlib.sha256(JPEG).hexdigest()
        assert doc["File_size"] == doc["file_size"] == len(JPEG)
        assert (await http.get(doc["url"])).content == JPEG  # the link works without a key


async def test_send_by_uploaded_id_reaches_the_phones_with_insider_events(
    live_server: LiveServer, sandbox_key: str, receiver: tuple[Receiver, AppServer]
) -> None:
    rec, hooks = receiver
    async with live_server.client(headers={"Authorization": f"Bearer {sandbox_key}"}) as http:
        await http.patch(f"{CONTROL}/settings", json={"pair_rate_limit": False})
        image_id = (await upload(http, sandbox_key)).json()["id"]
        pdf_id = (await upload(http, sandbox_key, "Rechnung.pdf", PDF)).json()["id"]
        await open_window(http, PHONE)  # free-form needs it; the template does not
        sent = await http.post(
            "/insider/v1/send",
            headers={"x-ins-auth-key": sandbox_key},
            json={
                "messages": [
                    {
                        "phoneNumber": PHONE,
                        "message": {"type": "image", "image": {"id": image_id, "caption": "Hi"}},
                        "callback": f"{hooks.url}/insider",
                    },
                    {
                        "phoneNumber": OTHER_PHONE,
                        "message": {
                            "type": "template",
                            "template": {
                                "name": "file_delivery",
                                "language": {"code": "en_US", "policy": "deterministic"},
                                "components": [
                                    {
                                        "type": "header",
                                        "parameters": [
                                            {"type": "document", "document": {"id": pdf_id}}
                                        ],
                                    },
                                    {
                                        "type": "body",
                                        "parameters": [{"type": "text", "text": "Rechnung 7"}],
                                    },
                                ],
                            },
                        },
                    },
                ]
            },
        )
        assert sent.status_code == 200, sent.text
        first, second = sent.json()["messages"]
        assert first["phoneNumber"] == PHONE and first["key"].startswith("whatsapp-")
        assert second["phoneNumber"] == OTHER_PHONE and first["key"] != second["key"]

        async def inbox(phone: str) -> list[dict[str, Any]]:
            resp = await http.get(f"{CONTROL}/phones/{phone[1:]}/inbox")
            return list(resp.json()["messages"])

        async def both_arrived() -> bool:
            return bool(await inbox(PHONE)) and bool(await inbox(OTHER_PHONE))

        await eventually(both_arrived, "both files in the phones' inboxes", seconds=WAIT)
        [image] = await inbox(PHONE)
        assert image["type"] == "image" and image["caption"] == "Hi"
        assert image["sha256"] == hashlib.sha256(JPEG).hexdigest()
        [template] = await inbox(OTHER_PHONE)
        assert template["type"] == "template"
        assert template["sha256"] == hashlib.sha256(PDF).hexdigest()

        def events() -> list[dict[str, Any]]:
            return [json.loads(body) for _, body in rec.at("/insider")]

        async def read_reported() -> bool:
            return any(
                e.get("key") == first["key"] and e.get("statuses", [{}])[0].get("status") == "read"
                for e in events()
            )

        await eventually(read_reported, "the read status at the callback URL", seconds=WAIT)
        mine = [e for e in events() if e["key"] == first["key"]]
        accepted, delivered, read = mine
        assert accepted["messaging_product"] == "whatsapp"
        assert accepted["contacts"] == [{"input": PHONE, "wa_id": PHONE[1:]}]
        wamid = accepted["messages"][0]["id"]
        assert wamid == image["id"]
        assert [d["statuses"][0]["status"] for d in (delivered, read)] == ["delivered", "read"]
        assert {d["statuses"][0]["id"] for d in (delivered, read)} == {wamid}
        # The callback became the account's one Insider endpoint (a native endpoint).
        [endpoint] = (await http.get("/v1/webhooks")).json()["data"]
        assert endpoint["format"] == "insider" and endpoint["url"] == f"{hooks.url}/insider"


async def test_hostile_requests_get_graph_errors(
    live_server: LiveServer, engine: AsyncEngine, sandbox_key: str
) -> None:
    stranger = await make_key(engine, "other")
    async with live_server.client() as http:
        auth = {"x-ins-auth-key": sandbox_key}
        file_id = (await upload(http, sandbox_key)).json()["id"]
        # Auth: missing, wrong, and the native header (not Insider's).
        graph_error(await upload(http, None), 401)
        graph_error(await upload(http, "INS.1a2b3c4d5e6f"), 401)
        native = await http.get(
            f"/insider/v1/media/{file_id}", headers={"Authorization": f"Bearer {sandbox_key}"}
        )
        graph_error(native, 401)
        # Unknown ids, and another account's id.
        graph_error(await http.get("/insider/v1/media/med_nope", headers=auth), 404)
        theirs = await http.get(
            f"/insider/v1/media/{file_id}", headers={"x-ins-auth-key": stranger}
        )
        graph_error(theirs, 404)
        # Not a form, a form without `file`, bytes that are not the claimed type.
        not_form = await http.post(
            "/insider/v1/media/upload", headers=auth, json={"file": "x", "type": "image/jpeg"}
        )
        graph_error(not_form, 400)
        body, ctype = curl_form("test.jpeg", JPEG, {})
        no_file = body.replace(b'name="file"', b'name="picture"')
        resp = await http.post(
            "/insider/v1/media/upload", content=no_file, headers={**auth, "Content-Type": ctype}
        )
        graph_error(resp, 400)
        graph_error(await upload(http, sandbox_key, "test.jpeg", PDF), 400)

        async def send(messages: Any) -> httpx.Response:
            return await http.post("/insider/v1/send", headers=auth, json={"messages": messages})

        image = {"type": "image", "image": {"id": file_id}}
        for messages in (
            [],  # nothing to send
            [{"message": image}],  # no phoneNumber
            [{"phoneNumber": PHONE}],  # no message
            [{"phoneNumber": 12015550101, "message": image}],  # wrong type
            [{"phoneNumber": PHONE, "message": {"type": "text", "text": {"body": "hi"}}}],
            [{"phoneNumber": PHONE, "message": {"type": "image", "image": {}}}],
            [{"phoneNumber": "not a number", "message": image}],
            [{"phoneNumber": PHONE, "message": image, "callback": "ftp://example.com/x"}],
        ):
            graph_error(await send(messages), 400)
        unknown = {"type": "document", "document": {"id": "med_nope"}}
        graph_error(await send([{"phoneNumber": PHONE, "message": unknown}]), 404)
        # A refused message refuses the batch: the good one before it is not sent.
        graph_error(
            await send(
                [
                    {"phoneNumber": PHONE, "message": image},
                    {"phoneNumber": PHONE, "message": unknown},
                ]
            ),
            404,
        )
        listed = await http.get("/v1/messages", headers={"Authorization": f"Bearer {sandbox_key}"})
        assert listed.json()["data"] == []
        # Routing errors are Insider-shaped too.
        graph_error(await http.get("/insider/v1/nowhere", headers=auth), 404)
        graph_error(await http.delete("/insider/v1/send", headers=auth), 405)
        graph_error(await http.post("/insider/v1/send", headers=auth, content=b"{not json"), 400)
