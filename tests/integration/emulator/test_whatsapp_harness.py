"""Shared harness of the WhatsApp emulator tests (this module holds no tests).

Two real uvicorn servers per test module (starting one costs ~0.2 s, so they are shared):
one runs whatever ASGI app a test installs (an emulator, or one mounted under a prefix),
the other a receiver that records webhooks, answers the verification handshake, can be
told to fail N times, and serves files for `link` media. Each test gets a fresh emulator
with a fake wall clock and compressed timing, closed after the test.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support import AppServer
from wafile.core.meta_signature import verify_hub_signature
from wafile.emulator.whatsapp import WhatsAppEmulator, create_whatsapp_app, parse_world
from wafile.emulator.whatsapp.world import Timing

TOKEN = "tok-1001"
SECRET = "app-secret-1001"
VERIFY = "verify-1001"
PNID = "1001"
DISPLAY = "15550001001"
OPEN_PHONE = "4915100000001"  # declared, window open from the start
CLOSED_PHONE = "4915100000002"  # declared, window closed
START = 1_800_000_000.0
# Scripted delays x 0.01: the ordinary user is delivered after 5 ms, read 20 ms later.
FAST = Timing(
    scale=0.01, retry_delays=(1.0, 2.0, 4.0), webhook_timeout=2.0, media_fetch_timeout=2.0
)
WAIT = 5.0  # seconds any single expectation may take before the test fails


def pdf(extra: int = 0) -> bytes:
    return b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"p" * extra + b"\ntrailer<<>>\n%%EOF\n"


def png(pad: int = 0) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\x00" * (32 + pad)


def webp(pad: int = 0, animated: bool = False) -> bytes:
    flags = 0x02 if animated else 0x00
    body = b"WEBPVP8X" + b"\x0a\x00\x00\x00" + bytes([flags]) + b"\x00" * (9 + pad)
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def mp4(pad: int = 0) -> bytes:
    return b"\x00\x00\x00\x18ftypmp42" + b"\x00" * (16 + pad)


def ogg_opus() -> bytes:
    return b"OggS\x00\x02" + b"\x00" * 22 + b"OpusHead" + b"\x01" * 20


class FakeClock:
    """The emulator's wall clock: frozen unless a test moves it."""

    def __init__(self, start: float = START) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


@dataclass
class Post:
    path: str
    body: bytes
    headers: dict[str, str]
    answered: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def value(self) -> dict[str, Any]:
        return dict(self.json["entry"][0]["changes"][0]["value"])

    @property
    def status(self) -> dict[str, Any] | None:
        statuses = self.value.get("statuses")
        return dict(statuses[0]) if statuses else None


