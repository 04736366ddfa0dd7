"""The media store over real HTTP (uvicorn), on SQLite and PostgreSQL, local files and S3."""

from __future__ import annotations

import asyncio
import hashlib
import io
import secrets
import struct
import zipfile
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import (
    BUCKET,
    S3_CREDENTIALS,
    LiveServer,
    assert_problem,
    make_key,
    make_settings,
    stored,
)
from wafile.clock import FixedClock
from wafile.config import Settings


def png(width: int = 4, height: int = 4, pad: int = 0) -> bytes:
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    body = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    body += chunk(b"IDAT", zlib.compress(raw))
    if pad:
        body += chunk(b"tEXt", b"c\x00" + b"x" * pad)
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b"")


def pdf(extra: int = 0) -> bytes:
    return b"%PDF-1.4\n1 0 obj<<>>endobj\n" + b"%" + b"p" * extra + b"\ntrailer<<>>\n%%EOF\n"


def docx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.'
            'openxmlformats.org/package/2006/content-types"><Override PartName="/word/'
            'document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
            'wordprocessingml.document.main+xml"/></Types>',
        )
        z.writestr("_rels/.rels", "<Relationships/>")
        z.writestr("word/document.xml", "<w:document/>")
    return buf.getvalue()


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Settings:
    """Every test on both stores: a media folder and an S3 bucket (moto, a prefix each)."""
    if request.param == "local":
        return make_settings(tmp_path, database_url)
    endpoint = request.getfixturevalue("moto_endpoint")
    return make_settings(
        tmp_path,
        database_url,
        media_url=f"s3://{BUCKET}/api-{secrets.token_hex(4)}",
        s3_endpoint_url=endpoint,
        s3_region=S3_CREDENTIALS["region"],
        s3_access_key_id=S3_CREDENTIALS["access_key_id"],
        s3_secret_access_key=S3_CREDENTIALS["secret_access_key"],
    )


@pytest.fixture
async def key(engine: AsyncEngine) -> str:
    return await make_key(engine)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def upload(
    http: httpx.AsyncClient,
    key: str,
    data: bytes,
    name: str = "f.pdf",
    part_type: str = "application/octet-stream",
    **fields: str,
) -> httpx.Response:
    return await http.post(
        "/v1/media", headers=auth(key), files={"file": (name, data, part_type)}, data=fields
    )


async def test_upload_lookup_download(live_server: LiveServer, key: str) -> None:
    body = pdf(5000)
    async with live_server.client() as http:
        resp = await upload(
            http, key, body, name='Rechnung März "2026".pdf', type="application/pdf"
        )
        assert resp.status_code == 201, resp.text
        item = resp.json()
        assert item["filename"] == 'Rechnung März "2026".pdf'
        assert item["mime_type"] == "application/pdf"
        assert item["category"] == "document"
        assert item["sha256"] == hashlib.sha256(body).hexdigest()
        assert item["file_size"] == len(body)
        assert item["whatsapp"]["sendable"] is True and item["whatsapp"]["sent_as"] == "document"
        assert (await http.get(f"/v1/media/{item['id']}", headers=auth(key))).json()[
            "sha256"
        ] == item["sha256"]

        got = await http.get(f"/v1/media/{item['id']}/content", headers=auth(key))
        assert got.status_code == 200 and got.content == body
        assert got.headers["content-type"] == "application/pdf"
        assert got.headers["content-length"] == str(len(body))
        assert got.headers["etag"] == f'"{item["sha256"]}"'
        assert (
            "filename*=UTF-8''Rechnung%20M%C3%A4rz%20%222026%22.pdf"
            in got.headers["content-disposition"]
        )

        # The signed link works without a key.
        link = item["url"].removeprefix(live_server.url)
        anon = await http.get(link)
        assert anon.status_code == 200 and anon.content == body


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [
        ("bytes=0-0", 0, 1),
        ("bytes=10-99", 10, 100),
        ("bytes=-7", None, None),
        ("bytes=100-", 100, None),
        ("bytes=0-999999", 0, None),
    ],
)
async def test_ranges(
    live_server: LiveServer, key: str, range_header: str, start: int | None, end: int | None
) -> None:
    body = pdf(3000)
    async with live_server.client() as http:
        item = (await upload(http, key, body)).json()
        resp = await http.get(
            f"/v1/media/{item['id']}/content", headers={**auth(key), "Range": range_header}
        )
    expected = body[-7:] if start is None else body[start:end]
    assert resp.status_code == 206
    assert resp.content == expected
    assert resp.headers["content-length"] == str(len(expected))
    first = len(body) - 7 if start is None else start
    assert resp.headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{len(body)}"


