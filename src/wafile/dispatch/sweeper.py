"""The retention sweep as a unit of work per batch, and its periodic loop.

Like a request, the sweep is an edge: it owns its transactions, one per batch, so a
sweep of a million expired files never holds locks for long and a crash loses at
most one batch's progress (the next sweep finds the rest). Until the job queue
exists, `wafile serve` runs the loop as a task of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from wafile.clock import Clock
from wafile.db.engine import transaction
from wafile.errors import WafileError
from wafile.media.store import BlobStore
from wafile.services.retention import SweepReport, retention

__all__ = ["BATCH", "run_periodically", "sweep"]

log = logging.getLogger(__name__)
BATCH = 500


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


async def run_periodically(
    sessions: async_sessionmaker[AsyncSession],
    store: BlobStore,
    clock: Clock,
    *,
    interval: float,
) -> None:
    """Sweep now and then every `interval` seconds, until cancelled; never dies of a failure."""
    while True:
        try:
            report = await sweep(sessions, store, clock)
        except WafileError as exc:
            # The database or store is down: say so, and try again next time.
            log.warning("retention sweep failed: %s", exc)
        except Exception:
            log.exception("retention sweep failed")
        else:
            if report.expired or report.blobs or report.temporaries:
                log.info(
                    "retention sweep: %d expired media, %d stored files, %d abandoned uploads",
                    report.expired,
                    report.blobs,
                    report.temporaries,
                )
        await asyncio.sleep(interval)
