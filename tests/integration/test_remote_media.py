"""Remote files over real HTTP on SQLite and PostgreSQL: `POST /v1/media:fetch` against
origins started here on 127.0.0.1 (loopback allowed, as in the sandbox): Basic and
Bearer providers, a wrong credential (the origin's 401), a redirect to another host
without the credential, filenames from Content-Disposition and from the URL, a body
that never ends, a slow origin, a 503 then 200; the per-host limit; and the SSRF
table with loopback off, proven against a listening socket that nothing reaches."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.support import (
    NOW,
    AppServer,
    LiveServer,
    assert_problem,
    eventually,
    make_key,
    make_settings,
)
from wafile.channels.guarded_http import OutboundGuard
from wafile.config import Settings
from wafile.core.ssrf import Address, parse_allowlist
from wafile.db.engine import session_factory, transaction
from wafile.errors import (
    ClientError,
    OutboundRefused,
    PayloadTooLarge,
    RemoteRejected,
    RemoteUnavailable,
    ServiceUnavailable,
)
from wafile.media.remote import FetchLimits, HostLimiter, RemoteFetcher
from wafile.services.accounts import accounts
from wafile.services.media import open_media_store
from wafile.services.outbound import guard_for
from wafile.services.remote_media import limits_for, remote_media

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"q" * 3000 + b"\ntrailer<<>>\n%%EOF\n"
BASIC = "Basic " + base64.b64encode(b"user:AbCdEf123456").decode()
LIMIT = 256 * 1024


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        max_upload_bytes=LIMIT,
        remote_read_timeout_seconds=0.5,
        remote_total_timeout_seconds=30,
        remote_retries=2,
    )


class Origin:
    """A customer's file server: records every request, answers per path."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.release = threading.Event()
        self.flaky: dict[str, int] = {}
        self.in_flight = 0
        self.most_in_flight = 0
        self.other = ""  # base URL of the second origin (another host), set by the fixture

        async def serve(request: Request) -> Response:
            path = request.url.path
            with self.lock:
                self.seen.append((path, dict(request.headers)))
            auth = request.headers.get("authorization")
            if path == "/basic/report.pdf":
                if auth != BASIC:
                    return Response("no", status_code=401, headers={"WWW-Authenticate": "Basic"})
                return Response(PDF, media_type="application/pdf")
            if path == "/bearer/download":
                if auth != "Bearer tok-123":
                    return Response("no", status_code=401)
                disposition = (
                    'attachment; filename="ete.pdf"; '
                    "filename*=UTF-8''%C3%A9t%C3%A9%20%E2%82%AC.pdf"
                )
                return Response(PDF, headers={"Content-Disposition": disposition})
            if path == "/bearer/away":
                if auth != "Bearer tok-123":
                    return Response("no", status_code=401)
                return Response(status_code=302, headers={"Location": f"{self.other}/landing.pdf"})
            if path == "/away":
                return Response(status_code=302, headers={"Location": f"{self.other}/landing.pdf"})
            if path == "/landing.pdf":
                return Response(PDF, media_type="application/octet-stream")
            if path.startswith("/files/"):
                return Response(PDF, media_type="application/octet-stream")
            if path == "/forever":
                return StreamingResponse(self._forever(), media_type="application/pdf")
            if path == "/slow":
                await self._wait()
                return Response(PDF)
            if path == "/flaky.pdf":
                with self.lock:
                    self.flaky[path] = self.flaky.get(path, 0) + 1
                    first = self.flaky[path] == 1
                if first:
                    return Response("busy", status_code=503)
                return Response(PDF)
            if path == "/down":
                return Response("down", status_code=503)
            if path == "/held.pdf":
                with self.lock:
                    self.in_flight += 1
                    self.most_in_flight = max(self.most_in_flight, self.in_flight)
                try:
                    await self._wait()
                finally:
                    with self.lock:
                        self.in_flight -= 1
                return Response(PDF)
            return Response("not here", status_code=404)

        self.app = Starlette(routes=[Route("/{path:path}", serve)])

    async def _forever(self) -> AsyncIterator[bytes]:
        yield PDF[:100]
        while not self.release.is_set():
            yield b"x" * 65536
            await asyncio.sleep(0)

    async def _wait(self) -> None:
        for _ in range(200):  # at most 20 s, however the test ends
            if self.release.is_set():
                return
            await asyncio.sleep(0.1)

    def requests_to(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return [h for p, h in self.seen if p == path]


@dataclass
class Origins:
    origin: Origin  # on 127.0.0.1
    elsewhere: Origin  # on another host name (localhost)
    server: AppServer
    other: AppServer


@pytest.fixture
def origins() -> Iterator[Origins]:
    origin, elsewhere = Origin(), Origin()
    with AppServer(origin.app) as server, AppServer(elsewhere.app) as other:
        origin.other = f"http://localhost:{other.port}"
        try:
            yield Origins(origin=origin, elsewhere=elsewhere, server=server, other=other)
        finally:
            origin.release.set()
            elsewhere.release.set()


class Trap:
    """A listening socket that counts the connections it gets (there must be none)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def trap() -> Iterator[Trap]:
    t = Trap()
    try:
        yield t
    finally:
        t.close()


async def put_provider(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
    resp = await http.post("/v1/providers", json=body)
    assert resp.status_code in (200, 201), resp.text


async def fetch(http: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await http.post("/v1/media:fetch", json=body, timeout=60)


async def test_providers_redirects_and_filenames(
    live_server: LiveServer, engine: AsyncEngine, origins: Origins
) -> None:
    origin, server = origins.origin, origins.server
    key = await make_key(engine)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        basic = {"basic": {"username": "user", "password": "AbCdEf123456"}}
        await put_provider(http, {"name": "basic-files", "type": "www", "config": basic})
        await put_provider(
            http, {"name": "bearer_files", "type": "www", "config": {"bearer": "tok-123"}}
        )

        # Basic: the credential opens the file; it is checked and stored like an upload.
        url = f"{server.url}/basic/report.pdf"
        resp = await fetch(http, url=url, provider="basic-files")
        assert resp.status_code == 201, resp.text
        got = resp.json()
        assert got["filename"] == "report.pdf" and got["mime_type"] == "application/pdf"
        assert got["sha256"] == hashlib.sha256(PDF).hexdigest()
        assert got["file_size"] == len(PDF) and got["source_url"] == url
        content = await http.get(f"/v1/media/{got['id']}/content")
        assert content.content == PDF
        [headers] = origin.requests_to("/basic/report.pdf")
        assert headers["user-agent"].startswith("wafile/")

        # Without the provider, the same URL gives the origin's 401, as a clear failure.
        resp = await fetch(http, url=url)
        problem = assert_problem(resp, 422, "remote_rejected")
        assert "HTTP 401" in problem["detail"] and problem["origin_status"] == 401

        # A wrong credential: the same.
        await put_provider(
            http, {"name": "wrong", "type": "www", "config": {"bearer": "not-the-token"}}
        )
        resp = await fetch(http, url=f"{server.url}/bearer/download", provider="wrong")
        assert assert_problem(resp, 422, "remote_rejected")["origin_status"] == 401

        # Bearer, and the name from Content-Disposition's filename* (unicode).
        resp = await fetch(http, url=f"{server.url}/bearer/download", provider="bearer_files")
        assert resp.status_code == 201, resp.text
        assert resp.json()["filename"] == "été €.pdf"

        # An explicit filename wins over everything.
        resp = await fetch(
            http,
            url=f"{server.url}/bearer/download",
            provider="bearer_files",
            filename="Rechnung 7.pdf",
        )
        assert resp.json()["filename"] == "Rechnung 7.pdf"

        # A redirect from the provider's host to another host: followed, no credential.
        resp = await fetch(http, url=f"{server.url}/bearer/away", provider="bearer_files")
        assert resp.status_code == 201, resp.text
        assert resp.json()["filename"] == "landing.pdf"
        [away] = origin.requests_to("/bearer/away")
        assert away["authorization"] == "Bearer tok-123"
        [landing] = origins.elsewhere.requests_to("/landing.pdf")
        assert "authorization" not in landing

        # The name from the URL's last segment, percent-decoded.
        resp = await fetch(http, url=f"{server.url}/files/r%C3%A9sum%C3%A9.pdf?v=2")
        assert resp.status_code == 201, resp.text
        assert resp.json()["filename"] == "résumé.pdf"

        # No name anywhere: "file" with the sniffed type's extension.
        resp = await fetch(http, url=f"{server.url}/files/")
        assert resp.status_code == 201 and resp.json()["filename"] == "file.pdf"

        # An unknown provider, and a 404.
        resp = await fetch(http, url=url, provider="nobody")
        assert "nobody" in assert_problem(resp, 422, "validation_error")["detail"]
        resp = await fetch(http, url=f"{server.url}/nothing")
        assert assert_problem(resp, 422, "remote_rejected")["origin_status"] == 404


async def test_size_limit_slow_origin_and_retry(
    live_server: LiveServer, engine: AsyncEngine, origins: Origins
) -> None:
    origin, server = origins.origin, origins.server
    key = await make_key(engine)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        # A body that never ends is cut at the limit (no Content-Length to trust).
        resp = await fetch(http, url=f"{server.url}/forever")
        assert assert_problem(resp, 413, "payload_too_large")["limit"] == LIMIT

        # A slow origin times out: a 502 that says so, never a hang.
        resp = await fetch(http, url=f"{server.url}/slow")
        problem = assert_problem(resp, 502, "remote_unavailable")
        assert "in time" in problem["detail"]

        # 503 then 200: retried, and it works.
        resp = await fetch(http, url=f"{server.url}/flaky.pdf")
        assert resp.status_code == 201, resp.text
        assert len(origin.requests_to("/flaky.pdf")) == 2
        assert resp.json()["filename"] == "flaky.pdf"

        # Other accounts' providers are not usable; the media list shows the fetch.
        other_key = await make_key(engine, "other")
        await put_provider(http, {"name": "mine", "type": "www", "config": {"bearer": "tok-123"}})
        resp = await http.post(
            "/v1/media:fetch",
            json={"url": f"{server.url}/bearer/download", "provider": "mine"},
            headers={"Authorization": f"Bearer {other_key}"},
        )
        assert_problem(resp, 422, "validation_error")


async def test_the_service_says_retry_or_fail_for_the_worker(
    settings: Settings, engine: AsyncEngine, origins: Origins
) -> None:
    """What the send worker will see: ServiceUnavailable (retry) or ClientError (fail)."""
    origin, server = origins.origin, origins.server
    sessions = session_factory(engine)
    store = open_media_store(settings)
    async with transaction(sessions) as s:
        account = await accounts.create(s, "acme", now=NOW)
    with pytest.raises(RemoteUnavailable) as down:
        await remote_media.fetch(
            sessions, store, settings, account_id=account.id, url=f"{server.url}/down", now=NOW
        )
    assert isinstance(down.value, ServiceUnavailable) and down.value.extra["origin_status"] == 503
    assert len(origin.requests_to("/down")) == 1 + settings.remote_retries
    with pytest.raises(RemoteRejected) as refused:
        await remote_media.fetch(
            sessions,
            store,
            settings,
            account_id=account.id,
            url=f"{server.url}/basic/report.pdf",
            now=NOW,
        )
    assert isinstance(refused.value, ClientError) and "HTTP 401" in refused.value.detail
    with pytest.raises(PayloadTooLarge):
        await remote_media.fetch(
            sessions, store, settings, account_id=account.id, url=f"{server.url}/forever", now=NOW
        )
    # Given the worker's own session, it works inside that transaction too.
    async with transaction(sessions) as s:
        item = await remote_media.fetch(
            s, store, settings, account_id=account.id, url=f"{server.url}/files/a.pdf", now=NOW
        )
    assert item.source_url == f"{server.url}/files/a.pdf" and item.filename == "a.pdf"


async def test_at_most_n_fetches_per_host_at_once(settings: Settings, origins: Origins) -> None:
    origin, server = origins.origin, origins.server
    limits = FetchLimits(max_bytes=LIMIT, per_host=2, read_timeout=30)
    limiter = HostLimiter(2)

    async def one() -> bytes:
        fetcher = RemoteFetcher(guard_for(settings), limits, limiter=limiter)
        async with fetcher, fetcher.open(f"{server.url}/held.pdf") as remote:
            return b"".join([c async for c in remote.chunks])

    tasks = [asyncio.create_task(one()) for _ in range(5)]

    async def two_held() -> bool:
        return origin.in_flight == 2 and limiter.busy("127.0.0.1") == 5

    await eventually(two_held, "two fetches at the origin, three waiting")
    origin.release.set()
    assert await asyncio.gather(*tasks) == [PDF] * 5
    assert origin.most_in_flight == 2 and limiter.busy("127.0.0.1") == 0


# ---- the SSRF table, loopback off, the allowlist empty ----------------------------


async def test_the_ssrf_table_is_refused_before_any_byte_is_sent(
    tmp_path: Path, database_url: str, engine: AsyncEngine, trap: Trap
) -> None:
    settings = make_settings(tmp_path, database_url, outbound_allow_loopback=False)
    assert settings.outbound_allow == ""
    p = trap.port
    table = [
        f"http://127.0.0.1:{p}/",
        f"http://localhost:{p}/",
        f"http://[::1]:{p}/",
        f"http://0.0.0.0:{p}/",
        f"http://10.0.0.1:{p}/",
        f"http://172.16.0.1:{p}/",
        f"http://192.168.1.1:{p}/",
        "http://169.254.169.254/latest/meta-data/",
        f"http://100.64.0.1:{p}/",
        f"http://[fc00::1]:{p}/",
        f"http://[fe80::1]:{p}/",
        f"http://[::ffff:127.0.0.1]:{p}/",
        f"http://2130706433:{p}/",
        f"http://0x7f000001:{p}/",
        f"http://017700000001:{p}/",
        f"ftp://127.0.0.1:{p}/file.pdf",
        "file:///etc/passwd",
    ]
    key = await make_key(engine)
    with LiveServer(settings) as server:
        async with server.client(headers={"Authorization": f"Bearer {key}"}) as http:
            for url in table:
                resp = await fetch(http, url=url)
                problem = assert_problem(resp, 422, "outbound_refused")
                assert problem["detail"].startswith("url: "), problem
    assert trap.connections == 0


class Resolver:
    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    async def __call__(self, host: str, port: int) -> Sequence[Address]:
        return [ip_address(self.table[host])]


async def test_a_name_or_a_redirect_leading_to_loopback_is_refused(
    settings: Settings, trap: Trap, origins: Origins
) -> None:
    """A resolver that says 127.0.0.1 (DNS rebinding), and an allowed origin that
    redirects to 127.0.0.1: both refused, the listening socket never reached."""
    limits = limits_for(settings)
    resolver = Resolver({"rebind.test": "127.0.0.1", "files.test": "127.0.0.1"})
    guard = OutboundGuard(resolver=resolver)  # loopback off, allowlist empty
    async with RemoteFetcher(guard, limits) as fetcher:
        with pytest.raises(OutboundRefused, match=r"rebind\.test resolves to 127\.0\.0\.1"):
            async with fetcher.open(f"http://rebind.test:{trap.port}/x.pdf"):
                pass
    # The origin's own name is allowed (only it); its redirect to 127.0.0.1 is not.
    allow_origin = OutboundGuard(allow=parse_allowlist("files.test"), resolver=resolver)
    redirect = Origin()
    redirect.other = f"http://127.0.0.1:{trap.port}"
    with AppServer(redirect.app) as hop:
        async with RemoteFetcher(allow_origin, limits) as fetcher:
            with pytest.raises(OutboundRefused, match=r"127\.0\.0\.1 is a loopback address"):
                async with fetcher.open(f"http://files.test:{hop.port}/away"):
                    pass
    assert redirect.requests_to("/away")  # the allowed origin was reached
    assert trap.connections == 0
