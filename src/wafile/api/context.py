"""What one running app holds: settings, database, clock, metrics, store, sealer, and
the group commits that store accepted messages and received webhook bodies."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from wafile.api.metrics import HttpMetrics
from wafile.clock import Clock
from wafile.config import Settings
from wafile.crypto import Sealer
from wafile.db.group_commit import GroupCommit
from wafile.media.store import BlobStore
from wafile.services.messages import Checked, MessageView, messages
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
