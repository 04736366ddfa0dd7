"""Sends Meta accepted, recorded together with their jobs' completions
(dispatch/sent_batch.py), on SQLite and PostgreSQL: concurrent sends share one
transaction, a job another worker took over records nothing, and a send that cannot
be recorded fails only its own job."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.test_whatsapp_webhooks import sandbox_sender
from tests.support import LiveServer
from wafile.clock import SystemClock
from wafile.core.jobs import Job, LeaseLost
from wafile.core.message_state import SendSucceeded
from wafile.db.engine import session_factory, transaction
from wafile.db.jobs import JobRepository
from wafile.db.messages import MessageRepository
from wafile.db.tables import JobRow
from wafile.dispatch.sent_batch import SentBatcher, Upload
from wafile.errors import MessageNotFound
from wafile.services.messages import SEND_KIND, SentRecord

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"b" * 2000 + b"\ntrailer<<>>\n%%EOF\n"
OWNER = "test-worker"
SENDS = 12


# No embedded worker: the test claims the send jobs and records their sends itself.
pytestmark = pytest.mark.no_embedded_worker


async def accepted_jobs(live_server: LiveServer, engine: AsyncEngine) -> tuple[list[Job], str]:
    """SENDS messages accepted and their send jobs claimed by OWNER; the sender's id."""
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        uploaded = await http.post("/v1/media", files={"file": ("b.pdf", PDF, "application/pdf")})
        assert uploaded.status_code == 201, uploaded.text
        sender_id = ""
        for _ in range(SENDS):
            body = {"to": "+12015550101", "media_id": uploaded.json()["id"]}
            sent = await http.post("/v1/messages", json=body)
            assert sent.status_code == 202, sent.text
            sender_id = sent.json()["channels"][0]["sender_id"]
    async with transaction(session_factory(engine)) as session:
        jobs = await JobRepository(session).claim(
            OWNER, datetime.now(UTC), SENDS, timedelta(minutes=1), kinds=[SEND_KIND]
        )
    assert len(jobs) == SENDS
    return jobs, sender_id


def record_of(job: Job, sender_id: str, message_id: str | None = None) -> SentRecord:
    at = datetime.now(UTC)
    wamid = f"wamid.{job.id}"
    return SentRecord(
        message_id=message_id or str(job.payload["message_id"]),
        attempt=0,
        sender_id=sender_id,
        provider_id=wamid,
        event=SendSucceeded(at=at, attempt=0, provider_id=wamid),
    )


async def test_concurrent_sends_are_recorded_in_one_transaction(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    jobs, sender_id = await accepted_jobs(live_server, engine)
    sessions, batcher = session_factory(engine), SentBatcher()
    upload = Upload(sha256="0" * 64, media_id="meta-media")

    await asyncio.gather(
        *(
            batcher.record(
                sessions,
                SystemClock(),
                job_id=job.id,
                owner=OWNER,
                record=record_of(job, sender_id),
                upload=upload if i == 0 else None,
            )
            for i, job in enumerate(jobs)
        )
    )
    assert batcher.batches == 1
    async with transaction(sessions) as session:
        assert list(await session.scalars(select(JobRow.id))) == []  # all completed
        repo = MessageRepository(session)
        for job in jobs:
            assert await repo.ref(sender_id, f"wamid.{job.id}") == (job.payload["message_id"], 0)
            message = await repo.get(str(job.payload["message_id"]))
            assert message is not None and message.status == "in_progress"
        assert await repo.uploaded(sender_id, "0" * 64, after=datetime(2000, 1, 1, tzinfo=UTC))


async def test_a_job_taken_over_or_a_bad_send_fails_alone(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    jobs, sender_id = await accepted_jobs(live_server, engine)
    sessions, batcher = session_factory(engine), SentBatcher()
    taken, bad, good = jobs[0], jobs[1], jobs[2:]

    def send(job: Job, owner: str = OWNER, message_id: str | None = None) -> asyncio.Task[None]:
        record = record_of(job, sender_id, message_id)
        return asyncio.create_task(
            batcher.record(sessions, SystemClock(), job_id=job.id, owner=owner, record=record)
        )

    tasks = [send(taken, owner="another-worker"), send(bad, message_id="msg_gone")]
    tasks += [send(job) for job in good]
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)

    assert isinstance(outcomes[0], LeaseLost)
    assert isinstance(outcomes[1], MessageNotFound)
    assert outcomes[2:] == [None] * len(good)
    async with transaction(sessions) as session:
        left = set(await session.scalars(select(JobRow.id)))
        repo = MessageRepository(session)
        assert left == {taken.id, bad.id}  # the queue runs them again
        assert await repo.ref(sender_id, f"wamid.{taken.id}") is None
        assert await repo.ref(sender_id, f"wamid.{bad.id}") is None
        for job in good:
            assert await repo.ref(sender_id, f"wamid.{job.id}") is not None
