"""The retention sweep as a unit of work per batch, and the recurring job that runs it.

Like a request, the sweep is an edge: it owns its transactions, one per batch, so a
sweep of a million expired files never holds locks for long and a crash loses at
most one batch's progress (the next sweep finds the rest).

It recurs as the job `media.sweep`, a singleton by its dedupe key: every worker
ensures it exists when it starts, and each run schedules the next one
`WAFILE_SWEEP_INTERVAL_SECONDS` later, so however many workers run, one sweeps at a
time. `wafile media sweep` calls `sweep()` directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from wafile.clock import Clock
from wafile.config import Settings
from wafile.core.jobs import Job, error_text
from wafile.db.engine import transaction
from wafile.db.jobs import JobRepository
from wafile.dispatch.jobs import JobContext, RetryLater
from wafile.errors import WafileError
from wafile.media.store import BlobStore
from wafile.services.retention import SweepReport, retention

__all__ = ["BATCH", "SWEEP_KIND", "ensure_sweep_job", "sweep", "sweep_job"]

log = logging.getLogger(__name__)
BATCH = 500
SWEEP_KIND: Final = "media.sweep"  # also its dedupe key: there is one


async def sweep(
    sessions: async_sessionmaker[AsyncSession],
    store: BlobStore,
    clock: Clock,
    *,
    batch: int = BATCH,
    progress: Callable[[SweepReport], None] | None = None,
) -> SweepReport:
    """One full sweep; `progress` sees the running totals after every batch."""
    total = SweepReport()

    def step(report: SweepReport) -> None:
        total.add(report)
        if progress is not None:
            progress(total)

    while True:
        async with transaction(sessions) as session:
            done = await retention.sweep_expired(session, store, now=clock.now(), limit=batch)
        step(done)
        if done.expired < batch:
            break
    while True:
        async with transaction(sessions) as session:
            blobs = await retention.sweep_unreferenced(session, store, limit=batch)
        step(SweepReport(blobs=blobs))
        if blobs < batch:
            break
    step(SweepReport(temporaries=await retention.sweep_temporaries(store, now=clock.now())))
    async with transaction(sessions) as session:
        orphans = await retention.orphan_candidates(session, store, now=clock.now())
    for sha256 in orphans:
        async with transaction(sessions) as session:
            swept = await retention.sweep_orphan(session, store, sha256, now=clock.now())
        step(SweepReport(blobs=int(swept)))
    return total


async def sweep_job(job: Job, ctx: JobContext) -> None:
    """The `media.sweep` handler: sweep, then schedule the next sweep.

    A failed sweep (database or store down) is logged and tried again at the next
    interval, never buried: a dead singleton would end retention for good.
    """
    interval = ctx.deps.settings.sweep_interval_seconds
    try:
        report = await sweep(ctx.deps.sessions, ctx.deps.store, ctx.deps.clock)
    except Exception as exc:
        if interval <= 0:
            raise  # a last, one-off sweep: the usual retries, then dead
        if isinstance(exc, WafileError):
            log.warning("retention sweep failed: %s", exc.detail)
        else:
            log.exception("retention sweep failed")
        raise RetryLater(interval, error_text(exc)) from exc
    _log_report(report)
    if interval > 0:
        ctx.run_again_at(ctx.deps.clock.now() + timedelta(seconds=interval))


async def ensure_sweep_job(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings
) -> None:
    """Make sure the recurring sweep is queued (due now when it was missing).

    Run by every worker at start. A sweep job left dead (from a time the interval
    was 0) is revived. With the interval at 0, nothing is queued.
    """
    if settings.sweep_interval_seconds <= 0:
        return
    now = clock.now()
    async with transaction(sessions) as session:
        repo = JobRepository(session)
        if await repo.enqueue(SWEEP_KIND, {}, now, now=now, dedupe_key=SWEEP_KIND) is None:
            existing = await repo.by_dedupe_key(SWEEP_KIND)
            if existing is not None and existing.dead_at is not None:
                await repo.revive(existing.id, now=now)


def _log_report(report: SweepReport) -> None:
    if report.expired or report.blobs or report.temporaries:
        log.info(
            "retention sweep: %d expired media, %d stored files, %d abandoned uploads",
            report.expired,
            report.blobs,
            report.temporaries,
        )