@dataclass
class Receiver:
    """What the webhook endpoint saw, and how it should answer next."""

    verify_token: str = VERIFY
    fail_next: int = 0
    fail_status: int = 500
    posts: list[Post] = field(default_factory=list)
    handshakes: list[dict[str, str]] = field(default_factory=list)
    files: dict[str, tuple[bytes, str, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        with self.lock:
            self.verify_token = VERIFY
            self.fail_next = 0
            self.fail_status = 500
            self.posts.clear()
            self.handshakes.clear()
            self.files.clear()

    def accepted(self) -> list[Post]:
        with self.lock:
            return [p for p in self.posts if 200 <= p.answered < 300]

    def statuses(self, message_id: str) -> list[str]:
        return [
            p.status["status"]
            for p in self.accepted()
            if p.status is not None and p.status["id"] == message_id
        ]

    def status_posts(self, message_id: str) -> list[Post]:
        return [p for p in self.accepted() if p.status and p.status["id"] == message_id]

    def inbound(self) -> list[Post]:
        return [p for p in self.accepted() if "messages" in p.value]

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            if request.method == "GET":
                params = dict(request.query_params)
                with self.lock:
                    self.handshakes.append(params)
                    token = self.verify_token
                if (
                    params.get("hub.mode") == "subscribe"
                    and params.get("hub.verify_token") == token
                ):
                    return PlainTextResponse(params.get("hub.challenge", ""))
                return PlainTextResponse("forbidden", status_code=403)
            body = await request.body()
            with self.lock:
                answer = 200
                if self.fail_next > 0:
                    self.fail_next -= 1
                    answer = self.fail_status
                self.posts.append(Post(request.url.path, body, dict(request.headers), answer))
            return Response("ok" if answer == 200 else "nope", status_code=answer)

        async def files(request: Request) -> Response:
            with self.lock:
                found = self.files.get(request.path_params["name"])
            if found is None:
                return Response("missing", status_code=404)
            data, content_type, status = found
            return Response(data, status_code=status, media_type=content_type)

        return Starlette(
            routes=[
                Route("/hook", hook, methods=["GET", "POST"]),
                Route("/files/{name}", files, methods=["GET"]),
            ]
        )


class Swap:
    """An ASGI app that forwards to whatever app the current test installed."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # the installed apps are closed by the harness
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert self.app is not None, "no app installed"
        await self.app(scope, receive, send)


class Servers:
    """The emulator host and the receiver, each under a real uvicorn on 127.0.0.1."""

    def __init__(self) -> None:
        self.receiver = Receiver()
        self.swap = Swap()
        self.host = AppServer(self.swap)
        self.hook = AppServer(self.receiver.app())

    @property
    def hook_url(self) -> str:
        return f"{self.hook.url}/hook"

    def file_url(self, name: str) -> str:
        return f"{self.hook.url}/files/{name}"


@contextmanager
def running_servers() -> Iterator[Servers]:
    servers = Servers()
    with servers.hook, servers.host:
        yield servers


def world_document(hook_url: str | None) -> dict[str, Any]:
    """The tests' world: two numbers of one WABA, two declared phones, some templates."""
    return {
        "numbers": [
            {
                "phone_number_id": PNID,
                "display_phone_number": DISPLAY,
                "waba_id": "2001",
                "access_token": TOKEN,
                "app_secret": SECRET,
                "webhook_url": hook_url,
                "verify_token": VERIFY,
                "mps": 80,
            },
            {
                "phone_number_id": "1002",
                "display_phone_number": "15550001002",
                "waba_id": "2001",
                "access_token": "tok-1002",
                "app_secret": "app-secret-1002",
                "webhook_url": None,
            },
        ],
        "phones": [
            {"number": OPEN_PHONE, "window_open": True, "deliver_after": 0.2, "read_after": 0.5},
            {"number": CLOSED_PHONE, "name": "Closed Window"},
        ],
        "templates": [
            {
                "name": "invoice_ready",
                "language": "en_US",
                "header": "document",
                "body_params": 1,
            },
            {"name": "photo_ready", "language": "en_US", "header": "image", "body_params": 0},
            {"name": "greeting", "language": "de", "header": "text", "header_params": 1},
            {"name": "draft", "language": "en_US", "status": "PENDING"},
            {"name": "tired", "language": "en_US", "status": "PAUSED"},
        ],
    }


@dataclass
class Harness:
    emulator: WhatsAppEmulator
    servers: Servers
    client: httpx.AsyncClient
    clock: FakeClock
    prefix: str = ""

    @property
    def receiver(self) -> Receiver:
        return self.servers.receiver

    @property
    def base(self) -> str:
        return self.servers.host.url + self.prefix

    async def upload(
        self,
        data: bytes,
        mime: str = "application/pdf",
        filename: str = "file.pdf",
        *,
        token: str = TOKEN,
        pnid: str = PNID,
        part_type: str | None = None,
    ) -> httpx.Response:
        return await self.client.post(
            f"/v23.0/{pnid}/media",
            headers=auth(token),
            files={"file": (filename, data, part_type or mime)},
            data={"messaging_product": "whatsapp", "type": mime},
        )

    async def media_id(self, data: bytes, mime: str = "application/pdf") -> str:
        resp = await self.upload(data, mime)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["id"])

    async def send(
        self, body: dict[str, Any], *, token: str = TOKEN, pnid: str = PNID
    ) -> httpx.Response:
        full = {"messaging_product": "whatsapp", "recipient_type": "individual", **body}
        return await self.client.post(f"/v23.0/{pnid}/messages", headers=auth(token), json=full)

    async def sent_id(self, body: dict[str, Any], *, token: str = TOKEN) -> str:
        resp = await self.send(body, token=token)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["messages"][0]["id"])

    async def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, f"/_control{path}", **kwargs)

    async def inbox(self, phone: str) -> list[dict[str, Any]]:
        resp = await self.control("GET", f"/phones/{phone}/inbox")
        assert resp.status_code == 200, resp.text
        return list(resp.json()["messages"])

    async def wait_statuses(self, message_id: str, expected: list[str]) -> list[Post]:
        await eventually(lambda: len(self.receiver.statuses(message_id)) >= len(expected))
        assert self.receiver.statuses(message_id) == expected
        return self.receiver.status_posts(message_id)

    async def failed_error(self, message_id: str) -> dict[str, Any]:
        """The one error of this message's `failed` webhook (the only webhook it gets)."""
        posts = await self.wait_statuses(message_id, ["failed"])
        status = posts[0].status
        assert status is not None
        errors = status["errors"]
        assert len(errors) == 1
        return dict(errors[0])


def auth(token: str) -> dict[str, str]:
    """The Authorization header for `token`; none at all for an empty token."""
    return {"Authorization": f"Bearer {token}"} if token else {}


async def eventually(check: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait until `check()` holds; fail the test after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


async def settle(seconds: float = 0.15) -> None:
    """Give background work time to act, for tests that check nothing more happens."""
    await asyncio.sleep(seconds)


def graph_error(resp: httpx.Response, status: int, code: int) -> dict[str, Any]:
    """The response is Meta's error envelope with this HTTP status and code."""
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    assert isinstance(error["fbtrace_id"], str) and error["fbtrace_id"]
    return dict(error)


def signed_ok(post: Post, secret: str = SECRET) -> bool:
    return verify_hub_signature(secret, post.body, post.headers.get("x-hub-signature-256"))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@asynccontextmanager
async def emulator_running(
    servers: Servers,
    document: dict[str, Any] | None = None,
    *,
    mount: str | None = None,
    timing: Timing = FAST,
) -> AsyncIterator[Harness]:
    """A fresh emulator installed on the host server (under `mount` if given)."""
    servers.receiver.clear()
    clock = FakeClock()
    doc = document if document is not None else world_document(servers.hook_url)
    emulator = WhatsAppEmulator(parse_world(doc), timing=timing, now=clock)
    app = create_whatsapp_app(emulator)
    prefix = mount or ""
    servers.swap.app = Starlette(routes=[Mount(mount, app)]) if mount else app
    client = httpx.AsyncClient(base_url=servers.host.url + prefix, timeout=10)
    try:
        yield Harness(emulator, servers, client, clock, prefix)
    finally:
        await client.aclose()
        await emulator.aclose()
        servers.swap.app = None