async def test_range_edge_cases_and_etag(live_server: LiveServer, key: str) -> None:
    body = pdf(100)
    async with live_server.client() as http:
        item = (await upload(http, key, body)).json()
        url = f"/v1/media/{item['id']}/content"
        bad = await http.get(url, headers={**auth(key), "Range": f"bytes={len(body)}-"})
        assert_problem(bad, 416, "range_not_satisfiable")
        assert bad.headers["content-range"] == f"bytes */{len(body)}"
        multi = await http.get(url, headers={**auth(key), "Range": "bytes=0-1,3-4"})
        assert multi.status_code == 200 and multi.content == body
        etag = multi.headers["etag"]
        cached = await http.get(url, headers={**auth(key), "If-None-Match": etag})
        assert cached.status_code == 304 and cached.content == b""
        stale = await http.get(url, headers={**auth(key), "Range": "bytes=0-3", "If-Range": '"x"'})
        assert stale.status_code == 200 and stale.content == body


async def test_raw_body_upload(live_server: LiveServer, key: str) -> None:
    body = png()
    async with live_server.client() as http:
        resp = await http.post(
            "/v1/media",
            content=body,
            headers={
                **auth(key),
                "Content-Type": "image/png",
                "Content-Disposition": "attachment; filename*=UTF-8''%E2%82%AC%20photo.png",
            },
        )
    assert resp.status_code == 201, resp.text
    item = resp.json()
    assert item["filename"] == "€ photo.png"
    assert (item["mime_type"], item["category"]) == ("image/png", "image")
    assert item["whatsapp"]["sent_as"] == "image"


async def test_bad_uploads_are_problems_and_leave_nothing(
    live_server: LiveServer, key: str, settings: Settings
) -> None:
    async with live_server.client() as http:
        lying = await upload(http, key, png(), name="x.pdf", type="application/pdf")
        assert_problem(lying, 422, "media_type_mismatch")
        empty = await upload(http, key, b"", name="e.txt")
        assert_problem(empty, 400, "empty_file")
        exe = await upload(http, key, b"MZ\x90\x00" + b"\x00" * 200, name="setup.exe")
        assert_problem(exe, 415, "unsupported_media_type")
        assert "application/pdf" in exe.json()["detail"]
        boundary = "XyZ"
        truncated = await http.post(
            "/v1/media",
            headers={**auth(key), "Content-Type": f"multipart/form-data; boundary={boundary}"},
            content=(
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="a.pdf"\r\n\r\n'
            ).encode()
            + pdf(),
        )
        assert_problem(truncated, 400, "malformed_upload")
        missing = await http.post(
            "/v1/media", headers=auth(key), data={"type": "x"}, files={"other": ("a.pdf", pdf())}
        )
        assert_problem(missing, 422, "validation_error")
        listed = await http.get("/v1/media", headers=auth(key))
    assert listed.json()["data"] == []
    assert await stored(settings) == []


