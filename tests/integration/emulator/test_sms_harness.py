"""Shared harness of the SMS emulator tests (this module holds no tests).

Two real uvicorn servers per test module (starting one costs ~0.2 s, so they are shared):
one runs whatever ASGI app a test installs (an SMS emulator, or one mounted under a
prefix), the other a receiver that records status callbacks and can be told to fail or
stall its next answers. Each test gets a fresh emulator with a fake wall clock and
compressed timing, closed after the test.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support import AppServer
from wafile.core.twilio_signature import verify_twilio_signature
from wafile.emulator.sms import SmsEmulator, Timing, create_sms_app, parse_world

ACCOUNT = "AC" + "a1" * 16
TOKEN = "auth-token-a1"
FROM = "+15550002000"
SERVICE = "MG" + "b2" * 16
OTHER_ACCOUNT = "AC" + "c3" * 16
OTHER_TOKEN = "auth-token-c3"
OTHER_FROM = "+15550003000"
PHONE = "+4915100000001"  # declared: delivered 0.5 s (scaled) after sent
START = 1_800_000_000.0
# Scripted delays x 0.01: each Twilio step takes 1 ms, delivery comes 5 ms after sent.
FAST = Timing(scale=0.01, step=0.1)
WAIT = 5.0  # seconds any single expectation may take before the test fails


class FakeClock:
    """The emulator's wall clock: frozen unless a test moves it."""

    def __init__(self, start: float = START) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


@dataclass
class Callback:
    """One POST the receiver got: where, what, with which headers, and its answer."""

    path: str
    query: str
    fields: list[tuple[str, str]]
    headers: dict[str, str]
    answered: int

    @property
    def form(self) -> dict[str, str]:
        return dict(self.fields)

    @property
    def status(self) -> str:
        return self.form["MessageStatus"]


@dataclass
class Receiver:
    """What the callback endpoint saw, and how it should answer next."""

    fail_next: int = 0
    fail_status: int = 500
    stall_next: int = 0  # answer the next N posts only after `stall_seconds`
    stall_seconds: float = 0.5
    posts: list[Callback] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        with self.lock:
            self.fail_next = 0
            self.fail_status = 500
            self.stall_next = 0
            self.stall_seconds = 0.5
            self.posts.clear()

    def all_posts(self) -> list[Callback]:
        with self.lock:
            return list(self.posts)

    def accepted(self, sid: str | None = None) -> list[Callback]:
        return [
            p
            for p in self.all_posts()
            if 200 <= p.answered < 300 and (sid is None or p.form.get("MessageSid") == sid)
        ]

    def statuses(self, sid: str) -> list[str]:
        return [p.status for p in self.accepted(sid)]

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()

            def record(answer: int) -> None:
                self.posts.append(
                    Callback(
                        path=request.url.path,
                        query=request.url.query,
                        fields=parse_qsl(body.decode(), keep_blank_values=True),
                        headers=dict(request.headers),
                        answered=answer,
                    )
                )

            with self.lock:
                stall = self.stall_next > 0
                if stall:
                    self.stall_next -= 1
                    record(0)  # 0: stalled; whatever it answers later does not count
                seconds = self.stall_seconds
            if stall:
                await asyncio.sleep(seconds)
                return Response("late", status_code=200)
            with self.lock:
                answer = 200
                if self.fail_next > 0:
                    self.fail_next -= 1
                    answer = self.fail_status
                record(answer)
            return Response("" if answer == 200 else "nope", status_code=answer)

        return Starlette(routes=[Route("/cb/{name:path}", hook, methods=["POST"])])


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
    """The emulator host and the callback receiver, each under a real uvicorn."""

    def __init__(self) -> None:
        self.receiver = Receiver()
        self.swap = Swap()
        self.host = AppServer(self.swap)
        self.hook = AppServer(self.receiver.app())

    def hook_url(self, name: str = "status", tail: str = "") -> str:
        """A callback URL on the receiver; `tail` adds a query and/or fragment."""
        return f"{self.hook.url}/cb/{name}{tail}"


@contextmanager
def running_servers() -> Iterator[Servers]:
    servers = Servers()
    with servers.hook, servers.host:
        yield servers


def world_document() -> dict[str, Any]:
    """The tests' world: two accounts (one with a Messaging Service) and one phone."""
    return {
        "accounts": [
            {
                "account_sid": ACCOUNT,
                "auth_token": TOKEN,
                "from_numbers": [FROM, "+15550002001"],
                "messaging_services": [SERVICE],
            },
            {"account_sid": OTHER_ACCOUNT, "auth_token": OTHER_TOKEN, "from_numbers": [OTHER_FROM]},
        ],
        "phones": [{"number": PHONE, "deliver_after": 0.5}],
    }


