"""Callback attempts recorded together with their jobs' completions
(dispatch/callback_batch.py), on SQLite and PostgreSQL: concurrent delivery jobs share
one transaction and two statements on the callback tables, each delivery keeps its
own request time and attempt number; a job another worker took over records
nothing, a failure schedules its retry, and two jobs of one delivery are numbered in
turn. And the other end: several messages' events stored in two statements."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.test_callbacks import CALLBACK_TABLES
from tests.integration.test_whatsapp_webhooks import sandbox_sender
from tests.support import LiveServer
from wafile.clock import SystemClock
from wafile.config import Settings
from wafile.core.callbacks import DeliveryAttempt, DeliveryStatus
from wafile.core.jobs import Job, LeaseLost
from wafile.core.message_state import (
    AttemptStatus,
    MessageState,
    MessageStatus,
    Notify,
    Subject,
)
from wafile.crypto import Sealer
from wafile.db.accounts import AccountRepository
from wafile.db.engine import autocommit, session_factory, transaction
from wafile.db.jobs import JobRepository
from wafile.db.messages import MessageRepository
from wafile.db.tables import CallbackAttemptRow, CallbackDeliveryRow, JobRow
from wafile.dispatch.callback_batch import CallbackBatcher
from wafile.services.callbacks import CALLBACK_KIND, JobAttempts, callbacks

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"b" * 2000 + b"\ntrailer<<>>\n%%EOF\n"
OWNER = "test-worker"
MESSAGES = 12


# No embedded worker: the test claims the delivery jobs and records them itself.
pytestmark = pytest.mark.no_embedded_worker


async def queued_events(
    live_server: LiveServer, engine: AsyncEngine, messages: int = MESSAGES
) -> list[Job]:
    """`messages` accepted messages, each one `attempt.queued` event for one endpoint:
    their delivery jobs, claimed by OWNER."""
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        made = await http.post("/v1/webhooks", json={"url": "https://example.com/hook"})
        assert made.status_code == 201, made.text
        uploaded = await http.post("/v1/media", files={"file": ("b.pdf", PDF, "application/pdf")})
        assert uploaded.status_code == 201, uploaded.text
        for _ in range(messages):
            body = {"to": "+12015550101", "media_id": uploaded.json()["id"]}
            sent = await http.post("/v1/messages", json=body)
            assert sent.status_code == 202, sent.text
    return await claim(engine, messages)


async def claim(engine: AsyncEngine, count: int) -> list[Job]:
    async with transaction(session_factory(engine)) as session:
        jobs = await JobRepository(session).claim(
            OWNER, datetime.now(UTC), count, timedelta(minutes=1), kinds=[CALLBACK_KIND]
        )
    assert len(jobs) == count
    return jobs


async def outcome(
    engine: AsyncEngine, settings: Settings, job: Job, *, status: int = 200, at: datetime
) -> JobAttempts:
    """The job's deliveries as its handler reads them, each answered `status` at `at`."""
    ids = job.payload.get("delivery_ids") or [job.payload["delivery_id"]]
    async with autocommit(session_factory(engine)) as session:
        prepared = await callbacks.prepare(
            session,
            Sealer(settings.secret_key),
            delivery_ids=[str(i) for i in ids],
            manual=bool(job.payload.get("manual", False)),
            allow_loopback_http=False,
            now=at,
        )
    attempt = DeliveryAttempt(
        number=0,
        manual=bool(job.payload.get("manual", False)),
        requested_at=at,
        status_code=status,
        error=None if status < 300 else f"HTTP {status}",
        latency_ms=3,
        response="ok",
    )
    return JobAttempts(attempts=[(p, attempt) for p in prepared], step=1)


def record(
    batcher: CallbackBatcher,
    engine: AsyncEngine,
    settings: Settings,
    job: Job,
    done: JobAttempts,
    owner: str = OWNER,
) -> asyncio.Task[None]:
    return asyncio.create_task(
        batcher.record(
            session_factory(engine),
            SystemClock(),
            settings,
            job_id=job.id,
            owner=owner,
            outcome=done,
        )
    )


async def test_concurrent_jobs_share_one_transaction_and_two_statements(
    live_server: LiveServer, engine: AsyncEngine, settings: Settings
) -> None:
    jobs = await queued_events(live_server, engine)
    start = datetime.now(UTC).replace(microsecond=0)
    # Each job's request at its own time: a delivery keeps its own.
    times = {job.id: start + timedelta(seconds=i) for i, job in enumerate(jobs)}
    done = [await outcome(engine, settings, job, at=times[job.id]) for job in jobs]
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if CALLBACK_TABLES.search(statement):
            statements.append(statement)

    batcher = CallbackBatcher()
    event.listen(Engine, "before_cursor_execute", count)
    try:
        tasks = [
            record(batcher, engine, settings, job, d) for job, d in zip(jobs, done, strict=False)
        ]
        await asyncio.gather(*tasks)
    finally:
        event.remove(Engine, "before_cursor_execute", count)

    assert batcher.batches == 1
    # One UPDATE of the deliveries and one INSERT of their attempts for all 12 jobs
    # (and the endpoint's health, written once at most); one job each, 36 or more.
    assert len(statements) <= 3, "\n".join(statements)
    async with transaction(session_factory(engine)) as session:
        callback_jobs = select(JobRow.id).where(JobRow.kind == CALLBACK_KIND)
        assert list(await session.scalars(callback_jobs)) == []  # all completed
        rows = {r.id: r for r in await session.scalars(select(CallbackDeliveryRow))}
        logged = list(await session.scalars(select(CallbackAttemptRow)))
    assert len(rows) == MESSAGES == len(logged)
    by_delivery = {a.delivery_id: a for a in logged}
    for job, d in zip(jobs, done, strict=True):
        ((prepared, _),) = d.attempts
        row, attempt = rows[prepared.delivery.id], by_delivery[prepared.delivery.id]
        assert (row.status, row.attempts) == (DeliveryStatus.DELIVERED, 1)
        assert row.delivered_at == row.last_attempt_at == times[job.id]
        assert (attempt.number, attempt.requested_at, attempt.status_code) == (
            1,
            times[job.id],
            200,
        )
        assert (attempt.error, attempt.latency_ms, attempt.response) == (None, 3, "ok")


