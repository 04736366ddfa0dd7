"""Retention over a real server, on SQLite and PostgreSQL: what expires goes, and so
does what a crash leaves behind, while shared and fresh content stays."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import LiveServer, make_key, stored
from wafile.clock import FixedClock
from wafile.config import Settings
from wafile.core.media import blob_key
from wafile.db.engine import session_factory, transaction
from wafile.db.media import MediaRepository
from wafile.db.tables import BlobRow
from wafile.dispatch.sweeper import sweep
from wafile.services.media import open_media_store

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_expired_media_go_and_shared_content_stays(
    settings: Settings, engine: AsyncEngine
) -> None:
    settings = settings.with_overrides(media_retention_days=1, sweep_interval_seconds=0)
    clock = FixedClock(datetime.now(UTC))
    sessions = session_factory(engine)
    store = open_media_store(settings)
    key = await make_key(engine)
    headers = {"Authorization": f"Bearer {key}"}
    with LiveServer(settings, clock=clock) as server:
        async with server.client(headers=headers) as http:

            async def upload(data: bytes, name: str) -> str:
                resp = await http.post("/v1/media", files={"file": (name, data)})
                assert resp.status_code == 201, resp.text
                return str(resp.json()["id"])

            old = await upload(PDF, "old.pdf")
            clock.advance(timedelta(hours=12))
            shared = await upload(PDF, "same-content.pdf")
            other = await upload(PDF + b"%other\n", "other.pdf")
            assert len(await stored(settings)) == 2

            clock.advance(timedelta(hours=13))  # `old` is 25 h old, the others 13 h
            report = await sweep(sessions, store, clock)
            assert (report.expired, report.blobs, report.temporaries) == (1, 0, 0)
            assert (await http.get(f"/v1/media/{old}")).status_code == 404
            kept = await http.get(f"/v1/media/{shared}/content")
            assert kept.status_code == 200 and kept.content == PDF
            assert len(await stored(settings)) == 2

            # A sweep that finds nothing changes nothing.
            again = await sweep(sessions, store, clock)
            assert (again.expired, again.blobs, again.temporaries) == (0, 0, 0)

            clock.advance(timedelta(days=1))
            report = await sweep(sessions, store, clock)
            assert (report.expired, report.blobs) == (2, 2)
            for media_id in (shared, other):
                assert (await http.get(f"/v1/media/{media_id}")).status_code == 404
    assert await stored(settings) == []
    async with transaction(sessions) as session:
        assert (await session.scalars(select(BlobRow))).all() == []


async def test_what_crashes_leave_is_swept_after_the_grace_period(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    clock = FixedClock(datetime.now(UTC))
    sessions = session_factory(engine)
    store = open_media_store(settings)
    # A temporary upload nobody finished, and an object whose transaction never committed.
    await store.put("uploads/up_abandoned", chunks(b"half a file"))
    orphan = hashlib.sha256(b"orphan").hexdigest()
    await store.put(blob_key(orphan), chunks(b"orphan"))
    # A blob row nothing references (a crash between the row delete and the object delete).
    zero = hashlib.sha256(b"zero").hexdigest()
    await store.put(blob_key(zero), chunks(b"zero"))
    async with transaction(sessions) as session:
        session.add(BlobRow(sha256=zero, size=4, ref_count=0, created_at=clock.now()))
    # LocalStore's staging file of a put cut off mid-way (obstore never lists these).
    staging = Path(settings.effective_media_url.removeprefix("file://")) / "uploads" / "up_x#7"
    staging.write_bytes(b"partial")
    old = time.time() - 2 * 3600
    os.utime(staging, (old, old))

    early = await sweep(sessions, store, clock)
    # At once: the blob at zero references (its row says so) and the hour-old staging
    # file; the fresh temporary upload and the row-less object wait out the grace period.
    assert (early.blobs, early.temporaries) == (1, 1)
    assert not staging.exists()
    assert "uploads/up_abandoned" in await stored(settings)
    assert blob_key(orphan) in await stored(settings)

    clock.advance(timedelta(hours=2))
    late = await sweep(sessions, store, clock)
    assert (late.blobs, late.temporaries) == (1, 1)
    assert await stored(settings) == []
    async with transaction(sessions) as session:
        assert (await session.scalars(select(BlobRow))).all() == []


async def test_a_media_row_removed_twice_drops_its_reference_once(
    settings: Settings, engine: AsyncEngine
) -> None:
    sessions = session_factory(engine)
    key = await make_key(engine)
    with LiveServer(settings.with_overrides(sweep_interval_seconds=0)) as server:
        async with server.client(headers={"Authorization": f"Bearer {key}"}) as http:
            first = (await http.post("/v1/media", files={"file": ("a.pdf", PDF)})).json()
            second = (await http.post("/v1/media", files={"file": ("b.pdf", PDF)})).json()
            async with transaction(sessions) as session:
                repo = MediaRepository(session)
                item = await repo.get(first["id"], account_id=None)
                assert item is not None
                assert await repo.remove(item) == 1
            # A concurrent delete or sweep that loaded the same row loses the race.
            async with transaction(sessions) as session:
                assert await MediaRepository(session).remove(item) is None
                row = await session.get(BlobRow, first["sha256"])
                assert row is not None and row.ref_count == 1
            kept = await http.get(f"/v1/media/{second['id']}/content")
            assert kept.content == PDF


async def test_serve_sweeps_by_itself(settings: Settings, engine: AsyncEngine) -> None:
    clock = FixedClock(datetime.now(UTC))
    settings = settings.with_overrides(media_retention_days=1, sweep_interval_seconds=0.1)
    key = await make_key(engine)
    with LiveServer(settings, clock=clock) as server:
        async with server.client(headers={"Authorization": f"Bearer {key}"}) as http:
            item = (await http.post("/v1/media", files={"file": ("a.pdf", PDF)})).json()
            await asyncio.sleep(0.3)  # a few sweeps: nothing has expired yet
            assert (await http.get(f"/v1/media/{item['id']}")).status_code == 200
            clock.advance(timedelta(days=2))
            for _ in range(100):  # bounded: 10 s at most
                if (await http.get(f"/v1/media/{item['id']}")).status_code == 404:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the server's sweeper never removed the expired media")
    assert await stored(settings) == []
