"""The job queue and the worker on real SQLite and PostgreSQL: the repository's
contract (outbox, dedupe, due times, leases, retries, death) and the worker loop
(backoff, RetryLater, heartbeats, graceful stop, NOTIFY), plus the recurring sweep."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from wafile.channels.whatsapp_cloud import GraphFailure
from wafile.clock import FixedClock
from wafile.config import Settings
from wafile.core.jobs import Backoff, Job, JobState, Priority, backoff_delay
from wafile.core.media import blob_key
from wafile.db.engine import create_engine, session_factory, transaction
from wafile.db.jobs import JobRepository
from wafile.db.notify import listen
from wafile.db.tables import BlobRow
from wafile.dispatch.jobs import HandlerRegistry, JobContext, RetryLater, WorkerDeps
from wafile.dispatch.sweeper import SWEEP_KIND, ensure_sweep_job, sweep_job
from wafile.dispatch.worker import Worker, WorkerOptions, run_embedded_worker
from wafile.errors import ServiceUnavailable
from wafile.media.store import BlobStore
from wafile.services.media import open_media_store

T0 = datetime(2026, 11, 24, 12, tzinfo=UTC)
LEASE = timedelta(minutes=5)
BOUND = 15.0  # seconds any wait may take before the test fails


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = BOUND) -> None:
    """Wait for `check()` to hold, polling; fail naming `what` after `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def enqueue(sessions: async_sessionmaker[AsyncSession], kind: str, **kw: Any) -> str:
    now = kw.pop("now", T0)
    async with transaction(sessions) as session:
        job_id = await JobRepository(session).enqueue(
            kind, kw.pop("payload", {}), kw.pop("run_at", now), now=now, **kw
        )
    assert job_id is not None
    return job_id


async def get(sessions: async_sessionmaker[AsyncSession], job_id: str) -> Job | None:
    async with transaction(sessions) as session:
        return await JobRepository(session).get(job_id)


async def claim(
    sessions: async_sessionmaker[AsyncSession], owner: str, now: datetime, limit: int = 10
) -> list[Job]:
    async with transaction(sessions) as session:
        return await JobRepository(session).claim(owner, now, limit, LEASE)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


# The repository ---------------------------------------------------------------------


async def test_enqueue_claim_complete_round_trip(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    job_id = await enqueue(sessions, "test.a", payload={"to": "+15551234567", "n": [1, 2]})
    (job,) = await claim(sessions, "w1", T0)
    assert (job.id, job.kind, dict(job.payload)) == (
        job_id,
        "test.a",
        {"to": "+15551234567", "n": [1, 2]},
    )
    assert (job.attempts, job.lease_owner, job.lease_expires_at) == (1, "w1", T0 + LEASE)
    assert job.state is JobState.RUNNING
    assert await claim(sessions, "w2", T0) == []  # leased: nobody else gets it
    async with transaction(sessions) as session:
        assert await JobRepository(session).complete(job_id, "w1")
    assert await get(sessions, job_id) is None


async def test_enqueue_commits_with_the_callers_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(RuntimeError):
        async with transaction(sessions) as session:
            await JobRepository(session).enqueue("test.a", {}, T0, now=T0)
            raise RuntimeError("the request failed after enqueueing")
    assert await claim(sessions, "w1", T0) == []


async def test_claim_takes_due_jobs_oldest_first_up_to_the_limit(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ids = [await enqueue(sessions, "test.a", run_at=T0 - timedelta(seconds=s)) for s in range(5)]
    first = await claim(sessions, "w1", T0, limit=2)
    assert [j.id for j in first] == [ids[4], ids[3]]
    rest = await claim(sessions, "w2", T0, limit=10)
    assert [j.id for j in rest] == [ids[2], ids[1], ids[0]]


async def test_a_higher_priority_goes_first_among_due_jobs_only(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    backlog = [await enqueue(sessions, "test.a", run_at=T0 - timedelta(seconds=s)) for s in (9, 8)]
    timer = await enqueue(sessions, "test.a", run_at=T0, priority=Priority.TIMER)
    fallback = await enqueue(sessions, "test.a", run_at=T0, priority=Priority.FALLBACK)
    later = await enqueue(sessions, "test.a", run_at=T0 + timedelta(seconds=1), priority=99)
    first = await claim(sessions, "w1", T0, limit=3)
    assert [j.id for j in first] == [timer, fallback, backlog[0]]
    assert first[0].priority == Priority.TIMER
    rest = await claim(sessions, "w2", T0, limit=10)
    assert [j.id for j in rest] == [backlog[1]]  # a job not yet due waits, whatever it is
    assert [j.id for j in await claim(sessions, "w3", T0 + timedelta(seconds=1))] == [later]


async def test_claim_only_the_kinds_asked_for(sessions: async_sessionmaker[AsyncSession]) -> None:
    await enqueue(sessions, "test.new")
    known = await enqueue(sessions, "test.old")
    async with transaction(sessions) as session:
        jobs = await JobRepository(session).claim("w1", T0, 10, LEASE, kinds={"test.old"})
    assert [j.id for j in jobs] == [known]


async def test_a_dedupe_key_makes_a_singleton(sessions: async_sessionmaker[AsyncSession]) -> None:
    first = await enqueue(sessions, "test.a", dedupe_key="send:att_1")
    async with transaction(sessions) as session:
        repo = JobRepository(session)
        assert await repo.enqueue("test.a", {}, T0, now=T0, dedupe_key="send:att_1") is None
        assert await repo.enqueue("test.a", {}, T0, now=T0) is not None  # no key: no limit
    (job,) = [j for j in await claim(sessions, "w1", T0) if j.dedupe_key]
    assert job.id == first
    async with transaction(sessions) as session:
        assert await JobRepository(session).complete(first, "w1")
    # Done and gone: the key is free again.
    assert await enqueue(sessions, "test.a", dedupe_key="send:att_1") != first


async def test_a_job_due_later_waits_for_its_time(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = FixedClock(T0)
    job_id = await enqueue(sessions, "test.a", run_at=T0 + timedelta(minutes=10))
    assert await claim(sessions, "w1", clock.now()) == []
    async with transaction(sessions) as session:
        assert await JobRepository(session).next_run_at() == T0 + timedelta(minutes=10)
    clock.advance(timedelta(minutes=9, seconds=59))
    assert await claim(sessions, "w1", clock.now()) == []
    clock.advance(timedelta(seconds=1))
    assert [j.id for j in await claim(sessions, "w1", clock.now())] == [job_id]


async def test_a_claim_that_is_not_full_says_when_the_next_job_is_due(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """`claim_next`: the claim and the next `run_at` of the jobs it left, in one
    statement on PostgreSQL; the jobs it claims are never that next `run_at`."""

    async def claim_next(
        limit: int, *, kinds: set[str] | None = None, owner: str = "w1"
    ) -> tuple[list[str], datetime | None]:
        async with transaction(sessions) as session:
            jobs, due = await JobRepository(session).claim_next(
                owner, T0, limit, LEASE, kinds=kinds
            )
        return [j.id for j in jobs], due

    assert await claim_next(5) == ([], None)  # an empty queue
    soon = T0 + timedelta(minutes=10)
    later = await enqueue(sessions, "test.a", run_at=soon)
    other_kind = await enqueue(sessions, "test.b", run_at=T0 - timedelta(seconds=5))
    due = [await enqueue(sessions, "test.a", run_at=T0 - timedelta(seconds=i)) for i in (3, 2, 1)]
    # Full: as many as asked for, and no look further.
    assert await claim_next(2, kinds={"test.a"}) == (due[:2], None)
    # Not full: the one left that is due, and when the next of its kinds is.
    assert await claim_next(5, kinds={"test.a"}) == (due[2:], soon)
    assert await claim_next(5) == ([other_kind], soon)
    assert await claim_next(5, owner="w2") == ([], soon)  # held jobs are not "next"
    async with transaction(sessions) as session:
        for job_id in [*due, other_kind]:
            assert await JobRepository(session).complete(job_id, "w1")
    assert (await get(sessions, later)) is not None


async def test_an_expired_lease_is_taken_over_and_the_first_owner_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = FixedClock(T0)
    job_id = await enqueue(sessions, "test.a")
    await claim(sessions, "killed", clock.now())
    clock.advance(LEASE)
    assert await claim(sessions, "w2", clock.now()) == []  # expires strictly after
    clock.advance(timedelta(seconds=1))
    (job,) = await claim(sessions, "w2", clock.now())
    assert (job.id, job.lease_owner, job.attempts) == (job_id, "w2", 2)
    async with transaction(sessions) as session:
        repo = JobRepository(session)
        # The first owner comes back late: every finishing write is refused.
        assert not await repo.complete(job_id, "killed")
        assert not await repo.retry(job_id, "killed", clock.now(), "late")
        assert not await repo.bury(job_id, "killed", "late", clock.now())
        assert not await repo.release(job_id, "killed")
        assert await repo.heartbeat("killed", [job_id], now=clock.now(), lease=LEASE) == set()
    still = await get(sessions, job_id)
    assert still is not None and still.lease_owner == "w2" and still.last_error is None
    async with transaction(sessions) as session:
        assert await JobRepository(session).complete(job_id, "w2")


async def test_retry_bury_release_and_revive(sessions: async_sessionmaker[AsyncSession]) -> None:
    job_id = await enqueue(sessions, "test.a", max_attempts=2)
    await claim(sessions, "w1", T0)
    async with transaction(sessions) as session:
        assert await JobRepository(session).retry(job_id, "w1", T0 + timedelta(minutes=1), "boom")
    job = await get(sessions, job_id)
    assert job is not None and job.state is JobState.PENDING
    assert (job.run_at, job.attempts, job.last_error) == (T0 + timedelta(minutes=1), 1, "boom")

    await claim(sessions, "w1", T0 + timedelta(minutes=1))
    async with transaction(sessions) as session:
        assert await JobRepository(session).release(job_id, "w1")  # shutdown: not an attempt
    job = await get(sessions, job_id)
    assert job is not None and job.attempts == 1 and job.lease_owner is None

    await claim(sessions, "w1", T0 + timedelta(minutes=1))
    async with transaction(sessions) as session:
        repo = JobRepository(session)
        assert await repo.bury(job_id, "w1", "boom again", T0 + timedelta(minutes=2))
        assert [j.id for j in await repo.dead(limit=10)] == [job_id]
    assert await claim(sessions, "w2", T0 + timedelta(days=30)) == []
    dead = await get(sessions, job_id)
    assert dead is not None and dead.state is JobState.DEAD
    assert (dead.last_error, dead.dead_at, dead.attempts) == (
        "boom again",
        T0 + timedelta(minutes=2),
        2,
    )

    async with transaction(sessions) as session:
        assert await JobRepository(session).revive(job_id, now=T0 + timedelta(hours=1))
    (job,) = await claim(sessions, "w2", T0 + timedelta(hours=1))
    assert (job.id, job.attempts, job.dead_at) == (job_id, 1, None)


async def test_heartbeat_extends_only_the_owners_leases(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = await enqueue(sessions, "test.a")
    theirs = await enqueue(sessions, "test.a", run_at=T0 + timedelta(seconds=1))
    await claim(sessions, "w1", T0, limit=1)
    await claim(sessions, "w2", T0 + timedelta(seconds=1), limit=1)
    later = T0 + timedelta(minutes=4)
    async with transaction(sessions) as session:
        held = await JobRepository(session).heartbeat("w1", [mine, theirs], now=later, lease=LEASE)
    assert held == {mine}
    # Past the first lease: only the job whose lease was not renewed is claimable.
    stolen = await claim(sessions, "w3", T0 + LEASE + timedelta(minutes=1))
    assert [j.id for j in stolen] == [theirs]
    job = await get(sessions, mine)
    assert job is not None and job.lease_expires_at == later + LEASE


# The worker ------------------------------------------------------------------------


def deps_for(
    engine: AsyncEngine, settings: Settings, clock: FixedClock, store: BlobStore | None = None
) -> WorkerDeps:
    return WorkerDeps(
        sessions=session_factory(engine),
        clock=clock,
        settings=settings,
        store=store or open_media_store(settings),
    )


@asynccontextmanager
async def working(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(worker.run(), name="test-worker")
    try:
        yield task
    finally:
        worker.stop()
        await asyncio.wait_for(task, BOUND)


OPTIONS = WorkerOptions(concurrency=4, lease=LEASE, poll_interval=0.05, grace=BOUND)


async def test_a_due_timer_runs_while_every_slot_is_busy(
    engine: AsyncEngine, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Sends waiting for their rate-limit slot can hold every slot for a while; a due
    fallback deadline (priority TIMER) still runs, in a slot kept for timers. Other
    jobs wait for a normal slot."""
    clock = FixedClock(T0)
    gate = asyncio.Event()
    ran: list[str] = []
    handlers = HandlerRegistry()

    @handlers.handler("test.busy")
    async def busy(job: Job, ctx: JobContext) -> None:
        ran.append("busy")
        await gate.wait()

    @handlers.handler("test.other")
    async def other(job: Job, ctx: JobContext) -> None:
        ran.append("other")

    @handlers.handler("test.timer")
    async def timer(job: Job, ctx: JobContext) -> None:
        ran.append("timer")

    for _ in range(2):
        await enqueue(sessions, "test.busy")
    options = WorkerOptions(
        concurrency=2, timer_slots=1, lease=LEASE, poll_interval=0.05, grace=BOUND
    )
    worker = Worker(deps_for(engine, settings, clock), handlers, options)
    async with working(worker):

        async def both_busy() -> bool:
            return ran.count("busy") == 2

        await until(both_busy, "every normal slot taken")
        await enqueue(sessions, "test.other")
        await enqueue(sessions, "test.timer", priority=Priority.TIMER)

        async def timer_ran() -> bool:
            return "timer" in ran

        await until(timer_ran, "the timer, in its reserved slot")
        await asyncio.sleep(0.3)  # several claim rounds: the other job keeps waiting
        assert "other" not in ran
        gate.set()

        async def other_ran() -> bool:
            return "other" in ran

        await until(other_ran, "the other job, once a slot is free")


async def test_the_worker_runs_handlers_concurrently_and_their_writes_commit_with_the_job(
    engine: AsyncEngine, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = FixedClock(T0)
    gate = asyncio.Event()
    started: list[str] = []
    handlers = HandlerRegistry()

    @handlers.handler("test.step")
    async def step(job: Job, ctx: JobContext) -> None:
        started.append(job.id)
        await gate.wait()  # all four must be in flight at once to get past this
        await JobRepository(ctx.session).enqueue(
            "test.next", {"after": job.id}, ctx.now, now=ctx.now
        )

    ids = [await enqueue(sessions, "test.step") for _ in range(6)]
    worker = Worker(deps_for(engine, settings, clock), handlers, OPTIONS)
    async with working(worker):

        async def four_in_flight() -> bool:
            return len(started) == 4

        await until(four_in_flight, "four handlers at once")
        assert len(worker.running) == 4  # claims only as many as it has slots
        gate.set()

        async def all_done() -> bool:
            return worker.stats.completed == 6

        await until(all_done, "six jobs done")
    assert sorted(started) == sorted(ids)
    async with transaction(sessions) as session:
        follow_ups = await JobRepository(session).claim("t", T0, 100, LEASE)
        assert sorted(j.payload["after"] for j in follow_ups) == sorted(ids)
        for job_id in ids:
            assert await JobRepository(session).get(job_id) is None


async def test_a_failing_handler_is_retried_with_backoff_then_buried(
    engine: AsyncEngine, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = FixedClock(T0)
    backoff = Backoff(first=10, factor=3, cap=1000, jitter=0.5)
    handlers = HandlerRegistry()
    runs: list[int] = []

    @handlers.handler("test.fail")
    async def fail(job: Job, ctx: JobContext) -> None:
        runs.append(job.attempts)
        # Written, then failed: the write must roll back with the attempt.
        await JobRepository(ctx.session).enqueue("test.never", {}, ctx.now, now=ctx.now)
        raise ValueError("provider said no to Bearer abcdef0123456789secret")

    job_id = await enqueue(sessions, "test.fail", max_attempts=3)
    rng = random.Random(42)
    expected = random.Random(42)
    options = WorkerOptions(concurrency=1, lease=LEASE, poll_interval=0.05, backoff=backoff)
    worker = Worker(deps_for(engine, settings, clock), handlers, options, rng=rng)
    async with working(worker):
        for attempt in (1, 2):

            async def retried(n: int = attempt) -> bool:
                return worker.stats.retried == n

            await until(retried, f"retry {attempt}")
            job = await get(sessions, job_id)
            assert job is not None and job.state is JobState.PENDING
            delay = backoff_delay(attempt, backoff, expected.random())
            assert (job.attempts, job.run_at) == (attempt, clock.now() + delay)
            assert job.last_error is not None and job.last_error.startswith("ValueError: ")
            assert "abcdef0123456789secret" not in job.last_error  # scrubbed
            clock.advance(delay)

        async def buried() -> bool:
            return worker.stats.buried == 1

        await until(buried, "the job to die")
    assert runs == [1, 2, 3]
    dead = await get(sessions, job_id)
    assert dead is not None and dead.state is JobState.DEAD
    assert dead.dead_at == clock.now() and dead.attempts == 3
    assert dead.last_error is not None and "provider said no" in dead.last_error
    async with transaction(sessions) as session:
        assert await JobRepository(session).claim("t", T0 + timedelta(days=1), 10, LEASE) == []


async def test_a_provider_outage_is_logged_without_a_traceback(
    engine: AsyncEngine,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A provider's failure (GraphFailure, TwilioFailure) that escapes a job is an
    expected outage: retried with the queue's backoff, one log line each time. A bug
    (any other exception) keeps its traceback."""
    clock = FixedClock(T0)
    handlers = HandlerRegistry()
    raised = [GraphFailure(http_status=503, code=None), ValueError("a bug")]

    @handlers.handler("test.flaky")
    async def flaky(job: Job, ctx: JobContext) -> None:
        if raised:
            raise raised.pop(0)

    await enqueue(sessions, "test.flaky")
    backoff = Backoff(first=1, factor=1, cap=1, jitter=0)
    options = WorkerOptions(concurrency=1, lease=LEASE, poll_interval=0.05, backoff=backoff)
    worker = Worker(deps_for(engine, settings, clock), handlers, options)
    with caplog.at_level(logging.WARNING, logger="wafile.dispatch.worker"):
        async with working(worker):

            async def done() -> bool:
                clock.advance(timedelta(seconds=1))  # each retry is due a second later
                return worker.stats.completed == 1

            await until(done, "the job, after two failures")
    failed = [r for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert ["GraphFailure" in r.getMessage() for r in failed] == [True, False]
    assert [r.exc_info is not None for r in failed] == [False, True]


async def test_retry_later_is_honoured_and_never_buries(
    engine: AsyncEngine, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = FixedClock(T0)
    handlers = HandlerRegistry()

    @handlers.handler("test.later")
    async def later(job: Job, ctx: JobContext) -> None:
        raise RetryLater(timedelta(minutes=7), "rate limited")

    job_id = await enqueue(sessions, "test.later", max_attempts=1)
    worker = Worker(deps_for(engine, settings, clock), handlers, OPTIONS)
    async with working(worker):

        async def retried() -> bool:
            return worker.stats.retried == 1

        await until(retried, "the RetryLater")
    job = await get(sessions, job_id)
    assert job is not None and job.state is JobState.PENDING  # max_attempts=1, not dead
    assert (job.run_at, job.attempts, job.last_error) == (
        T0 + timedelta(minutes=7),
        1,
        "rate limited",
    )


async def test_retry_later_that_does_not_count_gives_the_attempt_back(
    engine: AsyncEngine, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = FixedClock(T0)
    handlers = HandlerRegistry()

    @handlers.handler("test.wait")
    async def wait(job: Job, ctx: JobContext) -> None:
        raise RetryLater(timedelta(seconds=3), "waiting for a send slot", counts=False)

    job_id = await enqueue(sessions, "test.wait", max_attempts=3)
    worker = Worker(deps_for(engine, settings, clock), handlers, OPTIONS)
    async with working(worker):

        async def retried() -> bool:
            return worker.stats.retried == 1

        await until(retried, "the RetryLater")
    job = await get(sessions, job_id)
    assert job is not None and job.state is JobState.PENDING
    # Claimed once, and that attempt given back: a rate limit never eats the retries.
    assert (job.run_at, job.attempts) == (T0 + timedelta(seconds=3), 0)


async def test_heartbeats_keep_a_slow_job_from_being_taken_over(
    engine: AsyncEngine, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = FixedClock(T0)
    gate = asyncio.Event()
    handlers = HandlerRegistry()

    @handlers.handler("test.slow")
    async def slow(job: Job, ctx: JobContext) -> None:
        await gate.wait()

    job_id = await enqueue(sessions, "test.slow")
    lease = timedelta(seconds=0.15)  # heartbeats every 50 ms of real time
    options = WorkerOptions(concurrency=1, lease=lease, poll_interval=0.05, grace=BOUND)
    worker = Worker(deps_for(engine, settings, clock), handlers, options)
    async with working(worker):

        async def claimed() -> bool:
            return job_id in worker.running

        await until(claimed, "the claim")
        clock.advance(timedelta(hours=1))  # far past the lease it was claimed with

        async def renewed() -> bool:
            job = await get(sessions, job_id)
            return job is not None and job.lease_expires_at == clock.now() + lease

        await until(renewed, "a heartbeat")
        assert await claim(sessions, "thief", clock.now()) == []
        gate.set()

        async def done() -> bool:
            return worker.stats.completed == 1

        await until(done, "the slow job to finish")
    assert await get(sessions, job_id) is None


async def test_a_job_its_handler_completed_is_neither_renewed_nor_reported_lost(
    engine: AsyncEngine,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A send recorded in a batch deletes its job in the batch's transaction, before
    its handler returns (dispatch/sent_batch.py): heartbeats meanwhile must not take the
    missing row for a lease another worker took."""
    clock = FixedClock(T0)
    gate = asyncio.Event()
    handlers = HandlerRegistry()

    @handlers.handler("test.self_completing")
    async def self_completing(job: Job, ctx: JobContext) -> None:
        async with transaction(sessions) as session:
            assert await JobRepository(session).complete_many([(job.id, ctx.owner)]) == {job.id}
        ctx.mark_completed()
        await gate.wait()  # heartbeats run meanwhile

    job_id = await enqueue(sessions, "test.self_completing")
    lease = timedelta(seconds=0.15)  # heartbeats every 50 ms of real time
    options = WorkerOptions(concurrency=1, lease=lease, poll_interval=0.05, grace=BOUND)
    worker = Worker(deps_for(engine, settings, clock), handlers, options)
    with caplog.at_level(logging.WARNING, logger="wafile.dispatch.worker"):
        async with working(worker):

            async def deleted() -> bool:
                return job_id in worker.running and await get(sessions, job_id) is None

            await until(deleted, "the handler's own completion")
            await asyncio.sleep(0.3)  # several heartbeats
            gate.set()

            async def done() -> bool:
                return worker.stats.completed == 1

            await until(done, "the handler to return")
    assert worker.stats.lost == 0
    assert not [r for r in caplog.records if "lease lost" in r.getMessage()]


async def test_a_job_taken_over_while_it_ran_commits_nothing(
    engine: AsyncEngine, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = FixedClock(T0)
    gate = asyncio.Event()
    handlers = HandlerRegistry()

    @handlers.handler("test.stuck")
    async def stuck(job: Job, ctx: JobContext) -> None:
        await gate.wait()  # as if the event loop had stalled past the lease
        await JobRepository(ctx.session).enqueue("test.effect", {}, ctx.now, now=ctx.now)

    job_id = await enqueue(sessions, "test.stuck")
    worker = Worker(deps_for(engine, settings, clock), handlers, OPTIONS)
    async with working(worker):

        async def claimed() -> bool:
            return job_id in worker.running

        await until(claimed, "the claim")
        clock.advance(LEASE + timedelta(seconds=1))
        (taken,) = await claim(sessions, "other", clock.now())
        assert taken.id == job_id
        gate.set()

        async def lost() -> bool:
            return worker.stats.lost == 1

        await until(lost, "the refused completion")
    job = await get(sessions, job_id)
    assert job is not None and job.lease_owner == "other"
    async with transaction(sessions) as session:
        assert (
            await JobRepository(session).claim("t", clock.now(), 10, LEASE, kinds={"test.effect"})
            == []
        )


async def test_stopping_waits_for_running_jobs(
    engine: AsyncEngine, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = FixedClock(T0)
    gate = asyncio.Event()
    handlers = HandlerRegistry()

    @handlers.handler("test.finish")
    async def finish(job: Job, ctx: JobContext) -> None:
        await gate.wait()

    job_id = await enqueue(sessions, "test.finish")
    queued = await enqueue(sessions, "test.finish", run_at=T0 + timedelta(seconds=1))
    worker = Worker(deps_for(engine, settings, clock), handlers, OPTIONS)
    task = asyncio.create_task(worker.run())

    async def claimed() -> bool:
        return job_id in worker.running

    await until(claimed, "the claim")
    task.cancel()  # as the app's lifespan does
    clock.advance(timedelta(seconds=1))  # the second is due now, but stopping claims nothing
    await asyncio.sleep(0)
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, BOUND)
    assert worker.stats.completed == 1 and worker.stats.released == 0
    assert await get(sessions, job_id) is None
    left = await get(sessions, queued)
    assert left is not None and left.attempts == 0 and left.lease_owner is None


async def test_jobs_still_running_after_the_grace_period_are_released(
    engine: AsyncEngine, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = FixedClock(T0)
    handlers = HandlerRegistry()
    cancelled: list[str] = []

    @handlers.handler("test.forever")
    async def forever(job: Job, ctx: JobContext) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(job.id)
            raise

    ids = {await enqueue(sessions, "test.forever") for _ in range(2)}
    options = WorkerOptions(concurrency=2, lease=LEASE, poll_interval=0.05, grace=0.1)
    worker = Worker(deps_for(engine, settings, clock), handlers, options)
    async with working(worker):

        async def both() -> bool:
            return worker.running == ids

        await until(both, "two running jobs")
    assert sorted(cancelled) == sorted(ids)
    assert worker.stats.released == 2
    for job_id in ids:
        job = await get(sessions, job_id)
        # Released as untried: claimable at once, the attempt not counted.
        assert job is not None and job.lease_owner is None and job.attempts == 0
    assert {j.id for j in await claim(sessions, "next", clock.now())} == ids


async def test_the_worker_waits_for_the_next_due_job(
    engine: AsyncEngine, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = FixedClock(T0)
    handlers = HandlerRegistry()
    ran: list[str] = []

    @handlers.handler("test.timer")
    async def timer(job: Job, ctx: JobContext) -> None:
        ran.append(job.id)

    job_id = await enqueue(sessions, "test.timer", run_at=T0 + timedelta(minutes=10))
    worker = Worker(deps_for(engine, settings, clock), handlers, OPTIONS)
    async with working(worker):

        async def slept() -> bool:
            return worker.stats.sleeps >= 3

        await until(slept, "a few idle rounds")
        assert ran == []
        # Each idle round was a claiming statement that found nothing due.
        assert worker.stats.claims >= worker.stats.sleeps and worker.stats.claimed == 0
        clock.advance(timedelta(minutes=10))

        async def fired() -> bool:
            return ran == [job_id]

        await until(fired, "the timer")


# The recurring sweep ----------------------------------------------------------------


async def test_the_embedded_worker_keeps_one_recurring_sweep(
    engine: AsyncEngine, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    settings = settings.with_overrides(sweep_interval_seconds=60, worker_poll_seconds=0.05)
    clock = FixedClock(T0)
    store = open_media_store(settings)

    async def leave_unreferenced_blob() -> str:
        sha = hashlib.sha256(f"zero {clock.now()}".encode()).hexdigest()

        async def body() -> AsyncIterator[bytes]:
            yield b"zero"

        await store.put(blob_key(sha), body())
        async with transaction(sessions) as session:
            session.add(BlobRow(sha256=sha, size=4, ref_count=0, created_at=clock.now()))
        return sha

    async def gone(sha: str) -> bool:
        async with transaction(sessions) as session:
            return await session.get(BlobRow, sha) is None

    first = await leave_unreferenced_blob()
    task = asyncio.create_task(run_embedded_worker(engine, sessions, store, clock, settings))
    try:
        await until(lambda: gone(first), "the sweep at start")
        async with transaction(sessions) as session:
            job = await JobRepository(session).by_dedupe_key(SWEEP_KIND)

        async def rescheduled() -> bool:
            j = await get(sessions, job.id) if job else None
            return j is not None and j.lease_owner is None

        await until(rescheduled, "the sweep job to be rescheduled")
        job = await get(sessions, job.id) if job else None
        assert job is not None and job.kind == SWEEP_KIND
        assert (job.run_at, job.attempts) == (T0 + timedelta(seconds=60), 0)

        second = await leave_unreferenced_blob()
        clock.advance(timedelta(seconds=60))
        await until(lambda: gone(second), "the next sweep")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, BOUND)
    # Still exactly one sweep job, however often workers start.
    await ensure_sweep_job(sessions, clock, settings)
    async with transaction(sessions) as session:
        jobs = await JobRepository(session).claim("t", T0 + timedelta(days=1), 100, LEASE)
    assert [j.kind for j in jobs] == [SWEEP_KIND]


class BrokenStore:
    """A media store that is down."""

    def __init__(self, real: BlobStore) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def older_than(self, prefix: str, before: datetime) -> list[str]:
        raise ServiceUnavailable("the media store failed: down for the test")


async def test_a_failed_sweep_tries_again_next_interval_and_a_dead_one_is_revived(
    engine: AsyncEngine, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    settings = settings.with_overrides(sweep_interval_seconds=300)
    clock = FixedClock(T0)
    handlers = HandlerRegistry()
    handlers.register(SWEEP_KIND, sweep_job)
    store: Any = BrokenStore(open_media_store(settings))
    await ensure_sweep_job(sessions, clock, settings)
    worker = Worker(deps_for(engine, settings, clock, store), handlers, OPTIONS)
    async with working(worker):

        async def retried() -> bool:
            return worker.stats.retried == 1

        await until(retried, "the failed sweep")
    async with transaction(sessions) as session:
        job = await JobRepository(session).by_dedupe_key(SWEEP_KIND)
    assert job is not None and job.state is JobState.PENDING
    assert job.run_at == T0 + timedelta(seconds=300)
    assert job.last_error is not None and "down for the test" in job.last_error

    # A sweep job that died anyway (say while the interval was 0) comes back at start.
    async with transaction(sessions) as session:
        repo = JobRepository(session)
        (claimed,) = await repo.claim("w", T0 + timedelta(hours=1), 1, LEASE)
        assert await repo.bury(claimed.id, "w", "gave up", T0 + timedelta(hours=1))
    clock.advance(timedelta(hours=2))
    await ensure_sweep_job(sessions, clock, settings)
    revived = await get(sessions, claimed.id)
    assert revived is not None and revived.state is JobState.PENDING
    assert revived.run_at == clock.now()


async def test_no_recurring_sweep_when_the_interval_is_zero(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await ensure_sweep_job(
        sessions, FixedClock(T0), settings.with_overrides(sweep_interval_seconds=0)
    )
    assert await claim(sessions, "t", T0 + timedelta(days=1)) == []


# PostgreSQL: many claimers, NOTIFY ----------------------------------------------------


@pytest.fixture
def postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgres"):
        pytest.skip("PostgreSQL only")


@pytest.mark.usefixtures("postgres_only")
async def test_concurrent_claimers_never_share_a_job(
    engine: AsyncEngine, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with transaction(sessions) as session:
        repo = JobRepository(session)
        for n in range(500):
            await repo.enqueue("test.n", {"n": n}, T0, now=T0)
    other = create_engine(settings.effective_database_url)
    try:

        async def drain(owner: str, sm: async_sessionmaker[AsyncSession]) -> list[str]:
            seen: list[str] = []
            while True:
                async with transaction(sm) as session:
                    repo = JobRepository(session)
                    jobs = await repo.claim(owner, T0, 7, LEASE)
                    for job in jobs:
                        assert await repo.complete(job.id, owner)
                if not jobs:
                    return seen
                seen += [j.id for j in jobs]

        runs = await asyncio.gather(
            drain("a", sessions),
            drain("b", session_factory(other)),
            drain("c", sessions),
            drain("d", session_factory(other)),
        )
    finally:
        await other.dispose()
    every = [job_id for run in runs for job_id in run]
    assert len(every) == 500 and len(set(every)) == 500
    assert sum(1 for run in runs if run) >= 2  # they really did share the work


@pytest.mark.usefixtures("postgres_only")
async def test_notify_wakes_a_worker_with_a_long_poll_interval(
    engine: AsyncEngine, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = FixedClock(T0)
    handlers = HandlerRegistry()
    ran: list[str] = []

    @handlers.handler("test.ping")
    async def ping(job: Job, ctx: JobContext) -> None:
        ran.append(job.id)

    options = WorkerOptions(concurrency=2, lease=LEASE, poll_interval=600, grace=BOUND)
    async with listen(engine.url) as wake:
        worker = Worker(deps_for(engine, settings, clock), handlers, options, wake=wake)
        async with working(worker):

            async def asleep() -> bool:
                return worker.stats.sleeps >= 1

            await until(asleep, "the worker to go to sleep")
            job_id = await enqueue(sessions, "test.ping")  # NOTIFY on commit

            async def woke() -> bool:
                return ran == [job_id]

            await until(woke, "the notification to wake the worker", seconds=BOUND)