async def test_taken_over_failed_and_two_jobs_of_one_delivery(
    live_server: LiveServer, engine: AsyncEngine, settings: Settings
) -> None:
    jobs = await queued_events(live_server, engine, messages=3)
    taken, failed, twice = jobs
    at = datetime.now(UTC)
    twice_done = await outcome(engine, settings, twice, at=at)
    ((twice_prepared, _),) = twice_done.attempts
    async with transaction(session_factory(engine)) as session:
        found = await AccountRepository(session).get(twice_prepared.delivery.account_id)
        assert found is not None
        await callbacks.redeliver(
            session, account=found, delivery_id=twice_prepared.delivery.id, now=at
        )
    (manual,) = await claim(engine, 1)
    manual_done = await outcome(engine, settings, manual, at=at + timedelta(seconds=1))

    batcher = CallbackBatcher()
    taken_done = await outcome(engine, settings, taken, at=at)
    failed_done = await outcome(engine, settings, failed, status=500, at=at)
    # All four finish together, as concurrent jobs of one worker would.
    outcomes = await asyncio.gather(
        record(batcher, engine, settings, taken, taken_done, owner="another-worker"),
        record(batcher, engine, settings, failed, failed_done),
        record(batcher, engine, settings, twice, twice_done),
        record(batcher, engine, settings, manual, manual_done),
        return_exceptions=True,
    )

    assert isinstance(outcomes[0], LeaseLost)
    assert outcomes[1:] == [None, None, None]
    assert batcher.batches == 2  # the manual job waited for the automatic one's batch
    async with transaction(session_factory(engine)) as session:
        left = list(await session.scalars(select(JobRow).where(JobRow.kind == CALLBACK_KIND)))
        rows = {r.id: r for r in await session.scalars(select(CallbackDeliveryRow))}
        logged = list(await session.scalars(select(CallbackAttemptRow)))
    ids = {
        job.id: str(job.payload.get("delivery_id") or job.payload["delivery_ids"][0])
        for job in jobs
    }
    # Taken over: nothing recorded, the job stays for its holder.
    assert rows[ids[taken.id]].attempts == 0
    # Failed: pending, its next attempt queued as step 2 of the schedule.
    assert (rows[ids[failed.id]].status, rows[ids[failed.id]].attempts) == ("pending", 1)
    retries = [j for j in left if j.payload.get("step") == 2]
    assert [j.payload["delivery_id"] for j in retries] == [ids[failed.id]]
    assert {j.id for j in left} == {taken.id, retries[0].id}
    # The automatic and the manual attempt of one delivery: numbered 1 and 2.
    numbers = sorted((a.number, a.manual) for a in logged if a.delivery_id == ids[twice.id])
    assert numbers == [(1, False), (2, True)]
    assert rows[ids[twice.id]].attempts == 2


async def test_notify_many_stores_several_messages_events_in_two_statements(
    live_server: LiveServer, engine: AsyncEngine, settings: Settings
) -> None:
    """The transitions of several messages (a webhook body's statuses, a batch of
    sends) make their deliveries and jobs in one INSERT each; still one job per
    message and target, its events in sequence order."""
    await queued_events(live_server, engine, messages=4)
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        ids = set(await session.scalars(select(CallbackDeliveryRow.message_id)))
        repo = MessageRepository(session)
        messages = [m for i in sorted(i for i in ids if i) if (m := await repo.get(i))]
    assert len(messages) == 4
    at = datetime.now(UTC)
    sent = Notify(
        sequence=2,
        subject=Subject.ATTEMPT,
        attempt=0,
        previous=AttemptStatus.QUEUED,
        status=AttemptStatus.SENT,
        late=False,
        at=at,
    )
    progress = Notify(
        sequence=3,
        subject=Subject.MESSAGE,
        attempt=None,
        previous=MessageStatus.ACCEPTED,
        status=MessageStatus.IN_PROGRESS,
        late=False,
        at=at,
    )
    changes = [(m, MessageState(plan=m.plan, sequence=3), [sent, progress]) for m in messages]
    inserts: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT"):
            inserts.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        async with transaction(sessions) as session:
            await callbacks.notify_many(session, changes, now=at)
    finally:
        event.remove(Engine, "before_cursor_execute", count)

    assert len(inserts) == 2, "\n".join(inserts)  # the deliveries, then their jobs
    async with transaction(sessions) as session:
        new = list(
            await session.scalars(
                select(JobRow).where(JobRow.kind == CALLBACK_KIND, JobRow.lease_owner.is_(None))
            )
        )
        rows = {r.id: r for r in await session.scalars(select(CallbackDeliveryRow))}
    assert len(new) == len(messages)
    grouped = [[rows[i] for i in job.payload["delivery_ids"]] for job in new]
    assert sorted(g[0].message_id for g in grouped) == sorted(m.id for m in messages)
    for group in grouped:
        assert [(d.message_id, d.sequence) for d in group] == [
            (group[0].message_id, 2),
            (group[0].message_id, 3),
        ]
        assert [d.event_type for d in group] == ["attempt.sent", "message.in_progress"]