@dataclass
class Harness:
    emulator: SmsEmulator
    servers: Servers
    client: httpx.AsyncClient
    clock: FakeClock
    prefix: str = ""

    @property
    def receiver(self) -> Receiver:
        return self.servers.receiver

    def hook_url(self, name: str = "status", tail: str = "") -> str:
        return self.servers.hook_url(name, tail)

    async def send(
        self,
        fields: dict[str, str] | list[tuple[str, str]],
        *,
        account: str = ACCOUNT,
        token: str | None = TOKEN,
        user: str | None = None,
    ) -> httpx.Response:
        auth = (user or account, token) if token is not None else None
        # A list keeps repeated fields (MediaUrl) and their order.
        items = list(fields.items()) if isinstance(fields, dict) else fields
        return await self.client.post(
            f"/2010-04-01/Accounts/{account}/Messages.json",
            content=urlencode(items),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            auth=auth,
        )

    async def sent(self, fields: dict[str, str], **kwargs: Any) -> dict[str, Any]:
        """Send with the defaults (From, Body) filled in; the 201 resource."""
        full = {"From": FROM, "Body": "hello", **fields}
        resp = await self.send(full, **kwargs)
        assert resp.status_code == 201, resp.text
        return dict(resp.json())

    async def fetch(
        self, sid: str, *, account: str = ACCOUNT, token: str = TOKEN
    ) -> httpx.Response:
        return await self.client.get(
            f"/2010-04-01/Accounts/{account}/Messages/{sid}.json", auth=(account, token)
        )

    async def status_of(self, sid: str) -> str:
        resp = await self.fetch(sid)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["status"])

    async def wait_status(self, sid: str, status: str) -> dict[str, Any]:
        """Poll GET Message until it reports `status`; the resource then."""
        deadline = asyncio.get_running_loop().time() + WAIT
        while True:
            resp = await self.fetch(sid)
            assert resp.status_code == 200, resp.text
            if resp.json()["status"] == status:
                return dict(resp.json())
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{sid} stayed {resp.json()['status']}, not {status}")
            await asyncio.sleep(0.01)

    async def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, f"/_control{path}", **kwargs)

    async def inbox(self, number: str) -> list[dict[str, Any]]:
        resp = await self.control("GET", f"/phones/{number}/inbox")
        assert resp.status_code == 200, resp.text
        return list(resp.json()["messages"])

    async def callbacks(self, **filters: str) -> list[dict[str, Any]]:
        resp = await self.control("GET", "/callbacks", params=filters)
        assert resp.status_code == 200, resp.text
        return list(resp.json()["callbacks"])

    async def wait_callbacks(self, sid: str, expected: list[str]) -> list[Callback]:
        """Wait for `expected` accepted callbacks of `sid`; they must be exactly those."""
        await eventually(lambda: len(self.receiver.statuses(sid)) >= len(expected))
        assert self.receiver.statuses(sid) == expected
        return self.receiver.accepted(sid)

    async def settled_log(self, sid: str, count: int) -> list[dict[str, Any]]:
        """The log of `sid` once `count` entries exist and none is pending any more."""
        deadline = asyncio.get_running_loop().time() + WAIT
        while True:
            entries = await self.callbacks(message_sid=sid)
            if len(entries) >= count and all(e["outcome"] != "pending" for e in entries):
                return entries
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"callbacks of {sid} did not settle: {entries}")
            await asyncio.sleep(0.01)


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


def twilio_error(resp: httpx.Response, status: int, code: int) -> dict[str, Any]:
    """The response is Twilio's error JSON with this HTTP status and code."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = dict(resp.json())
    assert body["code"] == code and body["status"] == status, body
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert isinstance(body["message"], str) and body["message"]
    return body


def signed_ok(post: Callback, url: str, token: str = TOKEN) -> bool:
    """The post carries Twilio's signature of its fields for `url` (as given)."""
    return verify_twilio_signature(token, url, post.form, post.headers.get("x-twilio-signature"))


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
    doc = document if document is not None else world_document()
    emulator = SmsEmulator(parse_world(doc), timing=timing, now=clock)
    app = create_sms_app(emulator)
    prefix = mount or ""
    servers.swap.app = Starlette(routes=[Mount(mount, app)]) if mount else app
    client = httpx.AsyncClient(base_url=servers.host.url + prefix, timeout=10)
    try:
        yield Harness(emulator, servers, client, clock, prefix)
    finally:
        await client.aclose()
        await emulator.aclose()
        servers.swap.app = None
