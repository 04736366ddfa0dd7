"""Sending by URL end to end over real HTTP on SQLite and PostgreSQL: POST /v1/messages
with media_url (and a media provider's credentials), the worker fetches the file from
an origin on 127.0.0.1 into the media store before the first send, then WhatsApp (the
sandbox emulator) delivers it; an origin that refuses fails the message with its
status; bad requests are refused at once."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.integration.test_messages import setup, until_status
from tests.integration.test_whatsapp_webhooks import sandbox_sender
from tests.support import AppServer, LiveServer, assert_problem

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"u" * 4000 + b"\ntrailer<<>>\n%%EOF\n"
PHONE = "+12015550101"  # delivered ~0.5 s after sent
SECRET = "s3cret-Pa55word"
DISPOSITION = "attachment; filename*=UTF-8''Kontoauszug%20M%C3%A4rz.pdf"
BASIC = "Basic " + base64.b64encode(f"files:{SECRET}".encode()).decode()


class Origin:
    """The business's file server: Basic auth on /private, counts every request."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: list[tuple[str, str | None]] = []

        async def serve(request: Request) -> Response:
            with self.lock:
                self.hits.append((request.url.path, request.headers.get("authorization")))
            if request.url.path.startswith("/private/") and (
                request.headers.get("authorization") != BASIC
            ):
                return Response("no", status_code=401)
            return Response(
                PDF,
                media_type="application/pdf",
                headers={"Content-Disposition": DISPOSITION},
            )

        self.app = Starlette(routes=[Route("/{path:path}", serve)])


@pytest.fixture
def origin() -> Iterator[tuple[Origin, AppServer]]:
    made = Origin()
    with AppServer(made.app) as server:
        yield made, server


async def test_a_remote_file_is_fetched_with_its_provider_then_sent(
    live_server: LiveServer, engine: AsyncEngine, origin: tuple[Origin, AppServer]
) -> None:
    files, server = origin
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        await setup(http)
        made = await http.post(
            "/v1/providers",
            json={
                "name": "statements",
                "type": "www",
                "config": {"basic": {"username": "files", "password": SECRET}},
            },
        )
        assert made.status_code == 201, made.text
        url = f"{server.url}/private/2026/03.pdf"
        sent = await http.post(
            "/v1/messages",
            json={"to": PHONE, "media_url": url, "provider": "statements", "caption": "März"},
        )
        assert sent.status_code == 202, sent.text
        accepted = sent.json()
        assert accepted["media_id"] is None and accepted["media_url"] == url
        done = await until_status(http, accepted["id"], {"delivered", "read"}, "delivered")
        assert done["filename"] == "Kontoauszug März.pdf"  # the origin's Content-Disposition
        media = (await http.get(f"/v1/media/{done['media_id']}")).json()
        assert media["source_url"] == url and media["mime_type"] == "application/pdf"
        assert (await http.get(f"/v1/media/{done['media_id']}/content")).content == PDF
        assert files.hits == [("/private/2026/03.pdf", BASIC)]  # fetched once, with the key


async def test_an_origin_that_refuses_fails_the_message_with_its_status(
    live_server: LiveServer, engine: AsyncEngine, origin: tuple[Origin, AppServer]
) -> None:
    _, server = origin
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        await setup(http)
        plan = [{"channel": "whatsapp"}, {"channel": "sms"}]
        sent = await http.post(
            "/v1/messages",
            json={"to": PHONE, "media_url": f"{server.url}/private/x.pdf", "channels": plan},
        )
        assert sent.status_code == 202, sent.text
        done = await until_status(http, sent.json()["id"], {"failed"}, "failed")
        [attempt] = done["attempts"]  # no SMS: no channel can send a file wafile lacks
        assert attempt["error_code"] == 401 and "401" in done["reason"]


async def test_bad_sends_by_url_are_refused_at_once(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        media_id = await setup(http)
        url = "https://files.example.com/a.pdf"
        for body, status, code in (
            ({"media_id": media_id, "media_url": url}, 422, "validation_error"),
            ({}, 422, "validation_error"),
            ({"media_id": media_id, "provider": "x"}, 422, "validation_error"),
            ({"media_url": url, "provider": "nope"}, 404, "provider_not_found"),
            ({"media_url": "ftp://files.example.com/a.pdf"}, 422, "outbound_refused"),
            ({"media_url": "file:///etc/passwd"}, 422, "outbound_refused"),
        ):
            resp = await http.post("/v1/messages", json={"to": PHONE, **body})
            assert_problem(resp, status, code)
