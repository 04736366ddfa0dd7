"""Remote files: fetch a client's URL (with a media provider's credentials), check the
file like an upload, store it and return the media. The original URL stays on it.

`fetch` is the one call for both faces: `POST /v1/media:fetch` and the send worker.
It opens short transactions of its own when given a session factory (the provider
lookup, then the media row), so no database connection is held while the file
streams in; given a session, it uses that one (the caller's transaction).

What a failure means (all are `wafile.errors`):
- `ServiceUnavailable`, including `RemoteUnavailable` (502: the origin timed out,
  could not be reached or answered 5xx/408/429; `retry_after` in `extra` when the
  origin said): retry later;
- any `ClientError`: fail, `detail` says why: `RemoteRejected` (the origin's 4xx,
  its status in the message and in `extra["origin_status"]`), `OutboundRefused`
  (the SSRF guard), `PayloadTooLarge`, `UnsupportedMediaType`, `MediaTypeMismatch`,
  `EmptyFile`, `ValidationFailed` (an unknown provider).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from wafile.channels.guarded_http import MAX_URL_LENGTH
from wafile.config import Settings
from wafile.core import filenames
from wafile.core.media import Media
from wafile.core.providers import Credential
from wafile.crypto import Sealer
from wafile.db.engine import transaction
from wafile.errors import ProviderNotFound, ValidationFailed
from wafile.media.remote import FetchLimits, RemoteFetcher
from wafile.media.store import BlobStore
from wafile.services.media import Upload, media
from wafile.services.outbound import guard_for
from wafile.services.providers import providers

__all__ = ["MAX_URL_LENGTH", "RemoteMediaService", "fetcher_for", "limits_for", "remote_media"]

Sessions = AsyncSession | async_sessionmaker[AsyncSession]


def limits_for(settings: Settings) -> FetchLimits:
    return FetchLimits(
        max_bytes=settings.max_upload_bytes,
        connect_timeout=settings.remote_connect_timeout_seconds,
        read_timeout=settings.remote_read_timeout_seconds,
        total_timeout=settings.remote_total_timeout_seconds,
        max_redirects=settings.remote_max_redirects,
        per_host=settings.remote_per_host,
        retries=settings.remote_retries,
    )


def fetcher_for(settings: Settings) -> RemoteFetcher:
    """A fetcher guarded and bounded as the settings say; close it after use."""
    return RemoteFetcher(guard_for(settings), limits_for(settings))


class RemoteMediaService:
    async def fetch(
        self,
        sessions: Sessions,
        store: BlobStore,
        settings: Settings,
        *,
        account_id: str,
        url: str,
        provider: str | None = None,
        filename: str | None = None,
        now: datetime,
        sealer: Sealer | None = None,
        fetcher: RemoteFetcher | None = None,
    ) -> Media:
        """Fetch `url` into the media store as the account's media (see module doc).

        `fetcher`: a shared one (the worker's); else one is made for this call.
        """
        if filename is not None and len(filename) > 1024:
            raise ValidationFailed("filename is longer than 1024 characters")
        credential: Credential | None = None
        if provider is not None:
            async with _unit(sessions) as session:
                try:
                    credential = await providers.credential(
                        session,
                        sealer or Sealer(settings.secret_key),
                        account_id=account_id,
                        name=provider,
                    )
                except ProviderNotFound as exc:
                    raise ValidationFailed(f"provider: {exc.detail}") from None
        if fetcher is None:
            async with fetcher_for(settings) as own:
                return await self._fetch(
                    own, sessions, store, settings, account_id, url, credential, filename, now
                )
        return await self._fetch(
            fetcher, sessions, store, settings, account_id, url, credential, filename, now
        )

    async def _fetch(
        self,
        fetcher: RemoteFetcher,
        sessions: Sessions,
        store: BlobStore,
        settings: Settings,
        account_id: str,
        url: str,
        credential: Credential | None,
        filename: str | None,
        now: datetime,
    ) -> Media:
        ingest = media.new_ingest(max_bytes=settings.max_upload_bytes)
        async with fetcher.open(url, credential=credential) as remote:
            name = filenames.resolve(
                explicit=filename,
                content_disposition=remote.content_disposition,
                urls=(remote.url, url),
            )
            # The origin's Content-Type is not a claim: the type comes from the bytes
            # (and the name's extension), as WhatsApp itself would judge the file.
            tmp = await media.stage(store, ingest.raw(remote.chunks, content_disposition=None))
        async with _unit(sessions) as session:
            return await media.adopt(
                session,
                store,
                tmp,
                account_id=account_id,
                ingest=ingest,
                upload=Upload(filename=name, source_url=url),
                now=now,
                retention=settings.media_retention,
            )


@asynccontextmanager
async def _unit(sessions: Sessions) -> AsyncIterator[AsyncSession]:
    if isinstance(sessions, AsyncSession):
        yield sessions
        return
    async with transaction(sessions) as session:
        yield session


remote_media = RemoteMediaService()
