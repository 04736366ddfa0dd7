"""The per-sender messages-per-second limit on real SQLite and PostgreSQL: the SQL does
exactly what `core/rate_limit.py` computes, concurrent reservations from several
engines (several processes' worth of connections) never grant more than the limit,
and a send job sleeps for a near slot and goes back to the queue for a far one."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import cast

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.support import TEST_SECRET
from tests.unit.core.test_rate_limit import most_in_a_window
from wafile.clock import FixedClock
from wafile.config import Settings
from wafile.core.rate_limit import (
    Bucket,
    Granted,
    Refused,
    SendRate,
    fresh,
    micros,
    most_at_once,
    take,
    take_all,
)
from wafile.core.senders import Sender, WhatsAppSender
from wafile.crypto import Sealer
from wafile.db.engine import create_engine, session_factory, transaction
from wafile.db.messages import MessageRepository
from wafile.db.rate_limits import SendRateRepository
from wafile.dispatch.jobs import JobContext, RetryLater, WorkerDeps
from wafile.dispatch.send_slot import wait_for_send_slot
from wafile.dispatch.slot_batch import SlotBatcher
from wafile.services.accounts import accounts
from wafile.services.media import open_media_store
from wafile.services.messages import SendPlan
from wafile.services.senders import senders

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
SECOND = 1_000_000
ENGINES = 3  # separate engines (pools): as many independent clients as processes


async def add_sender(engine: AsyncEngine, mps: int, name: str = "main") -> Sender:
    async with transaction(session_factory(engine)) as session:
        account, _ = await accounts.ensure(session, "acme", now=NOW)
        created = await senders.add(
            session,
            Sealer(TEST_SECRET),
            account=account,
            name=name,
            config=WhatsAppSender(
                phone_number_id="100000000000001",
                waba_id="200000000000001",
                display_phone_number="15550000001",
                mps=mps,
            ),
            access_token="token",
            app_secret="app-secret",
            verify_token="verify",
            is_default=False,
            now=NOW,
        )
    return created.sender


async def reserve(
    sessions: async_sessionmaker[AsyncSession],
    sender: Sender,
    now: int,
    max_wait: int,
) -> Granted | Refused:
    async with transaction(sessions) as session:
        return await SendRateRepository(session).take(
            sender.id, now=now, rate=SendRate(mps=sender.whatsapp.mps), max_wait=max_wait
        )


async def bucket(engine: AsyncEngine, sender: Sender) -> Bucket | None:
    async with transaction(session_factory(engine)) as session:
        return await SendRateRepository(session).get(sender.id)


@pytest.fixture
async def engines(settings: Settings, engine: AsyncEngine) -> AsyncIterator[list[AsyncEngine]]:
    """More engines on the migrated database, each with a pool of its own."""
    made = [create_engine(settings.effective_database_url) for _ in range(ENGINES)]
    try:
        yield made
    finally:
        for eng in made:
            await eng.dispose()


async def test_the_sql_computes_what_the_core_computes(engine: AsyncEngine) -> None:
    sender = await add_sender(engine, mps=7)
    rate = SendRate(mps=7)
    sessions = session_factory(engine)
    rng = random.Random(6)
    start = micros(NOW)
    expected: Bucket | None = None
    assert await bucket(engine, sender) is None  # made on the first send
    for step in range(200):
        # Mostly forward, sometimes back (another machine's clock), sometimes idle.
        now = start + step * 40_000 + rng.choice([0, 0, -300_000, 150_000, 3 * SECOND])
        max_wait = rng.choice([0, SECOND // 4, SECOND])
        before = fresh(now) if expected is None else expected
        expected, decision = take(before, now=now, rate=rate, max_wait=max_wait)
        assert await reserve(sessions, sender, now, max_wait) == decision, step
        assert await bucket(engine, sender) == expected, step


async def test_the_sql_takes_several_slots_as_the_core_does(engine: AsyncEngine) -> None:
    """`take_all`, mixed with single takes: the same slots and buckets as the core's."""
    sender = await add_sender(engine, mps=9)
    rate = SendRate(mps=9)
    sessions = session_factory(engine)
    rng = random.Random(7)
    start = micros(NOW)
    expected: Bucket | None = None
    granted_some = refused_some = 0
    for step in range(150):
        now = start + step * 60_000 + rng.choice([0, 0, -300_000, 2 * SECOND])
        max_wait = rng.choice([0, SECOND // 4, SECOND])
        count = rng.randint(1, most_at_once(rate, max_wait))
        before = fresh(now) if expected is None else expected
        if rng.random() < 0.3:
            expected, decision = take(before, now=now, rate=rate, max_wait=max_wait)
            assert await reserve(sessions, sender, now, max_wait) == decision, step
        else:
            together = take_all(before, count, now=now, rate=rate, max_wait=max_wait)
            async with transaction(sessions) as session:
                got = await SendRateRepository(session).take_all(
                    sender.id, count, now=now, rate=rate, max_wait=max_wait
                )
            if together is None:
                assert got is None, step
                expected, refused_some = before, refused_some + 1
            else:
                expected, slots = together
                assert got == slots, step
                granted_some += 1
        assert await bucket(engine, sender) == expected, step
    assert granted_some > 10 and refused_some > 10  # both ways were tried


async def test_concurrent_reservations_grant_exactly_the_limit(
    engine: AsyncEngine, engines: list[AsyncEngine]
) -> None:
    """Everyone at the same instant: whatever the interleaving, the decisions are those
    of one request after another; a lost update would grant a slot twice."""
    sender = await add_sender(engine, mps=50)
    rate = SendRate(mps=50)
    now, crowd = micros(NOW), 150
    pools = [session_factory(eng) for eng in engines]
    got = await asyncio.gather(
        *(reserve(pools[i % len(pools)], sender, now, SECOND) for i in range(crowd))
    )

    state, expected = fresh(now), []
    for _ in range(crowd):
        state, decision = take(state, now=now, rate=rate, max_wait=SECOND)
        expected.append(decision)
    granted = sorted(d.at for d in got if isinstance(d, Granted))
    assert len(granted) == rate.burst + 50 == 55  # burst + one second at 50 a second
    assert granted == sorted(d.at for d in expected if isinstance(d, Granted))
    refused = sorted(d.retry_at for d in got if isinstance(d, Refused))
    assert refused == sorted(d.retry_at for d in expected if isinstance(d, Refused))
    assert await bucket(engine, sender) == state


@pytest.mark.parametrize(("mps", "crowd"), [(80, 40), (10, 30)])
async def test_a_workers_concurrent_slots_go_together_and_as_one_by_one(
    engine: AsyncEngine, mps: int, crowd: int
) -> None:
    """dispatch/slot_batch.py: slots asked for at once are taken in few statements,
    and each job gets what asking alone, one after another, gives: within reach (80 a
    second, 40 jobs) all together; past it (10 a second, 30 jobs), one by one."""
    sender = await add_sender(engine, mps=mps)
    clock, batcher = FixedClock(NOW), SlotBatcher()
    sessions = session_factory(engine)
    got = await asyncio.gather(*(batcher.reserve(sessions, clock, sender) for _ in range(crowd)))
    state, expected = fresh(micros(NOW)), []
    for _ in range(crowd):
        state, decision = take(state, now=micros(NOW), rate=SendRate(mps=mps), max_wait=SECOND)
        expected.append(decision)
    assert [micros(s.at) if s.granted else None for s in got] == [
        d.at if isinstance(d, Granted) else None for d in expected
    ]
    assert await bucket(engine, sender) == state
    if mps == 80:  # all asked before the first statement started: one for all
        assert batcher.statements == 1
    else:  # 11 fit (burst 1 + a second's worth); then batches fail and go one by one
        assert batcher.statements == 1 + (1 + 11) + (1 + 8)


async def test_concurrent_senders_on_moving_clocks_never_exceed_the_limit(
    engine: AsyncEngine, engines: list[AsyncEngine]
) -> None:
    """Clients that behave like send jobs, on the real clock: reserve, sleep until the
    slot (or the refusal's retry time), again. No window holds more than the limit."""
    mps, seconds = 40, 1.5
    sender = await add_sender(engine, mps=mps)
    rate = SendRate(mps=mps)
    pools = [session_factory(eng) for eng in engines]
    granted: list[int] = []
    refusals = 0
    stop = time.monotonic() + seconds

    async def client(sessions: async_sessionmaker[AsyncSession]) -> None:
        nonlocal refusals
        while time.monotonic() < stop:
            now = time.time_ns() // 1000
            decision = await reserve(sessions, sender, now, SECOND // 5)
            if isinstance(decision, Granted):
                granted.append(decision.at)
                until = decision.at
            else:
                refusals += 1
                until = decision.retry_at
            await asyncio.sleep(max(0, until - time.time_ns() // 1000) / SECOND)

    await asyncio.gather(*(client(pools[i % len(pools)]) for i in range(8 * len(pools))))

    assert refusals > 0, "the clients never hit the limit: the test proves nothing"
    for width in (rate.interval, SECOND // 2, SECOND):
        assert most_in_a_window(granted, width) <= rate.burst + width // rate.interval
    span = max(granted) - min(granted)
    assert len(granted) <= rate.burst + span // rate.interval


async def test_removing_the_sender_removes_its_bucket(engine: AsyncEngine) -> None:
    sender = await add_sender(engine, mps=5)
    await reserve(session_factory(engine), sender, micros(NOW), 0)
    assert await bucket(engine, sender) is not None
    async with transaction(session_factory(engine)) as session:
        account, _ = await accounts.ensure(session, "acme", now=NOW)
        await senders.remove(session, account=account, name=sender.name)
    assert await bucket(engine, sender) is None


async def test_a_send_job_sleeps_for_a_near_slot_and_requeues_for_a_far_one(
    engine: AsyncEngine, settings: Settings
) -> None:
    sender = await add_sender(engine, mps=10)  # a slot every 0.1 s, no burst
    sessions = session_factory(engine)
    clock = FixedClock(datetime.now(UTC))
    deps = WorkerDeps(
        sessions=sessions, clock=clock, settings=settings, store=open_media_store(settings)
    )
    # What the helper reads of the plan: the sender, and the file's digest.
    plan = cast(SendPlan, SimpleNamespace(sender=sender, media=SimpleNamespace(sha256="ab" * 32)))
    loop = asyncio.get_running_loop()

    async def send(uploaded: list[str]) -> float:
        async with sessions() as unused:
            ctx = JobContext(session=unused, deps=deps, now=clock.now(), owner="test")
            began = loop.time()
            await wait_for_send_slot(ctx, plan, uploaded)
            return loop.time() - began

    # The clock stands still: slots at +0, +0.1 ... +1.0 s, each slept for.
    waited = sorted(await asyncio.gather(*(send([]) for _ in range(11))))
    for k, seconds in enumerate(waited):
        assert seconds >= k * 0.1 - 0.005, waited

    # The next one is 1.1 s off, beyond the 1 s a job may sleep: back to the queue,
    # remembering the file it uploaded so the next run does not upload it again.
    with pytest.raises(RetryLater) as later:
        await send(["meta-media-1"])
    assert later.value.after == timedelta(seconds=1.1)
    assert "at its limit of 10 messages a second" in str(later.value)
    async with transaction(sessions) as session:
        kept = await MessageRepository(session).uploaded(
            sender.id, "ab" * 32, after=clock.now() - timedelta(days=1)
        )
    assert kept == "meta-media-1"


async def test_a_send_job_that_wakes_too_late_takes_a_new_slot(
    engine: AsyncEngine, settings: Settings
) -> None:
    """Sent anyway, a send whose process stalled past its slot would go together with
    the sends of the slots after it."""
    sender = await add_sender(engine, mps=10)
    sessions = session_factory(engine)
    start = datetime.now(UTC)
    clock = FixedClock(start)
    deps = WorkerDeps(
        sessions=sessions, clock=clock, settings=settings, store=open_media_store(settings)
    )
    plan = cast(SendPlan, SimpleNamespace(sender=sender, media=SimpleNamespace(sha256="cd" * 32)))

    async def send() -> None:
        async with sessions() as unused:
            ctx = JobContext(session=unused, deps=deps, now=clock.now(), owner="test")
            await wait_for_send_slot(ctx, plan, [])

    await send()  # the slot at start
    late = asyncio.create_task(send())  # the slot at +0.1 s: asleep until then
    await asyncio.sleep(0.02)
    clock.advance(timedelta(seconds=1))  # ... and it wakes (by this clock) 0.9 s late
    await late
    # It gave the missed slot up and took the next one, at +1 s.
    assert await bucket(engine, sender) == Bucket(
        next_at=micros(start + timedelta(seconds=1.1)), retry_at=micros(start)
    )


async def test_a_slot_commits_without_waiting_for_the_disk_on_postgresql(
    engine: AsyncEngine,
) -> None:
    """The sender's row is locked until the slot's transaction commits, so that commit
    does not wait for the WAL flush: granted or refused, and only in that transaction."""
    if engine.dialect.name != "postgresql":
        pytest.skip("synchronous_commit is PostgreSQL's")
    sender = await add_sender(engine, mps=1)
    sessions = session_factory(engine)
    rate, now = SendRate(mps=1), micros(datetime.now(UTC))
    for expected in (Granted, Refused):  # the second take, at once, is past the burst
        async with transaction(sessions) as s:
            repo = SendRateRepository(s)
            for _ in range(rate.burst if expected is Granted else 1):
                decision = await repo.take(sender.id, now=now, rate=rate, max_wait=0)
            assert isinstance(decision, expected)
            assert await s.scalar(text("SHOW synchronous_commit")) == "off"
        async with transaction(sessions) as s:
            assert await s.scalar(text("SHOW synchronous_commit")) == "on"