async def test_docx_is_not_zip_and_names_are_never_paths(
    live_server: LiveServer, key: str, settings: Settings
) -> None:
    async with live_server.client() as http:
        resp = await upload(http, key, docx(), name="../../etc/passwd.docx")
    assert resp.status_code == 201, resp.text
    item = resp.json()
    assert (
        item["mime_type"]
        == "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    )
    assert item["filename"] == "../../etc/passwd.docx"
    assert await stored(settings) == [f"blobs/{item['sha256'][:2]}/{item['sha256']}"]


async def test_big_image_travels_as_document(live_server: LiveServer, key: str) -> None:
    big = png(pad=5 * 1024 * 1024 + 10)
    async with live_server.client() as http:
        item = (await upload(http, key, big, name="scan.png")).json()
    assert item["category"] == "image"
    assert item["whatsapp"] == {**item["whatsapp"], "sendable": True, "sent_as": "document"}


async def test_size_limit(settings: Settings, engine: AsyncEngine) -> None:
    key = await make_key(engine)
    with LiveServer(settings.with_overrides(max_upload_bytes=1000)) as server:
        async with server.client() as http:
            streamed = await upload(http, key, pdf(2000))

            async def chunks():  # no Content-Length: the limit holds while streaming
                yield pdf(2000)

            raw = await http.post(
                "/v1/media",
                content=chunks(),
                headers={**auth(key), "Content-Type": "application/pdf"},
            )
            ok = await upload(http, key, pdf(10))
    for resp in (streamed, raw):
        body = assert_problem(resp, 413, "payload_too_large")
        assert "1000 bytes" in body["detail"] and body["limit"] == 1000
    assert ok.status_code == 201


async def test_same_file_ten_times_is_one_blob(
    live_server: LiveServer, key: str, settings: Settings
) -> None:
    body = pdf(20000)
    async with live_server.client() as http:
        results = await asyncio.gather(
            *(upload(http, key, body, name=f"{i}.pdf") for i in range(10))
        )
        assert all(r.status_code == 201 for r in results), [r.text for r in results]
        ids = {r.json()["id"] for r in results}
        assert len(ids) == 10
        assert len(await stored(settings)) == 1
        # Deleting nine keeps the blob; the tenth takes it.
        for media_id in sorted(ids)[:9]:
            assert (
                await http.delete(f"/v1/media/{media_id}", headers=auth(key))
            ).status_code == 204
        assert len(await stored(settings)) == 1
        last = sorted(ids)[9]
        assert (await http.get(f"/v1/media/{last}/content", headers=auth(key))).content == body
        assert (await http.delete(f"/v1/media/{last}", headers=auth(key))).status_code == 204
        assert await stored(settings) == []
        assert_problem(
            await http.get(f"/v1/media/{last}", headers=auth(key)), 404, "media_not_found"
        )


async def test_tenants_and_links(live_server: LiveServer, engine: AsyncEngine, key: str) -> None:
    other = await make_key(engine, "other")
    async with live_server.client() as http:
        item = (await upload(http, key, pdf())).json()
        for path in (f"/v1/media/{item['id']}", f"/v1/media/{item['id']}/content"):
            assert_problem(await http.get(path, headers=auth(other)), 404, "media_not_found")
        assert_problem(
            await http.delete(f"/v1/media/{item['id']}", headers=auth(other)),
            404,
            "media_not_found",
        )
        link = httpx.URL(item["url"])
        e, s = link.params["e"], link.params["s"]
        tampered_sig = s[:-1] + ("A" if s[-1] != "A" else "B")
        bad = await http.get(f"/f/{item['id']}", params={"e": e, "s": tampered_sig})
        assert_problem(bad, 403, "link_invalid")
        longer = await http.get(f"/f/{item['id']}", params={"e": int(e) + 1, "s": s})
        assert_problem(longer, 403, "link_invalid")


async def test_signed_link_expires(settings: Settings, engine: AsyncEngine) -> None:
    clock = FixedClock(datetime.now(UTC))
    key = await make_key(engine)
    with LiveServer(settings.with_overrides(link_lifetime_seconds=60), clock=clock) as server:
        async with server.client() as http:
            item = (await upload(http, key, pdf())).json()
            path = item["url"].removeprefix(server.url)
            assert (await http.get(path)).status_code == 200
            clock.advance(timedelta(seconds=61))
            assert_problem(await http.get(path), 403, "link_invalid")


async def test_list_is_paged_newest_first(live_server: LiveServer, key: str) -> None:
    async with live_server.client() as http:
        made = [(await upload(http, key, pdf(i), name=f"{i}.pdf")).json()["id"] for i in range(5)]
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await http.get("/v1/media", headers=auth(key), params=params)).json()
            seen += [m["id"] for m in page["data"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == list(reversed(made))
        bad = await http.get("/v1/media", headers=auth(key), params={"cursor": "!!"})
        assert_problem(bad, 422, "validation_error")


async def test_a_slow_upload_does_not_block_other_requests(
    live_server: LiveServer, key: str
) -> None:
    """The upload's bytes stream with no database connection held."""
    release = asyncio.Event()

    async def slow_body():  # type: ignore[no-untyped-def]
        yield pdf(100)[:20]
        await release.wait()
        yield pdf(100)[20:]

    async with live_server.client() as http:
        pending = asyncio.create_task(
            http.post(
                "/v1/media",
                content=slow_body(),
                headers={**auth(key), "Content-Type": "application/pdf"},
            )
        )
        await asyncio.sleep(0.3)  # the upload is now mid-body
        other = await asyncio.wait_for(http.get("/v1/account", headers=auth(key)), timeout=5)
        assert other.status_code == 200
        release.set()
        assert (await pending).status_code == 201
