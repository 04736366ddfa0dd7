"""The media store: upload (streamed and checked), look up, list, download, delete.

An upload streams into a temporary object first, because its content hash (the
blob's name) is known only at the end. Then, inside the caller's transaction, the
blob reference is taken (which locks the blob row) and the object moved into place,
so a concurrent upload of the same content, or a sweep, never sees a row without its
object. A rejected upload deletes its temporary object: no blob, no row.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from wafile.config import Settings
from wafile.core import media_rules, mime
from wafile.core.accounts import Account
from wafile.core.media import UPLOAD_PREFIX, Media, blob_key
from wafile.core.ranges import ByteRange
from wafile.core.signed_links import derive_key, link_signature, verify_link
from wafile.db.media import MediaRepository
from wafile.errors import (
    ConfigError,
    LinkInvalid,
    MediaNotFound,
    MediaTypeMismatch,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from wafile.ids import new_id
from wafile.media.ingest import Ingest
from wafile.media.sniff import SNIFF_BYTES, sniff
from wafile.media.store import BlobNotFound, BlobStore, BlobStoreError, S3Options, open_store

__all__ = ["MediaService", "Upload", "delete_object", "media", "open_media_store"]

log = logging.getLogger(__name__)
LINK_PURPOSE = "media-link"


@dataclass(frozen=True, kw_only=True, slots=True)
class Upload:
    """What the edge knows about an upload besides its bytes."""

    claimed_type: str | None = None  # the `type` field or the raw body's Content-Type
    filename: str | None = None  # an explicit override (`filename` field)
    source_url: str | None = None  # where wafile fetched it from (remote files)


class MediaService:
    def new_ingest(self, *, max_bytes: int) -> Ingest:
        return Ingest(max_bytes=max_bytes, sniff_bytes=SNIFF_BYTES)

    async def upload(
        self,
        session: AsyncSession,
        store: BlobStore,
        *,
        account: Account,
        ingest: Ingest,
        chunks: AsyncIterable[bytes],
        upload: Upload,
        now: datetime,
        retention: timedelta,
    ) -> Media:
        tmp = await self.stage(store, chunks)
        return await self.adopt(
            session,
            store,
            tmp,
            account_id=account.id,
            ingest=ingest,
            upload=upload,
            now=now,
            retention=retention,
        )

    async def stage(self, store: BlobStore, chunks: AsyncIterable[bytes]) -> str:
        """Stream the bytes into a temporary object (no transaction needed); its key.

        Nothing is left behind when the stream fails (too large, cut off).
        """
        tmp = f"{UPLOAD_PREFIX}/{new_id('up')}"
        try:
            await _put(store, tmp, chunks)
        except BaseException:
            await _discard(store, tmp)
            raise
        return tmp

    async def adopt(
        self,
        session: AsyncSession,
        store: BlobStore,
        tmp: str,
        *,
        account_id: str,
        ingest: Ingest,
        upload: Upload,
        now: datetime,
        retention: timedelta,
    ) -> Media:
        """Check a staged file like an upload and make it media, in `session`'s
        transaction; the temporary object is moved into place or deleted."""
        try:
            item = self._describe(
                account_id=account_id, ingest=ingest, upload=upload, now=now, retention=retention
            )
            # Take the blob reference first: it locks the blob row until commit.
            await MediaRepository(session).add(item)
            final = blob_key(item.sha256)
            if await store.exists(final):
                await store.delete(tmp)
            else:
                await store.move(tmp, final)
        except BaseException:
            await _discard(store, tmp)
            raise
        return item

    def _describe(
        self,
        *,
        account_id: str,
        ingest: Ingest,
        upload: Upload,
        now: datetime,
        retention: timedelta,
    ) -> Media:
        filename = upload.filename or ingest.fields.get("filename") or ingest.filename
        claimed = upload.claimed_type or ingest.fields.get("type") or ingest.part_type
        try:
            mime_type = mime.reconcile(
                sniffed=sniff(ingest.head), claimed=claimed, filename=filename
            )
        except mime.TypeMismatch as exc:
            raise MediaTypeMismatch(str(exc)) from None
        except mime.Unsupported as exc:
            raise UnsupportedMediaType(
                f"{exc} wafile accepts: {', '.join(sorted(media_rules.ACCEPTED_TYPES))}",
                accepted=sorted(media_rules.ACCEPTED_TYPES),
            ) from None
        route = media_rules.route(mime_type, ingest.size)
        if not filename or not filename.strip():
            filename = "file" + mime.extension_for(mime_type)
        if len(filename) > 1024:
            raise ValidationFailed("filename is longer than 1024 characters")
        return Media(
            id=new_id("med"),
            account_id=account_id,
            filename=filename,
            mime_type=mime_type,
            category=str(route.category),
            sha256=ingest.sha256,
            file_size=ingest.size,
            created_at=now,
            expires_at=now + retention,
            whatsapp_sendable=route.sendable,
            whatsapp_sent_as=str(route.sent_as) if route.sent_as else None,
            whatsapp_reason=route.reason,
            source_url=upload.source_url,
        )

    async def get(self, session: AsyncSession, *, account: Account, media_id: str) -> Media:
        found = await MediaRepository(session).get(media_id, account_id=account.id)
        if found is None:
            raise MediaNotFound(f"no media {media_id!r} in this account")
        return found

    async def read_many(
        self, session: AsyncSession, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], Media]:
        """Files by (account id, media id) in one query, for `db.batch_read.BatchRead`:
        a key not found (gone, another account's) is left out."""
        return await MediaRepository(session).get_many(keys)

    async def list_page(
        self,
        session: AsyncSession,
        *,
        account: Account,
        limit: int,
        before: tuple[datetime, str] | None,
    ) -> list[Media]:
        return await MediaRepository(session).list_page(
            account_id=account.id, limit=limit, before=before
        )

    async def delete(
        self, session: AsyncSession, store: BlobStore, *, account: Account, media_id: str
    ) -> None:
        item = await self.get(session, account=account, media_id=media_id)
        await self.remove(session, store, item)

    async def remove(self, session: AsyncSession, store: BlobStore, item: Media) -> bool:
        """Delete the row, and the stored object when it was the last reference.

        True when the object was deleted too.
        """
        repo = MediaRepository(session)
        left = await repo.remove(item)
        if left is None or left > 0 or not await repo.claim_unreferenced_blob(item.sha256):
            return False
        # Still inside the transaction that holds the blob row (see module doc).
        await delete_object(store, item.blob_key)
        return True

    async def open(
        self, store: BlobStore, item: Media, byte_range: ByteRange | None
    ) -> AsyncIterator[bytes]:
        """The file's bytes (or a range of them), found before the first byte is sent."""
        start, end = (byte_range.start, byte_range.end) if byte_range else (0, None)
        try:
            return await store.get(item.blob_key, start=start, end=end)
        except BlobNotFound:
            raise ServiceUnavailable(f"the stored file of {item.id} is missing") from None
        except BlobStoreError as exc:
            raise ServiceUnavailable(f"the media store failed: {exc}") from exc

    def signed_url(
        self, item: Media, *, secret: str, base_url: str, lifetime: int, now: float
    ) -> tuple[str, int]:
        expires = int(now) + lifetime
        sig = link_signature(derive_key(secret, LINK_PURPOSE), item.id, expires)
        return f"{base_url}/f/{item.id}?{urlencode({'e': expires, 's': sig})}", expires

    async def by_link(
        self,
        session: AsyncSession,
        *,
        media_id: str,
        expires: int,
        signature: str,
        secret: str,
        now: float,
    ) -> Media:
        if not verify_link(derive_key(secret, LINK_PURPOSE), media_id, expires, signature, now):
            raise LinkInvalid()
        found = await MediaRepository(session).get(media_id, account_id=None)
        if found is None:
            raise MediaNotFound()
        return found


async def _put(store: BlobStore, key: str, chunks: AsyncIterable[bytes]) -> None:
    try:
        await store.put(key, chunks)
    except BlobStoreError as exc:
        # Our own stream's errors (too large, malformed) pass through the store as is.
        raise ServiceUnavailable(f"the media store failed: {exc}") from exc


async def _discard(store: BlobStore, key: str) -> None:
    try:
        await store.delete(key)
    except BlobStoreError:
        log.warning("could not delete temporary upload %s", key)


async def delete_object(store: BlobStore, key: str) -> None:
    try:
        await store.delete(key)
    except BlobStoreError as exc:
        raise ServiceUnavailable(f"the media store failed: {exc}") from exc


def open_media_store(settings: Settings) -> BlobStore:
    """The store `WAFILE_MEDIA_URL` names, with the S3 options when it is `s3://`."""
    url = settings.effective_media_url
    s3 = None
    if url.startswith("s3://"):
        s3 = S3Options(
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region or None,
            access_key_id=settings.s3_access_key_id or None,
            secret_access_key=settings.s3_secret_access_key or None,
        )
    try:
        return open_store(url, s3=s3)
    except (ValueError, BlobStoreError) as exc:
        raise ConfigError(f"WAFILE_MEDIA_URL: {exc}") from None


media = MediaService()
