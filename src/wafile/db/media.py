"""Media and blob repository: all SQL about stored files.

Blobs are counted references: a media row holds one reference to the blob of its
content. The count moves in the same transaction as the media row, so it is never
out of step with the rows that exist.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, and_, bindparam, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.media import Media
from wafile.db.lists import padded
from wafile.db.tables import BlobRow, MediaRow

__all__ = ["MediaRepository", "media_from_row"]


def media_from_row(row: MediaRow | Row[Any]) -> Media:
    """A file from its mapped row or a row of the table's columns."""
    return Media(
        id=row.id,
        account_id=row.account_id,
        filename=row.filename,
        mime_type=row.mime_type,
        category=row.category,
        sha256=row.sha256,
        file_size=row.file_size,
        created_at=row.created_at,
        expires_at=row.expires_at,
        whatsapp_sendable=row.whatsapp_sendable,
        whatsapp_sent_as=row.whatsapp_sent_as,
        whatsapp_reason=row.whatsapp_reason,
        source_url=row.source_url,
    )


# Built once (every message reads its file): SQLAlchemy keeps a statement object's
# cache key, which it otherwise works out again at every execution.
# Columns of the table, not the mapped class: a file is read, never changed through
# the ORM here, and the ORM's loading cost about as much CPU as the query.
_media = cast(Table, MediaRow.__table__)
_BY_ID = select(_media).where(_media.c.id == bindparam("media_id"))
_BY_ID_IN_ACCOUNT = _BY_ID.where(_media.c.account_id == bindparam("account_id"))
_BY_IDS = select(_media).where(_media.c.id.in_(bindparam("media_ids", expanding=True)))


class MediaRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def _is_postgres(self) -> bool:
        return self._session.get_bind().dialect.name == "postgresql"

    async def add(self, media: Media) -> None:
        """Insert the media row and take a reference on its blob (made if new)."""
        insert = pg_insert if self._is_postgres() else sqlite_insert
        stmt = insert(BlobRow).values(
            sha256=media.sha256, size=media.file_size, ref_count=1, created_at=media.created_at
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[BlobRow.sha256], set_={"ref_count": BlobRow.ref_count + 1}
        )
        await self._session.execute(stmt)
        self._session.add(
            MediaRow(
                id=media.id,
                account_id=media.account_id,
                filename=media.filename,
                mime_type=media.mime_type,
                category=media.category,
                sha256=media.sha256,
                file_size=media.file_size,
                created_at=media.created_at,
                expires_at=media.expires_at,
                whatsapp_sendable=media.whatsapp_sendable,
                whatsapp_sent_as=media.whatsapp_sent_as,
                whatsapp_reason=media.whatsapp_reason,
                source_url=media.source_url,
            )
        )
        await self._session.flush()

    async def get(self, media_id: str, *, account_id: str | None) -> Media | None:
        """One media row; scoped to `account_id` unless None (signed links, sweeps)."""
        if account_id is None:
            found = await self._session.execute(_BY_ID, {"media_id": media_id})
        else:
            params = {"media_id": media_id, "account_id": account_id}
            found = await self._session.execute(_BY_ID_IN_ACCOUNT, params)
        row = found.first()
        return media_from_row(row) if row else None

    async def get_many(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], Media]:
        """Media by (account id, media id), in one query; a key whose media is in
        another account, or gone, is left out."""
        wanted = set(keys)
        ids = padded(sorted({media_id for _, media_id in wanted}))
        found = await self._session.execute(_BY_IDS, {"media_ids": ids})
        rows = (media_from_row(row) for row in found)
        return {key: m for m in rows if (key := (m.account_id, m.id)) in wanted}

    async def list_page(
        self, *, account_id: str, limit: int, before: tuple[datetime, str] | None
    ) -> list[Media]:
        """Newest first; `before` is the (created_at, id) of the last item seen."""
        stmt = select(MediaRow).where(MediaRow.account_id == account_id)
        if before is not None:
            at, last_id = before
            stmt = stmt.where(
                or_(
                    MediaRow.created_at < at, and_(MediaRow.created_at == at, MediaRow.id < last_id)
                )
            )
        stmt = stmt.order_by(MediaRow.created_at.desc(), MediaRow.id.desc()).limit(limit)
        return [media_from_row(row) for row in await self._session.scalars(stmt)]

    async def remove(self, media: Media) -> int | None:
        """Delete the row and drop its blob reference; returns the references left.

        None when the row was already gone (a concurrent delete or sweep won): the
        reference was dropped by whoever deleted the row, and must not be dropped twice.
        """
        deleted = await self._session.execute(delete(MediaRow).where(MediaRow.id == media.id))
        if not _rowcount(deleted):
            return None
        left = await self._session.scalar(
            update(BlobRow)
            .where(BlobRow.sha256 == media.sha256)
            .values(ref_count=BlobRow.ref_count - 1)
            .returning(BlobRow.ref_count)
        )
        return int(left or 0)

    async def expired(self, *, now: datetime, limit: int) -> list[Media]:
        """Up to `limit` media past their `expires_at`, oldest first.

        On PostgreSQL the rows are locked and rows another sweeper holds are skipped,
        so several processes can sweep at once without waiting on each other.
        """
        stmt = (
            select(MediaRow)
            .where(MediaRow.expires_at <= now)
            .order_by(MediaRow.expires_at, MediaRow.id)
            .limit(limit)
        )
        if self._is_postgres():
            stmt = stmt.with_for_update(skip_locked=True)
        return [media_from_row(row) for row in await self._session.scalars(stmt)]

    async def unreferenced_blobs(self, *, limit: int) -> list[str]:
        """Blobs no media row holds (left by a crash between row delete and sweep)."""
        stmt = select(BlobRow.sha256).where(BlobRow.ref_count <= 0).limit(limit)
        return list(await self._session.scalars(stmt))

    async def known_blobs(self, sha256s: Collection[str]) -> set[str]:
        """Which of these contents have a blob row."""
        if not sha256s:
            return set()
        stmt = select(BlobRow.sha256).where(BlobRow.sha256.in_(list(sha256s)))
        return set(await self._session.scalars(stmt))

    async def claim_orphan(self, sha256: str, *, now: datetime) -> bool:
        """Take an object that has no blob row, so it can be deleted safely.

        Inserts a placeholder row (nothing is inserted when a row exists: then the
        object is not an orphan). An upload of the same content waits on this row
        until commit, after the caller has deleted the object and the row, and then
        stores the object afresh.
        """
        insert = pg_insert if self._is_postgres() else sqlite_insert
        stmt = (
            insert(BlobRow)
            .values(sha256=sha256, size=0, ref_count=0, created_at=now)
            .on_conflict_do_nothing(index_elements=[BlobRow.sha256])
            .returning(BlobRow.sha256)
        )
        return (await self._session.scalar(stmt)) is not None

    async def drop_blob(self, sha256: str) -> None:
        await self._session.execute(delete(BlobRow).where(BlobRow.sha256 == sha256))

    async def claim_unreferenced_blob(self, sha256: str) -> bool:
        """Lock and delete the blob row if nothing references it any more.

        The caller deletes the stored object inside the same transaction, before
        commit: an upload of the same content waits on this row lock and then
        re-creates row and object, so no row ever points at a deleted object.
        """
        stmt = select(BlobRow.sha256).where(BlobRow.sha256 == sha256, BlobRow.ref_count <= 0)
        if self._is_postgres():
            stmt = stmt.with_for_update()
        if await self._session.scalar(stmt) is None:
            return False
        await self.drop_blob(sha256)
        return True


def _rowcount(result: Any) -> int:
    # DML results are CursorResults; the typed Result does not declare rowcount.
    return int(getattr(result, "rowcount", 0) or 0)
