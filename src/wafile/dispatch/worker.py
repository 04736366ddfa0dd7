"""The worker: claims due jobs from the database and runs their handlers.

One loop per process, up to `concurrency` handlers at once as asyncio tasks. It
claims only as many jobs as it has free slots, then sleeps until the next job is due,
a poll interval passes, a slot frees, or (PostgreSQL) a NOTIFY says a job arrived.

Each handler runs in a transaction of its own that also completes the job, so the
handler's writes and the completion commit together; a failure is recorded in a new
transaction (retry with backoff, or dead). A side task renews the leases of running
jobs every third of the lease, so a slow but alive job is never taken over; a killed
worker's leases expire and its jobs are claimed again.

Stopping (cancellation, or `stop()`): claim nothing more, give running handlers
`grace` seconds, then cancel them and release their leases as untried (the attempt
does not count). The final writes run under `asyncio.shield`, so a second
cancellation cannot cut them off half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from wafile.channels.callback_http import CallbackPoster
from wafile.channels.pooled import ProviderFailure
from wafile.channels.sms_twilio import TwilioSms
from wafile.channels.whatsapp_cloud import WhatsAppCloud
from wafile.clock import Clock
from wafile.config import Settings
from wafile.core.jobs import (
    DEFAULT_BACKOFF,
    Backoff,
    Job,
    LeaseLost,
    Priority,
    error_text,
    next_attempt_at,
)
from wafile.db.engine import autocommit, transaction
from wafile.db.jobs import JobRepository
from wafile.db.notify import listen, supports_listen
from wafile.dispatch.callbacks import deliver_callback
from wafile.dispatch.inbound_media import fetch_inbound_media, inbound_media_died
from wafile.dispatch.jobs import HandlerRegistry, JobContext, RetryLater, WorkerDeps
from wafile.dispatch.send import deadline_job, send_died, send_job
from wafile.dispatch.sms_poll import poll_sms
from wafile.dispatch.sweeper import SWEEP_KIND, ensure_sweep_job, sweep_job
from wafile.dispatch.webhooks import apply_sms_webhook, apply_webhook
from wafile.errors import WafileError
from wafile.logs import scrub
from wafile.media.store import BlobStore
from wafile.services.callbacks import CALLBACK_KIND
from wafile.services.messages import DEADLINE_KIND, SEND_KIND
from wafile.services.outbound import callback_guard_for
from wafile.services.sms_webhooks import SMS_POLL_KIND, SMS_WEBHOOK_KIND
from wafile.services.webhooks import INBOUND_MEDIA_KIND, WEBHOOK_KIND

__all__ = [
    "Worker",
    "WorkerOptions",
    "WorkerStats",
    "new_owner_id",
    "run_embedded_worker",
    "run_worker",
    "standard_handlers",
]

log = logging.getLogger(__name__)
RESTART_PAUSE = 5.0  # seconds before the embedded worker starts again after a failure

RELEASE_TIMEOUT: Final = 10.0  # seconds for cancelled handlers to release their leases
ERROR_PAUSE_MAX: Final = 30.0  # longest pause between claims while the database is down
SPIN_FLOOR: Final = 0.05  # a due job another claimer holds right now: look again soon


def new_owner_id() -> str:
    """`host:pid:random`: who holds a lease, readable in the jobs table."""
    # Bounded to fit `lease_owner` whatever the host name.
    return f"{socket.gethostname()[:150]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerOptions:
    concurrency: int = 10
    # Slots beyond `concurrency` for due timers (fallback deadlines) only: when every
    # slot is taken (sends waiting for their rate-limit slot hold theirs up to a
    # second), a deadline still fires on time instead of queueing behind them.
    timer_slots: int = 4
    lease: timedelta = timedelta(seconds=60)
    poll_interval: float = 1.0  # seconds; the longest sleep between claims
    grace: float = 20.0  # seconds running handlers get to finish on stop
    backoff: Backoff = DEFAULT_BACKOFF

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.lease <= timedelta(0) or self.poll_interval <= 0:
            raise ValueError("need concurrency >= 1, a positive lease and poll interval")

    @classmethod
    def from_settings(cls, settings: Settings, *, concurrency: int | None = None) -> WorkerOptions:
        return cls(
            concurrency=concurrency or settings.worker_concurrency,
            lease=timedelta(seconds=settings.job_lease_seconds),
            poll_interval=settings.worker_poll_seconds,
            grace=settings.worker_grace_seconds,
        )


@dataclass(kw_only=True, slots=True)
class WorkerStats:
    """Counters since start, for logs and tests."""

    claimed: int = 0
    claims: int = 0  # claiming statements run (each claims up to the free slots)
    completed: int = 0  # includes recurring jobs rescheduled after a success
    retried: int = 0
    buried: int = 0
    released: int = 0  # given back untried at shutdown
    lost: int = 0  # finished after another worker took the job over: nothing committed
    sleeps: int = 0  # times the loop went to sleep with free slots and nothing due


class Worker:
    def __init__(
        self,
        deps: WorkerDeps,
        handlers: HandlerRegistry,
        options: WorkerOptions,
        *,
        wake: asyncio.Event | None = None,
        owner: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not handlers:
            raise ValueError("a worker needs at least one handler")
        self.deps = deps
        self.handlers = handlers
        self.options = options
        self.owner = owner or new_owner_id()
        self.stats = WorkerStats()
        self._wake = wake
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._kinds = frozenset(handlers)
        self._stop = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        # Running jobs' contexts: one its handler completed itself needs no lease.
        self._contexts: dict[str, JobContext] = {}

    @property
    def running(self) -> frozenset[str]:
        """Ids of the jobs whose handlers run now."""
        return frozenset(self._running)

    def stop(self) -> None:
        """Stop claiming; `run()` returns once running handlers are done or released."""
        self._stop.set()

    async def run(self) -> None:
        """Work until `stop()` or cancellation; then shut down gracefully."""
        log.info(
            "worker %s started: kinds %s, concurrency %d",
            self.owner,
            ", ".join(sorted(self._kinds)),
            self.options.concurrency,
        )
        heartbeat = asyncio.create_task(self._heartbeat(), name=f"job-heartbeat {self.owner}")
        try:
            await self._loop()
        finally:
            try:
                await self._drain()
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
                log.info("worker %s stopped: %s", self.owner, self.stats)

    # The loop ------------------------------------------------------------------

    async def _loop(self) -> None:
        pause = 0.0  # > 0 while the database is unreachable
        while not self._stop.is_set():
            free = self.options.concurrency - len(self._running)
            # Every slot busy: only the reserved timer slots are left to fill.
            timers_only = free <= 0
            if timers_only:
                free = self.options.concurrency + self.options.timer_slots - len(self._running)
            timeout = self.options.poll_interval
            if free > 0:
                # Cleared before claiming, so a NOTIFY or a freed slot during the
                # claim still wakes the wait below.
                self._slot_freed.clear()
                if self._wake is not None:
                    self._wake.clear()
                try:
                    jobs, next_due = await self._claim(
                        free, min_priority=Priority.TIMER if timers_only else None
                    )
                except WafileError as exc:
                    pause = min(ERROR_PAUSE_MAX, max(self.options.poll_interval, pause * 2))
                    log.warning("worker cannot claim jobs (%s); next try in %.1fs", exc, pause)
                    await self._wait(pause, wake=False)
                    continue
                pause = 0.0
                for job in jobs:
                    self._start(job)
                if len(jobs) == free:
                    continue  # every slot filled: more may be due
                timeout = self._sleep_for(next_due)
                self.stats.sleeps += 1
            await self._wait(timeout, wake=free > 0)

    async def _claim(
        self, free: int, *, min_priority: int | None = None
    ) -> tuple[list[Job], datetime | None]:
        now = self.deps.clock.now()
        # One claiming statement (and on SQLite a read): no transaction is needed.
        async with autocommit(self.deps.sessions) as session:
            jobs, next_due = await JobRepository(session).claim_next(
                self.owner,
                now,
                free,
                self.options.lease,
                kinds=self._kinds,
                min_priority=min_priority,
            )
        self.stats.claims += 1
        self.stats.claimed += len(jobs)
        return jobs, next_due

    def _sleep_for(self, next_due: datetime | None) -> float:
        poll = self.options.poll_interval
        if next_due is None:
            return poll
        ahead = (next_due - self.deps.clock.now()).total_seconds()
        return min(poll, max(SPIN_FLOOR, ahead))

    async def _wait(self, seconds: float, *, wake: bool) -> None:
        events = [self._stop, self._slot_freed]
        if wake and self._wake is not None:
            events.append(self._wake)
        waiters = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    # Running one job -------------------------------------------------------------

    def _start(self, job: Job) -> None:
        if job.id in self._running:
            # Our own lease lapsed (heartbeats failed for a whole lease) and we claimed
            # the job again: the handler still running it finishes it under this lease.
            return
        task = asyncio.create_task(self._execute(job), name=f"job {job.kind} {job.id}")
        self._running[job.id] = task

        def done(finished: asyncio.Task[None]) -> None:
            if self._running.get(job.id) is finished:
                del self._running[job.id]
            self._slot_freed.set()

        task.add_done_callback(done)

    async def _execute(self, job: Job) -> None:
        handler = self.handlers[job.kind]
        try:
            async with transaction(self.deps.sessions) as session:
                ctx = JobContext(
                    session=session, deps=self.deps, now=self.deps.clock.now(), owner=self.owner
                )
                self._contexts[job.id] = ctx
                await handler(job, ctx)
                repo = JobRepository(session)
                if ctx.completed:
                    held = True  # in the handler's own transaction (a batch of sends)
                elif ctx.again_at is not None:
                    held = await repo.reschedule(job.id, self.owner, ctx.again_at)
                else:
                    held = await repo.complete(job.id, self.owner)
                if not held:
                    raise LeaseLost  # rolls the handler's writes back
            self.stats.completed += 1
        except LeaseLost:
            self.stats.lost += 1
            log.warning("job %s (%s) was taken over while it ran; its work rolled back", *_id(job))
        except asyncio.CancelledError:
            await asyncio.shield(self._release(job))
            raise
        except RetryLater as later:
            run_at = self.deps.clock.now() + later.after
            retry = self._retry(job, run_at, scrub(str(later)), later=True, counts=later.counts)
            await asyncio.shield(retry)
        except Exception as exc:
            await asyncio.shield(self._failed(job, exc))
        finally:
            self._contexts.pop(job.id, None)

    async def _failed(self, job: Job, exc: Exception) -> None:
        now = self.deps.clock.now()
        error = scrub(error_text(exc))
        run_at = next_attempt_at(
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            now=now,
            policy=self.options.backoff,
            rand=self._rng.random(),
        )
        # The traceback only for what is not one of our own planned errors, nor a
        # provider's refusal or outage (expected; retried with the queue's backoff).
        planned = isinstance(exc, WafileError | ProviderFailure)
        if run_at is not None:
            await self._retry(job, run_at, error, later=False, cause=None if planned else exc)
            return
        try:
            buried = await self._bury(job, error, now)
        except WafileError as db_exc:
            log.warning("job %s (%s) failed and cannot be marked dead: %s", *_id(job), db_exc)
            return
        if buried:
            self.stats.buried += 1
            log.error(
                "job %s (%s) is dead after %d attempts: %s",
                *_id(job),
                job.attempts,
                error,
                exc_info=None if planned else exc,
            )
        else:
            self.stats.lost += 1

    async def _bury(self, job: Job, error: str, now: datetime) -> bool:
        """Mark the job dead, with what its death means (`on_dead`) in the same
        transaction. A failing `on_dead` must not keep the job alive (it would run
        again at every lease expiry): the job is then buried alone, and it says so."""
        on_dead = self.handlers.on_dead(job.kind)
        if on_dead is not None:
            try:
                async with transaction(self.deps.sessions) as session:
                    buried = await JobRepository(session).bury(job.id, self.owner, error, now)
                    if buried:
                        ctx = JobContext(session=session, deps=self.deps, now=now, owner=self.owner)
                        await on_dead(job, error, ctx)
                return buried
            except Exception:
                log.exception("job %s (%s): what its death means was not recorded", *_id(job))
        async with transaction(self.deps.sessions) as session:
            return await JobRepository(session).bury(job.id, self.owner, error, now)

    async def _retry(
        self,
        job: Job,
        run_at: datetime,
        error: str,
        *,
        later: bool,
        counts: bool = True,
        cause: Exception | None = None,
    ) -> None:
        try:
            async with transaction(self.deps.sessions) as session:
                repo = JobRepository(session)
                held = await repo.retry(job.id, self.owner, run_at, error, counts=counts)
        except WafileError as exc:
            # The lease expires and the job is claimed again: nothing is lost.
            log.warning("job %s (%s) cannot be rescheduled: %s", *_id(job), exc)
            return
        if not held:
            self.stats.lost += 1
            return
        self.stats.retried += 1
        if later:
            log.info("job %s (%s) runs again at %s: %s", *_id(job), run_at.isoformat(), error)
        else:
            log.warning(
                "job %s (%s) failed (attempt %d of %d), retry at %s: %s",
                *_id(job),
                job.attempts,
                job.max_attempts,
                run_at.isoformat(),
                error,
                exc_info=cause,
            )

    async def _release(self, job: Job) -> None:
        try:
            async with transaction(self.deps.sessions) as session:
                released = await JobRepository(session).release(job.id, self.owner)
        except WafileError as exc:
            log.warning("job %s (%s) not released (%s); its lease will expire", *_id(job), exc)
            return
        if released:
            self.stats.released += 1
            log.info("job %s (%s) released unfinished", *_id(job))

    # Side task and shutdown --------------------------------------------------------

    async def _heartbeat(self) -> None:
        interval = self.options.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            ids = [i for i in self._running if not self._completed(i)]
            if not ids:
                continue
            try:
                async with transaction(self.deps.sessions) as session:
                    held = await JobRepository(session).heartbeat(
                        self.owner, ids, now=self.deps.clock.now(), lease=self.options.lease
                    )
            except WafileError as exc:
                log.warning("cannot renew job leases: %s", exc)
                continue
            except Exception:
                log.exception("cannot renew job leases")
                continue
            for job_id in set(ids) - held:
                task = self._running.get(job_id)
                if task is not None and not task.done() and not self._completed(job_id):
                    log.warning("job %s: lease lost while it runs (another worker has it)", job_id)

    def _completed(self, job_id: str) -> bool:
        ctx = self._contexts.get(job_id)
        return ctx is not None and ctx.completed

    async def _drain(self) -> None:
        tasks = set(self._running.values())
        if not tasks:
            return
        hurry = False
        log.info(
            "worker %s stopping: waiting up to %.0fs for %d running jobs",
            self.owner,
            self.options.grace,
            len(tasks),
        )
        try:
            if self.options.grace > 0:
                await asyncio.wait(tasks, timeout=self.options.grace)
        except asyncio.CancelledError:
            hurry = True  # cancelled again: skip the rest of the grace period
        pending = {task for task in tasks if not task.done()}
        for task in pending:
            task.cancel()
        if pending:
            # Each cancelled handler releases its lease (shielded); wait for that.
            _, left = await asyncio.shield(asyncio.wait(pending, timeout=RELEASE_TIMEOUT))
            if left:
                log.warning("%d jobs did not stop; their leases will expire", len(left))
        if hurry:
            raise asyncio.CancelledError


def _id(job: Job) -> tuple[str, str]:
    return job.id, job.kind


# Wiring ---------------------------------------------------------------------------


def standard_handlers() -> HandlerRegistry:
    """The job kinds wafile runs. Add new kinds here."""
    handlers = HandlerRegistry()
    handlers.register(SWEEP_KIND, sweep_job)
    handlers.register(WEBHOOK_KIND, apply_webhook)
    handlers.register(INBOUND_MEDIA_KIND, fetch_inbound_media, on_dead=inbound_media_died)
    handlers.register(SEND_KIND, send_job, on_dead=send_died)
    handlers.register(DEADLINE_KIND, deadline_job)
    handlers.register(CALLBACK_KIND, deliver_callback)
    handlers.register(SMS_WEBHOOK_KIND, apply_sms_webhook)
    handlers.register(SMS_POLL_KIND, poll_sms)
    return handlers


async def _ensure_recurring(deps: WorkerDeps) -> None:
    try:
        await ensure_sweep_job(deps.sessions, deps.clock, deps.settings)
    except WafileError as exc:
        # Not fatal: the next worker start, or this one's next restart, tries again.
        log.warning("cannot queue the recurring sweep: %s", exc)


@asynccontextmanager
async def _wakeups(engine: AsyncEngine) -> AsyncIterator[asyncio.Event | None]:
    if not supports_listen(engine.url):
        yield None
        return
    async with listen(engine.url) as wake:
        yield wake


async def run_worker(
    engine: AsyncEngine,
    deps: WorkerDeps,
    *,
    handlers: HandlerRegistry | None = None,
    options: WorkerOptions | None = None,
    on_start: Callable[[Worker], None] | None = None,
) -> None:
    """Run one worker until cancelled (or its `stop()`); LISTEN on PostgreSQL.

    Ensures the recurring jobs exist first. `on_start` sees the worker before it
    claims anything (the CLI wires signals to `worker.stop` there).
    """
    handlers = handlers if handlers is not None else standard_handlers()
    options = options or WorkerOptions.from_settings(deps.settings)
    if SWEEP_KIND in handlers:
        await _ensure_recurring(deps)
    async with (
        WhatsAppCloud() as cloud,
        CallbackPoster(guard=callback_guard_for(deps.settings)) as poster,
        TwilioSms() as sms,
        _wakeups(engine) as wake,
    ):
        if deps.whatsapp is None:
            deps = replace(deps, whatsapp=cloud)
        if deps.callbacks is None:
            deps = replace(deps, callbacks=poster)
        if deps.sms is None:
            deps = replace(deps, sms=sms)
        worker = Worker(deps, handlers, options, wake=wake)
        if on_start is not None:
            on_start(worker)
        await worker.run()


async def run_embedded_worker(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    store: BlobStore,
    clock: Clock,
    settings: Settings,
) -> None:
    """The worker inside `wafile serve`: run as a task of the app's lifespan, cancel to stop.

    Returns at once when `WAFILE_EMBEDDED_WORKER` is off (workers run apart). Never
    ends by itself otherwise: a failure it cannot handle (say, the database gone for
    longer than the claim loop tolerates) is logged and the worker starts again after
    a pause, so a passing outage never leaves the server up with its jobs stopped.
    """
    if not settings.embedded_worker:
        log.info("embedded worker off: run `wafile worker` to process jobs")
        return
    deps = WorkerDeps(sessions=sessions, clock=clock, settings=settings, store=store)
    while True:
        try:
            await run_worker(engine, deps)
            return
        except Exception:
            log.exception("the embedded worker failed; starting it again in %.0f s", RESTART_PAUSE)
            await asyncio.sleep(RESTART_PAUSE)
