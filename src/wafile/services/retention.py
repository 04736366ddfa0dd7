"""Retention: expired media go, and so does what a crash left in the media store.

Each step is one unit of work for the caller's transaction (the sweeper loop or the
CLI commits between batches, so a large sweep never holds locks for long):

- expired media: rows past `expires_at`, their blob references, and the objects
  nobody references any more;
- unreferenced blobs: blob rows at zero references (a crash after the row delete);
- debris: temporary uploads (`uploads/...`) and LocalStore staging files older than
  the grace period (a crash mid-upload), and blob objects with no blob row (a crash
  after the object moved into place but before the transaction committed).

The grace period keeps the sweep off uploads still in flight: an upload's temporary
object is written continuously and moved as soon as it is complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.media import BLOB_PREFIX, UPLOAD_PREFIX, blob_key, blob_sha256
from wafile.db.media import MediaRepository
from wafile.errors import ServiceUnavailable
from wafile.media.store import BlobStore, BlobStoreError
from wafile.services.media import delete_object, media

__all__ = ["DEBRIS_GRACE", "RetentionService", "SweepReport", "retention"]

DEBRIS_GRACE = timedelta(hours=1)
_LOOKUP_BATCH = 500  # hashes per IN (...) query: well under SQLite's variable limit


@dataclass(kw_only=True, slots=True)
class SweepReport:
    expired: int = 0  # media rows deleted
    blobs: int = 0  # stored files deleted (last reference gone, or no row at all)
    temporaries: int = 0  # abandoned uploads removed

    def add(self, other: SweepReport) -> None:
        self.expired += other.expired
        self.blobs += other.blobs
        self.temporaries += other.temporaries


class RetentionService:
    async def sweep_expired(
        self, session: AsyncSession, store: BlobStore, *, now: datetime, limit: int
    ) -> SweepReport:
        """Delete up to `limit` expired media (fewer deleted: nothing is left)."""
        items = await MediaRepository(session).expired(now=now, limit=limit)
        report = SweepReport(expired=len(items))
        for item in items:
            report.blobs += await media.remove(session, store, item)
        return report

    async def sweep_unreferenced(
        self, session: AsyncSession, store: BlobStore, *, limit: int
    ) -> int:
        repo = MediaRepository(session)
        removed = 0
        for sha256 in await repo.unreferenced_blobs(limit=limit):
            if await repo.claim_unreferenced_blob(sha256):
                await delete_object(store, blob_key(sha256))
                removed += 1
        return removed

    async def sweep_temporaries(self, store: BlobStore, *, now: datetime) -> int:
        before = now - DEBRIS_GRACE
        try:
            keys = await store.older_than(UPLOAD_PREFIX, before)
            for key in keys:
                await store.delete(key)
            return len(keys) + await store.purge_staging(before)
        except BlobStoreError as exc:
            raise ServiceUnavailable(f"the media store failed: {exc}") from exc

    async def orphan_candidates(
        self, session: AsyncSession, store: BlobStore, *, now: datetime
    ) -> list[str]:
        """Contents stored as objects, old enough, whose blob row is missing."""
        try:
            keys = await store.older_than(BLOB_PREFIX, now - DEBRIS_GRACE)
        except BlobStoreError as exc:
            raise ServiceUnavailable(f"the media store failed: {exc}") from exc
        hashes = sorted({h for h in map(blob_sha256, keys) if h is not None})
        repo = MediaRepository(session)
        orphans: list[str] = []
        for start in range(0, len(hashes), _LOOKUP_BATCH):
            batch = hashes[start : start + _LOOKUP_BATCH]
            known = await repo.known_blobs(batch)
            orphans.extend(h for h in batch if h not in known)
        return orphans

    async def sweep_orphan(
        self, session: AsyncSession, store: BlobStore, sha256: str, *, now: datetime
    ) -> bool:
        """Delete the object if it still has no row; False when an upload claimed it."""
        repo = MediaRepository(session)
        if not await repo.claim_orphan(sha256, now=now):
            return False
        await delete_object(store, blob_key(sha256))
        await repo.drop_blob(sha256)
        return True


retention = RetentionService()
