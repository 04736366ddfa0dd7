"""A job that uses up its attempts is never a silent loss: what its death means is
recorded with it (`on_dead`), over real HTTP on SQLite and PostgreSQL.

The handlers here fail on purpose with an error wafile did not plan for (the kind of
bug or outage that buries a job); the `on_dead` hooks are the real ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.test_whatsapp_webhooks import (
    HOOK,
    envelope,
    inbound_image,
    sandbox_sender,
    signed,
)
from tests.support import LiveServer, eventually
from wafile.clock import SystemClock
from wafile.config import Settings
from wafile.core.jobs import Job
from wafile.db.engine import session_factory, transaction
from wafile.db.jobs import JobRepository
from wafile.db.tables import JobRow
from wafile.dispatch.inbound_media import inbound_media_died
from wafile.dispatch.jobs import HandlerRegistry, JobContext, WorkerDeps
from wafile.dispatch.send import send_died
from wafile.dispatch.webhooks import apply_webhook
from wafile.dispatch.worker import Worker, WorkerOptions, standard_handlers
from wafile.services.media import open_media_store
from wafile.services.messages import SEND_KIND
from wafile.services.webhooks import INBOUND_MEDIA_KIND, WEBHOOK_KIND

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"d" * 2000 + b"\ntrailer<<>>\n%%EOF\n"
BOUND = 20.0


# No embedded worker: the tests run their own, with handlers that fail.
pytestmark = pytest.mark.no_embedded_worker


async def broken(job: Job, ctx: JobContext) -> None:
    raise RuntimeError("the disk is on fire")


@asynccontextmanager
async def working(
    engine: AsyncEngine, settings: Settings, handlers: HandlerRegistry
) -> AsyncIterator[Worker]:
    deps = WorkerDeps(
        sessions=session_factory(engine),
        clock=SystemClock(),
        settings=settings,
        store=open_media_store(settings),
    )
    options = WorkerOptions(concurrency=2, poll_interval=0.05, grace=BOUND)
    worker = Worker(deps, handlers, options)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, BOUND)


async def last_attempt_for(engine: AsyncEngine, kind: str) -> None:
    """The queued jobs of `kind` are on their last attempt: the next failure buries them."""
    async with transaction(session_factory(engine)) as s:
        await s.execute(update(JobRow).where(JobRow.kind == kind).values(max_attempts=1))


async def test_a_send_that_dies_fails_its_attempt_and_the_message(
    live_server: LiveServer, engine: AsyncEngine, settings: Settings
) -> None:
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        uploaded = await http.post("/v1/media", files={"file": ("a.pdf", PDF, "application/pdf")})
        assert uploaded.status_code == 201, uploaded.text
        sent = await http.post(
            "/v1/messages", json={"to": "+12015550101", "media_id": uploaded.json()["id"]}
        )
        assert sent.status_code == 202, sent.text
        message_id = sent.json()["id"]
        await last_attempt_for(engine, SEND_KIND)
        handlers = HandlerRegistry()
        handlers.register(SEND_KIND, broken, on_dead=send_died)
        async with working(engine, settings, handlers) as worker:

            async def final() -> bool:
                got = (await http.get(f"/v1/messages/{message_id}")).json()
                return got["status"] not in ("accepted", "in_progress")

            await eventually(final, "the message's end", seconds=BOUND)
        assert worker.stats.buried == 1
        got = (await http.get(f"/v1/messages/{message_id}")).json()
        assert got["status"] == "failed"
        [attempt] = got["attempts"]
        assert attempt["status"] == "failed"
        assert "gave up sending after 1 attempts" in got["reason"]
        assert "the disk is on fire" in got["reason"]


async def test_an_inbound_file_that_cannot_be_fetched_is_reported_without_it(
    live_server: LiveServer, engine: AsyncEngine, settings: Settings
) -> None:
    key = await sandbox_sender(engine, live_server)
    body = envelope(messages=[inbound_image("wamid.DOOMED", media_id="123456")])
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        assert (await http.post(HOOK, content=body, headers=signed(body))).status_code == 200
        # First the webhook is applied (which queues the fetch), then the fetch dies.
        applying = HandlerRegistry()
        applying.register(WEBHOOK_KIND, apply_webhook)
        async with working(engine, settings, applying):

            async def stored() -> bool:
                return bool((await http.get("/v1/inbound")).json()["data"])

            await eventually(stored, "the inbound message", seconds=BOUND)
        await last_attempt_for(engine, INBOUND_MEDIA_KIND)
        fetching = HandlerRegistry()
        fetching.register(INBOUND_MEDIA_KIND, broken, on_dead=inbound_media_died)
        async with working(engine, settings, fetching) as worker:

            async def settled() -> bool:
                [item] = (await http.get("/v1/inbound")).json()["data"]
                return bool(item["media_error"])

            await eventually(settled, "the file's error", seconds=BOUND)
        assert worker.stats.buried == 1
        [item] = (await http.get("/v1/inbound")).json()["data"]
        assert item["media_id"] is None
        assert "gave up fetching the file after 1 attempts" in item["media_error"]


async def test_a_failing_on_dead_still_buries_the_job(
    engine: AsyncEngine, settings: Settings
) -> None:
    """What a death means could itself fail; the job must not live on (it would run
    again at every lease expiry), so it is buried alone."""
    sessions = session_factory(engine)
    mourned: list[str] = []

    async def on_dead(job: Job, error: str, ctx: JobContext) -> None:
        mourned.append(error)
        raise RuntimeError("cannot record it either")

    handlers = HandlerRegistry()
    handlers.register("test.doomed", broken, on_dead=on_dead)
    now = datetime.now(UTC)
    async with transaction(sessions) as s:
        job_id = await JobRepository(s).enqueue(
            "test.doomed", {}, now - timedelta(seconds=1), now=now, max_attempts=1
        )
    assert job_id is not None
    async with working(engine, settings, handlers) as worker:

        async def buried() -> bool:
            return worker.stats.buried == 1

        await eventually(buried, "the job's burial", seconds=BOUND)
    assert mourned and "the disk is on fire" in mourned[0]
    async with transaction(sessions) as s:
        job = await JobRepository(s).get(job_id)
    assert job is not None and job.dead_at is not None


def test_the_standard_worker_knows_what_these_deaths_mean() -> None:
    handlers = standard_handlers()
    assert handlers.on_dead(SEND_KIND) is send_died
    assert handlers.on_dead(INBOUND_MEDIA_KIND) is inbound_media_died
