"""Test and benchmark helpers: settings for a test, and a live server in a thread."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import httpx
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from wafile.api.app import create_app
from wafile.clock import Clock
from wafile.config import Settings
from wafile.db.engine import session_factory, transaction
from wafile.services.accounts import accounts
from wafile.services.api_keys import api_keys
from wafile.services.media import open_media_store

TEST_SECRET = "test-secret-" + "x" * 40
NOW = datetime(2026, 11, 23, tzinfo=UTC)
PROBLEM = "application/problem+json"
# The S3 tests' bucket on moto's server (tests/integration/conftest.py), and its login.
BUCKET = "wafile-test"
S3_CREDENTIALS = {"region": "us-east-1", "access_key_id": "test", "secret_access_key": "test"}


def make_settings(tmp_path: Path, database_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "var",
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "log_level": "debug",
    }
    values.update(extra)
    return Settings.model_validate(values)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def emulator_command(
    folder: Path, port: int, *, number: dict[str, Any], webhook_url: str, phone: dict[str, Any]
) -> tuple[list[str], dict[str, str]]:
    """Arguments after `wafile` and the environment to run `wafile emulator whatsapp` on
    `port` with one business number (never throttled: its per-number limit far up, the
    pair limit off) posting to `webhook_url`, and one phone. The world file goes into
    `folder`."""
    world = {
        "numbers": [{**number, "webhook_url": webhook_url, "mps": 100_000}],
        "phones": [phone],
        "settings": {"pair_rate_limit": False},
    }
    path = folder / "world.json"
    path.write_text(json.dumps(world))  # JSON is YAML
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAFILE_")}
    return ["emulator", "whatsapp", "--port", str(port), "--world", str(path)], env


class AppServer:
    """Any ASGI app under a real uvicorn, on a free port, in a thread of its own."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10, **kwargs)


class LiveServer(AppServer):
    """The real wafile app, its settings pointed at the port it listens on."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        port = free_port()
        # Links the server builds (signed download URLs) must point at this server.
        settings = settings.with_overrides(host="127.0.0.1", port=port)
        self.settings = settings
        super().__init__(create_app(settings, clock=clock), port)


async def make_key(engine: AsyncEngine, account: str = "acme") -> str:
    """An API key for `account` (created if missing), made through the services."""
    async with transaction(session_factory(engine)) as s:
        await accounts.ensure(s, account, now=NOW)
        return (await api_keys.create(s, account_name=account, now=NOW)).plaintext


async def stored(settings: Settings) -> list[str]:
    """Every object in the media store: blobs, temporary uploads, staging files."""
    store = open_media_store(settings)
    far = datetime(9999, 1, 1, tzinfo=UTC)
    keys = [*await store.older_than("blobs", far), *await store.older_than("uploads", far)]
    url = settings.effective_media_url
    if url.startswith("file://"):  # LocalStore's staging files, which obstore never lists
        keys += [str(p) for p in Path(url.removeprefix("file://")).rglob("*#*")]
    return sorted(keys)


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, *, seconds: float = 15.0
) -> None:
    """Wait until `check()` holds, polling every 0.1 s; fail after `seconds`."""
    for _ in range(round(seconds * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def assert_problem(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and code; its body."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body["status"] == status and body["code"] == code
    assert body["type"] == f"/problems/{code}"
    assert body["title"] and body["detail"] and body["instance"]
    assert body["request_id"] == resp.headers["x-request-id"]
    return body
