"""What one running app holds: settings, database, clock, metrics, store, sealer, the
group commits that store accepted messages and received webhook bodies, and the batched
read of the files those messages name."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from wafile.api.metrics import HttpMetrics
from wafile.clock import Clock
from wafile.config import Settings
from wafile.core.media import Media
from wafile.crypto import Sealer
from wafile.db.batch_read import BatchRead, batches
from wafile.db.group_commit import GroupCommit
from wafile.media.store import BlobStore
from wafile.services.media import media
from wafile.services.messages import Checked, MediaLookup, MessageView, messages
from wafile.services.webhooks import SignedBody, webhooks

__all__ = ["AppContext"]


@dataclass(frozen=True, kw_only=True)
class AppContext:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    metrics: HttpMetrics
    store: BlobStore
    sealer: Sealer  # opens and seals the credentials stored at rest
    # Messages accepted by concurrent requests, stored in one transaction.
    accepted: GroupCommit[Checked, MessageView] = field(init=False)
    # Webhook bodies received by concurrent requests, stored in one transaction.
    webhook_bodies: GroupCommit[SignedBody, str] = field(init=False)
    # The files that concurrent requests' messages name, read in one query.
    media_reads: BatchRead[tuple[str, str], Media] = field(init=False)

    def __post_init__(self) -> None:
        async def store(
            session: AsyncSession, batch: list[Checked]
        ) -> list[MessageView | Exception]:
            return list(await messages.store(session, batch, now=self.clock.now()))

        async def store_bodies(
            session: AsyncSession, batch: list[SignedBody]
        ) -> list[str | Exception]:
            return list(await webhooks.store(session, batch, now=self.clock.now()))

        object.__setattr__(self, "accepted", GroupCommit(store, what="messages"))
        object.__setattr__(self, "webhook_bodies", GroupCommit(store_bodies, what="webhook bodies"))
        object.__setattr__(self, "media_reads", BatchRead(media.read_many, what="media"))

    @property
    def media_lookup(self) -> MediaLookup | None:
        """Reads an account's file together with those other requests need meanwhile;
        None where reads are not batched (SQLite: each request reads its own)."""
        return self._media_of if batches(self.sessions) else None

    async def _media_of(self, account_id: str, media_id: str) -> Media | None:
        return await self.media_reads.get(self.sessions, (account_id, media_id))
